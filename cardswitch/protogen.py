"""Generates the Python gRPC stubs in ``cardswitch/v1/`` from ``protos/cardswitch/v1/*.proto``.

``./run proto`` calls :func:`generate` on the work tree; the drift test calls it on a temporary
directory and compares the output byte for byte with the committed stubs.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "protos"
STUB_PACKAGE = Path("cardswitch") / "v1"


def proto_files() -> list[Path]:
    return sorted((PROTO_DIR / "cardswitch" / "v1").glob("*.proto"))


def generate(out_root: Path) -> list[Path]:
    """Writes ``*_pb2.py``, ``*_pb2.pyi`` and ``*_pb2_grpc.py`` under ``out_root/cardswitch/v1``."""
    from grpc_tools import protoc

    include = str(resources.files("grpc_tools") / "_proto")
    out = out_root / STUB_PACKAGE
    out.mkdir(parents=True, exist_ok=True)
    (out / "__init__.py").write_text('"""Generated gRPC stubs; run ./run proto, do not edit."""\n')
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *(str(p.relative_to(PROTO_DIR)) for p in proto_files()),
    ]
    code = protoc.main(args)
    if code != 0:
        raise RuntimeError(f"protoc failed with exit code {code}")
    return sorted(out.glob("*.py*"))


def main() -> int:
    for path in generate(ROOT):
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
