"""The one database session factory and migration runner.

SQLite (WAL, full fsync) is the embedded default; PostgreSQL through psycopg 3 in production.
Each service keeps its Alembic scripts in ``<package>/migrations`` and its own version table, so
services share one PostgreSQL database without touching each other's tables.
"""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import sessionmaker


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    # No pre-ping: it costs a round trip per checkout; recycled connections and the journal's
    # retry-per-op isolation cover a server restart.
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=300)


def session_factory(engine: Engine) -> sessionmaker[Any]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str, package: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", f"{package}:migrations")
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.set_main_option("version_table", f"alembic_version_{package.replace('.', '_')}")
    return cfg


def upgrade(url: str, package: str) -> None:
    """Brings ``package``'s tables to the newest migration."""
    command.upgrade(alembic_config(url, package), "head")


def run_env(target_metadata: Any) -> None:
    """The body of every service's ``migrations/env.py`` (online mode only)."""
    from alembic import context

    cfg = context.config
    url = cfg.get_main_option("sqlalchemy.url")
    version_table = cfg.get_main_option("version_table") or "alembic_version"
    assert url is not None
    engine = make_engine(url, pool_size=1)
    with engine.connect() as conn:
        context.configure(
            connection=conn,
            target_metadata=target_metadata,
            version_table=version_table,
            render_as_batch=url.startswith("sqlite"),
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
