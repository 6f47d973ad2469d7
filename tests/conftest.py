"""Shared fixtures: database backends. Under CI=true PostgreSQL is required, not skipped."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

PG_BASE = os.environ.get("CARDSWITCH_TEST_PG", "postgresql+psycopg://127.0.0.1:5432/test")


def _pg_available() -> str | None:
    try:
        import psycopg
        with psycopg.connect(PG_BASE.replace("+psycopg", ""), connect_timeout=3):
            return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def require_postgres() -> None:
    problem = _pg_available()
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is required under CI=true but unreachable at {PG_BASE}: "
                    f"{problem}")
    pytest.skip(f"PostgreSQL not reachable at {PG_BASE}")


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    yield from pg_schema()


def pg_schema() -> Iterator[str]:
    require_postgres()
    import psycopg
    schema = f"cs_test_{uuid.uuid4().hex[:10]}"
    plain = PG_BASE.replace("+psycopg", "")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
