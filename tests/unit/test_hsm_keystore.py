"""The HSM's LMK and key store: keys rest wrapped under the LMK and bound to their usage."""

from __future__ import annotations

import argparse
import os
import sqlite3
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from cardswitch import db
from hsm_sim import cli, keystore, lmk, server
from hsm_sim.algorithms import keyblock, tdes

TEST_KEY = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")


@pytest.fixture
def var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CARDSWITCH_VAR", str(tmp_path))
    monkeypatch.delenv("CARDSWITCH_LMK_FILE", raising=False)
    monkeypatch.delenv("CARDSWITCH_DATABASE_URL", raising=False)
    return tmp_path


def init_args(*extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cardswitch")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["hsm", "init", *extra])


@pytest.fixture
def sqlite_url(var: Path) -> str:
    url = f"sqlite:///{var / 'hsm.db'}"
    db.upgrade(url, "hsm_sim")
    return url


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    engine = db.make_engine(sqlite_url)
    yield engine
    engine.dispose()


MASTER = bytes(range(32))


# --- LMK --------------------------------------------------------------------------------------


def test_init_writes_a_private_lmk_and_prints_only_check_values(
        var: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = init_args()
    assert args.func(args) == 0

    path = var / "hsm" / "lmk.key"
    master = path.read_bytes()
    assert len(master) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3
    assert out[0].startswith("component 1 KCV ") and len(out[0].split()[-1]) == 6
    assert out[2] == f"LMK written to {path} (mode 600), KCV {lmk.check_value(master)}"
    assert master.hex().upper() not in "".join(out)


def test_init_shows_components_that_xor_to_the_lmk_only_when_asked(
        var: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = init_args("--components", "3", "--show-components")
    assert args.func(args) == 0

    lines = capsys.readouterr().out.splitlines()
    components = [bytes.fromhex(line.split()[-1]) for line in lines[:3]]
    assert [line.split()[3] for line in lines[:3]] == [lmk.check_value(c) for c in components]
    assert keystore.combine_components(components) == (var / "hsm" / "lmk.key").read_bytes()


def test_init_refuses_to_overwrite_an_lmk_without_force(
        var: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = lmk.create()

    args = init_args()
    assert args.func(args) == 1
    err = capsys.readouterr().err
    assert str(first.path) in err and "refusing to overwrite" in err and "--force" in err
    assert lmk.load() == keystore.combine_components(list(first.components))

    forced = init_args("--force")
    assert forced.func(forced) == 0
    assert lmk.load() != keystore.combine_components(list(first.components))


def test_lmk_file_env_points_elsewhere(var: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = var / "vault" / "master.bin"
    monkeypatch.setenv("CARDSWITCH_LMK_FILE", str(elsewhere))

    made = lmk.create()

    assert made.path == elsewhere and elsewhere.exists()
    assert not (var / "hsm" / "lmk.key").exists()
    assert lmk.check_value(lmk.load()) == made.kcv


def test_serving_without_an_lmk_fails_naming_the_path(var: Path) -> None:
    with pytest.raises(lmk.LmkError, match=r"no LMK at .*hsm/lmk\.key.*cardswitch hsm init"):
        server.open_store()


def test_serving_with_another_lmk_than_the_keys_were_stored_under_fails(
        var: Path, sqlite_url: str) -> None:
    lmk.create()
    store, engine = server.open_store(sqlite_url)
    store.add("zpk.a", "ZPK", "TDES_2KEY", TEST_KEY)
    engine.dispose()
    lmk.create(force=True)

    with pytest.raises(lmk.LmkError, match="unwraps none of the 1 stored keys"):
        server.open_store(sqlite_url)


def test_a_short_lmk_file_is_refused(var: Path) -> None:
    path = var / "hsm" / "lmk.key"
    path.parent.mkdir()
    path.write_bytes(b"\x00" * 16)

    with pytest.raises(lmk.LmkError, match="must hold 32 bytes, got 16"):
        lmk.load()


# --- key store --------------------------------------------------------------------------------


def test_published_test_key_has_check_value_08d7b4() -> None:
    assert keystore.check_value(TEST_KEY, "TDES_2KEY") == "08D7B4"
    assert tdes.encrypt_ecb(TEST_KEY, bytes(8))[:3].hex().upper() == "08D7B4"


def test_random_tdes_keys_have_odd_parity_and_the_algorithms_length() -> None:
    for algorithm, length in keystore.KEY_LENGTHS.items():
        key = keystore.random_key(algorithm)
        assert len(key) == length
        if algorithm.startswith("TDES"):
            assert all(bin(b).count("1") % 2 == 1 for b in key)


def test_labels_that_could_be_mistaken_for_key_ids_are_refused() -> None:
    assert keystore.label_problem("zpk.issuer-1") is None
    assert keystore.label_problem(str(uuid.uuid4())) == "must not look like a key id (a UUID)"
    assert keystore.label_problem("a|b") is not None
    assert keystore.label_problem("") is not None
    assert keystore.label_problem("zpk.a\n") is not None


def test_key_at_rest_is_not_the_clear_key(var: Path, engine: Engine) -> None:
    store = keystore.KeyStore(engine, MASTER)
    key = store.add("zpk.issuer1", "ZPK", "TDES_2KEY", TEST_KEY)
    engine.dispose()  # checkpoints the WAL into the database file

    with sqlite3.connect(var / "hsm.db") as conn:
        block, kcv, legacy = conn.execute(
            "SELECT key_block, kcv, wrapped_key FROM hsm_keys WHERE key_id = ?",
            (key.key_id,)).fetchone()
    assert kcv == "08D7B4" and legacy is None
    # TR-31 version D under the LMK: PIN key, TDES, both ways, exportable, label and time bound.
    assert block.startswith("D") and block[5:12] == "P0TB00E"
    assert "01" + "07" + "ZPK" in block and "LB0Fzpk.issuer1" in block
    header, clear = keyblock.unwrap(MASTER, block)
    assert clear == TEST_KEY and header.key_usage == "P0"
    for path in var.glob("hsm.db*"):
        raw = path.read_bytes()
        assert TEST_KEY not in raw and TEST_KEY.hex().encode() not in raw
        assert TEST_KEY.hex().upper().encode() not in raw


def test_key_loads_by_id_or_label_and_stays_in_memory(engine: Engine) -> None:
    key = keystore.KeyStore(engine, MASTER).add("pvk.1", "PVK", "TDES_2KEY", TEST_KEY)
    fresh = keystore.KeyStore(engine, MASTER)
    assert fresh.cached("pvk.1") is None

    by_label = fresh.load("pvk.1")
    assert by_label is not None and by_label.clear == TEST_KEY and by_label.key_id == key.key_id
    assert fresh.load(key.key_id) is by_label
    assert fresh.cached(key.key_id) is by_label and fresh.cached("pvk.1") is by_label
    assert fresh.load("no-such-key") is None
    assert TEST_KEY.hex() not in repr(by_label).lower()


def test_editing_a_keys_type_in_its_row_is_detected(engine: Engine) -> None:
    key = keystore.KeyStore(engine, MASTER).add("bdk.1", "BDK", "TDES_2KEY", TEST_KEY)
    with engine.begin() as conn:
        conn.execute(text("UPDATE hsm_keys SET key_type = 'PVK' WHERE key_id = :id"),
                     {"id": key.key_id})

    fresh = keystore.KeyStore(engine, MASTER)
    with pytest.raises(keystore.KeyIntegrityError,
                       match=f"key {key.key_id} .* attributes do not match its key block"):
        fresh.load("bdk.1")
    assert fresh.warm() == (0, [key.key_id])


def test_editing_a_keys_check_value_is_detected(engine: Engine) -> None:
    key = keystore.KeyStore(engine, MASTER).add("cvk.1", "CVK", "TDES_2KEY", TEST_KEY)
    with engine.begin() as conn:
        conn.execute(text("UPDATE hsm_keys SET kcv = 'FFFFFF' WHERE key_id = :id"),
                     {"id": key.key_id})

    with pytest.raises(keystore.KeyIntegrityError, match="do not match its key block"):
        keystore.KeyStore(engine, MASTER).load(key.key_id)


def test_editing_a_key_block_fails_its_mac(engine: Engine) -> None:
    key = keystore.KeyStore(engine, MASTER).add("zpk.m", "ZPK", "TDES_2KEY", TEST_KEY)
    with engine.begin() as conn:
        block = conn.execute(text("SELECT key_block FROM hsm_keys")).scalar_one()
        # Usage P0 -> V0 in the header: a PIN key turned into a PIN verification key.
        conn.execute(text("UPDATE hsm_keys SET key_block = :b WHERE key_id = :id"),
                     {"b": block[:5] + "V0" + block[7:], "id": key.key_id})
    with pytest.raises(keystore.KeyIntegrityError, match="does not unwrap under the LMK"):
        keystore.KeyStore(engine, MASTER).load("zpk.m")


def test_a_pre_key_block_row_is_rewritten_as_a_key_block(engine: Engine) -> None:
    key_id = "6f1c3a52-0000-4000-8000-000000000001"
    aad = keystore.legacy_associated_data(key_id, "zpk.old", "ZPK", "TDES_2KEY", True)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO hsm_keys (key_id, label, key_type, algorithm, wrapped_key, kcv, "
            "created_at, exportable) VALUES (:id, 'zpk.old', 'ZPK', 'TDES_2KEY', :w, '08D7B4', "
            ":t, :e)"), {"id": key_id, "w": lmk.wrap(MASTER, TEST_KEY, aad),
                         "t": datetime.now(UTC), "e": True})

    assert keystore.KeyStore(engine, MASTER).warm() == (1, [])
    with engine.connect() as conn:
        row = conn.execute(text("SELECT key_block, wrapped_key, usage, exportability "
                                "FROM hsm_keys")).one()
    assert row.wrapped_key is None and row.usage == "P0" and row.exportability == "E"
    loaded = keystore.KeyStore(engine, MASTER).load("zpk.old")
    assert loaded is not None and loaded.clear == TEST_KEY and loaded.key_id == key_id


def test_a_key_stored_under_another_lmk_does_not_unwrap(engine: Engine) -> None:
    keystore.KeyStore(engine, MASTER).add("dek.1", "DEK", "AES_256", bytes(32))

    with pytest.raises(keystore.KeyIntegrityError):
        keystore.KeyStore(engine, bytes(32)).load("dek.1")


def test_a_label_is_unique(engine: Engine) -> None:
    store = keystore.KeyStore(engine, MASTER)
    store.add("zpk.a", "ZPK", "TDES_2KEY", TEST_KEY)

    with pytest.raises(keystore.LabelTaken, match=r"'zpk\.a' already exists"):
        keystore.KeyStore(engine, MASTER).add("zpk.a", "ZPK", "TDES_2KEY", TEST_KEY)


def test_list_keys_filters_by_type_and_sorts_by_label(engine: Engine) -> None:
    store = keystore.KeyStore(engine, MASTER)
    store.add("zpk.b", "ZPK", "TDES_2KEY", keystore.random_key("TDES_2KEY"))
    store.add("hmac.a", "HMAC", "HMAC_SHA256", keystore.random_key("HMAC_SHA256"))
    store.add("zpk.a", "ZPK", "TDES_3KEY", keystore.random_key("TDES_3KEY"))

    assert [k.label for k in store.list_keys()] == ["hmac.a", "zpk.a", "zpk.b"]
    assert [k.label for k in store.list_keys("ZPK")] == ["zpk.a", "zpk.b"]
    assert all(k.created_at.tzinfo is not None for k in store.list_keys())


def test_a_key_type_cannot_be_stored_with_an_algorithm_it_does_not_use(engine: Engine) -> None:
    with pytest.raises(ValueError, match="a DEK key must be one of AES_256, not TDES_2KEY"):
        keystore.KeyStore(engine, MASTER).add("dek.x", "DEK", "TDES_2KEY", TEST_KEY)


@pytest.mark.postgres
def test_key_store_works_on_postgresql(pg_schema_url: str) -> None:
    db.upgrade(pg_schema_url, "hsm_sim")
    engine = db.make_engine(pg_schema_url, pool_size=1)
    try:
        key = keystore.KeyStore(engine, MASTER).add("test.pg", "ZPK", "TDES_2KEY", TEST_KEY)
        loaded = keystore.KeyStore(engine, MASTER).load("test.pg")
        assert loaded is not None and loaded.clear == TEST_KEY and loaded.kcv == "08D7B4"
        assert loaded.created_at == key.created_at
        with engine.connect() as conn:
            stored = "".join(r[0] for r in conn.execute(text("SELECT key_block FROM hsm_keys")))
        assert TEST_KEY.hex().upper() not in stored.upper()
        assert keyblock.unwrap(MASTER, stored)[1] == TEST_KEY
    finally:
        engine.dispose()


def test_lmk_is_formed_from_components_entered_by_their_custodians(tmp_path: Path) -> None:
    first, second = bytes(range(32)), bytes(range(100, 132))
    env = {**os.environ, "CARDSWITCH_VAR": str(tmp_path)}
    env.pop("CARDSWITCH_LMK_FILE", None)
    done = subprocess.run(
        [sys.executable, "-m", "cardswitch.cli", "hsm", "lmk-load", "--components", "2"],
        input=f"{first.hex()}\n{second.hex()}\n", capture_output=True, text=True, env=env,
        timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    lmk_key = (tmp_path / "hsm" / "lmk.key").read_bytes()
    assert lmk_key == bytes(a ^ b for a, b in zip(first, second, strict=True))
    assert f"component 1 KCV {lmk.check_value(first)}" in done.stderr
    assert f"KCV {lmk.check_value(lmk_key)}" in done.stdout
    assert first.hex() not in done.stdout + done.stderr  # components are never echoed

    again = subprocess.run(
        [sys.executable, "-m", "cardswitch.cli", "hsm", "lmk-load"],
        input=f"{first.hex()}\n{'zz' * 32}\n", capture_output=True, text=True, env=env,
        timeout=60, check=False)
    assert again.returncode == 2
    assert "component 2: must be 64 hex digits" in again.stderr


def test_lmk_components_must_differ_and_be_32_bytes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="two components are equal"):
        lmk.from_components([bytes(32), bytes(32)], path=tmp_path / "lmk.key")
    with pytest.raises(ValueError, match="component 2: must be 32 bytes"):
        lmk.from_components([bytes(32), bytes(16)], path=tmp_path / "lmk.key")
