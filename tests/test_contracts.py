"""Protos, generated stubs and migrations change together: these fail when they drift."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from cardswitch import db, protogen
from cardswitch.config import ROOT


def test_committed_stubs_match_the_protos(tmp_path: Path) -> None:
    generated = protogen.generate(tmp_path)
    committed = ROOT / "cardswitch" / "v1"
    names = sorted(p.name for p in generated)
    assert names == sorted(p.name for p in committed.glob("*.py*")), "stub files differ"
    stale = [n for n in names if (tmp_path / "cardswitch" / "v1" / n).read_bytes()
             != (committed / n).read_bytes()]
    assert stale == [], f"run ./run proto and commit: {stale} differ from the protos"


@pytest.mark.parametrize(("package", "models"), [
    ("switch", "switch.models"),
    ("hsm_sim", "hsm_sim.keystore"),
    ("issuer_sim", "issuer_sim.models"),
    ("issuer_sim.wallet", "issuer_sim.wallet.models"),
])
def test_migrations_create_exactly_the_models_tables(tmp_path: Path, package: str,
                                                     models: str) -> None:
    import importlib
    metadata = importlib.import_module(models).Base.metadata
    url = f"sqlite:///{tmp_path / 'm.db'}"
    db.upgrade(url, package)
    engine = db.make_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    diff = [d for d in diff if not (isinstance(d, tuple) and d[0] == "remove_table"
                                    and str(d[1].name).startswith("alembic_version"))]
    assert diff == [], f"{package}: models and migrations differ: {diff}"
