"""The one configuration loader: where files live, which database each service uses, ports.

Everything comes from environment variables with development defaults, so ``./run demo`` needs
no configuration and a fleet sets ``CARDSWITCH_DATABASE_URL`` once.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def var_dir() -> Path:
    """Runtime files (SQLite databases, logs, certificates, LMK): ``$CARDSWITCH_VAR`` or ./var."""
    path = Path(os.environ.get("CARDSWITCH_VAR", ROOT / "var"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url(service: str) -> str:
    """The SQLAlchemy URL a service stores its tables in.

    ``CARDSWITCH_DATABASE_URL`` (e.g. ``postgresql+psycopg://127.0.0.1:5432/test``) is shared by
    every service, each owning its own tables; without it each service gets a SQLite file.
    """
    url = os.environ.get("CARDSWITCH_DATABASE_URL", "").strip()
    if url:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return url
    return f"sqlite:///{var_dir() / (service + '.db')}"


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name}: must be an integer, got {raw!r}") from exc
