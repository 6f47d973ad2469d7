"""The HSM audit log: every command on one MAC-chained line, so any change to history shows."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import hmac
import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from hsm_sim import audit, lmk
from hsm_sim.audit import AuditError, AuditLog, KeyUse, VerifyReport

ZEROS = "0" * 64
ZPK = KeyUse("source", "zpk.acquirer", "08d7b4", "P0")
PIN_KEYS = [ZPK, KeyUse("destination", "zpk.issuer", "A1B2C3", "P0")]


@pytest.fixture
def lmk_file(tmp_path: Path) -> Path:
    return lmk.create(path=tmp_path / "lmk.key").path


@pytest.fixture
def key(lmk_file: Path) -> bytes:
    return audit.audit_key(lmk.load(lmk_file))


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "hsm" / "audit.log"


def write(path: Path, key: bytes, commands: list[str]) -> None:
    with AuditLog(path, key) as log:
        for command in commands:
            log.record(command, interface="grpc", keys=PIN_KEYS)


def lines(path: Path) -> list[str]:
    return path.read_text("utf-8").splitlines(keepends=True)


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines(path)]


def canonical(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"


def mac_under(key: bytes, record: dict[str, Any]) -> str:
    body = {name: value for name, value in record.items() if name != "mac"}
    return hmac.new(key, canonical(body).rstrip("\n").encode(), hashlib.sha256).hexdigest()


def five(path: Path, key: bytes) -> None:
    write(path, key, ["GenerateKey", "TranslatePin", "A0", "CA", "VerifyPin"])


def test_audit_key_is_hmac_sha256_of_the_lmk_over_a_fixed_label() -> None:
    # openssl dgst -sha256 -mac HMAC -macopt hexkey:00..00 <<< cardswitch.hsm.audit.v1
    assert audit.audit_key(bytes(32)).hex() == (
        "db7c314ab80c33e5af64a4cd10a183d7a1564c86955c2e675c3cea2ced1cb329"
    )
    with pytest.raises(ValueError, match="lmk_key: must be 32 bytes, got 16"):
        audit.audit_key(bytes(16))


def test_a_fresh_log_of_five_records_verifies(log_path: Path, key: bytes) -> None:
    five(log_path, key)

    report = audit.verify(log_path, key)

    assert report == VerifyReport(True, 5, None, "chain intact", records(log_path)[-1]["mac"])
    first = records(log_path)[0]
    assert sorted(first) == [
        "command", "interface", "keys", "mac", "prev", "result", "seq", "time",
    ]
    assert (first["seq"], first["command"], first["interface"], first["result"]) == (
        1, "GenerateKey", "grpc", "ok",
    )
    assert first["keys"] == [
        {"role": "source", "ref": "zpk.acquirer", "kcv": "08D7B4", "usage": "P0"},
        {"role": "destination", "ref": "zpk.issuer", "kcv": "A1B2C3", "usage": "P0"},
    ]
    assert first["prev"] == ZEROS
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", first["time"])
    assert lines(log_path)[0] == canonical(first)  # keys sorted, compact, one line


def test_each_record_links_to_the_previous_records_mac(log_path: Path, key: bytes) -> None:
    five(log_path, key)

    chain = records(log_path)

    assert [r["prev"] for r in chain] == [ZEROS] + [r["mac"] for r in chain[:-1]]


def test_reopening_the_log_continues_seq_and_chain(log_path: Path, key: bytes) -> None:
    five(log_path, key)
    write(log_path, key, ["TranslatePin", "TranslatePin", "CA"])

    chain = records(log_path)

    assert audit.verify(log_path, key).records == 8
    assert [r["seq"] for r in chain] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert chain[5]["prev"] == chain[4]["mac"]


@pytest.mark.parametrize(
    ("original", "edited"),
    [('"result":"ok"', '"result":"15"'), ('"kcv":"08D7B4"', '"kcv":"FFFFFF"')],
)
def test_editing_a_field_of_line_3_fails_its_mac(
    log_path: Path, key: bytes, original: str, edited: str
) -> None:
    five(log_path, key)
    text = lines(log_path)
    text[2] = text[2].replace(original, edited)
    log_path.write_text("".join(text), "utf-8")

    report = audit.verify(log_path, key)

    assert (report.ok, report.records, report.bad_line) == (False, 2, 3)
    assert report.reason == "line 3: MAC does not verify (edited?)"


def test_reformatting_a_line_without_changing_its_values_is_detected(
    log_path: Path, key: bytes
) -> None:
    five(log_path, key)
    text = lines(log_path)
    text[1] = json.dumps(json.loads(text[1]), indent=None) + "\n"  # ", " and ": " separators
    log_path.write_text("".join(text), "utf-8")

    assert audit.verify(log_path, key).reason == "line 2: not in canonical form (edited?)"


def test_deleting_line_3_leaves_a_seq_gap_at_line_3(log_path: Path, key: bytes) -> None:
    five(log_path, key)
    text = lines(log_path)
    del text[2]
    log_path.write_text("".join(text), "utf-8")

    report = audit.verify(log_path, key)

    assert (report.ok, report.bad_line) == (False, 3)
    assert report.reason == "line 3: seq 4 follows 2 (a line was deleted or moved)"


def test_deleting_the_first_line_is_detected(log_path: Path, key: bytes) -> None:
    five(log_path, key)
    log_path.write_text("".join(lines(log_path)[1:]), "utf-8")

    report = audit.verify(log_path, key)

    assert report.reason == "line 1: seq 2 where a log starts at 1 (lines deleted?)"


def test_swapping_lines_2_and_3_is_detected_at_line_2(log_path: Path, key: bytes) -> None:
    five(log_path, key)
    text = lines(log_path)
    text[1], text[2] = text[2], text[1]
    log_path.write_text("".join(text), "utf-8")

    report = audit.verify(log_path, key)

    assert (report.ok, report.bad_line) == (False, 2)
    assert report.reason == "line 2: seq 3 follows 1 (a line was deleted or moved)"


def test_a_line_from_another_chain_under_the_same_key_breaks_prev(
    tmp_path: Path, log_path: Path, key: bytes
) -> None:
    other = tmp_path / "other.log"
    five(log_path, key)
    five(other, key)
    text = lines(log_path)
    text[3] = lines(other)[3]  # seq 4 with a valid MAC, chained to the other log's line 3
    log_path.write_text("".join(text), "utf-8")

    report = audit.verify(log_path, key)

    assert report.reason == (
        "line 4: prev does not match line 3's mac (lines reordered or removed)"
    )


def test_truncating_the_last_line_midway_fails_at_the_last_line(
    log_path: Path, key: bytes
) -> None:
    five(log_path, key)
    data = log_path.read_bytes()
    log_path.write_bytes(data[: len(data) - 40])

    report = audit.verify(log_path, key)

    assert (report.ok, report.records, report.bad_line) == (False, 4, 5)
    assert report.reason == "line 5: not JSON (torn write?)"


def test_a_whole_last_line_without_its_newline_is_a_torn_write(
    log_path: Path, key: bytes
) -> None:
    five(log_path, key)
    log_path.write_bytes(log_path.read_bytes()[:-1])

    assert audit.verify(log_path, key).reason == "line 5: ends without a newline (torn write?)"


def test_a_line_appended_with_a_mac_under_a_wrong_key_is_named(
    log_path: Path, key: bytes
) -> None:
    five(log_path, key)
    last = records(log_path)[-1]
    forged: dict[str, Any] = {**last, "seq": 6, "prev": last["mac"], "command": "ExportKey"}
    forged["mac"] = mac_under(audit.audit_key(bytes(32)), forged)
    with log_path.open("a", encoding="utf-8") as out:
        out.write(canonical(forged))

    report = audit.verify(log_path, key)

    assert (report.ok, report.records, report.bad_line) == (False, 5, 6)
    assert report.reason == "line 6: MAC does not verify (edited?)"


def rechain(path: Path, start: int, mac_of: Any) -> None:
    """What an attacker without the LMK can do: rewrite the chain from line ``start`` on."""
    chain = records(path)
    for i in range(start - 1, len(chain)):
        chain[i]["prev"] = chain[i - 1]["mac"] if i else ZEROS
        body = {k: v for k, v in chain[i].items() if k != "mac"}
        chain[i]["mac"] = mac_of(canonical(body).rstrip("\n").encode())
    path.write_text("".join(canonical(r) for r in chain), "utf-8")


def test_a_chain_recomputed_with_bare_sha256_does_not_verify(
    log_path: Path, key: bytes
) -> None:
    five(log_path, key)
    text = lines(log_path)
    text[2] = text[2].replace('"result":"ok"', '"result":"15"')
    log_path.write_text("".join(text), "utf-8")
    rechain(log_path, 1, lambda body: hashlib.sha256(body).hexdigest())

    assert audit.verify(log_path, key).reason == "line 1: MAC does not verify (edited?)"


def test_a_chain_recomputed_from_the_edit_under_another_key_fails_at_the_edit(
    log_path: Path, key: bytes
) -> None:
    five(log_path, key)
    text = lines(log_path)
    text[2] = text[2].replace('"result":"ok"', '"result":"15"')
    log_path.write_text("".join(text), "utf-8")
    wrong = audit.audit_key(bytes(32))
    rechain(log_path, 3, lambda body: hmac.new(wrong, body, hashlib.sha256).hexdigest())

    report = audit.verify(log_path, key)

    assert (report.bad_line, report.reason) == (3, "line 3: MAC does not verify (edited?)")


def test_a_pan_in_detail_is_stored_masked(log_path: Path, key: bytes) -> None:
    with AuditLog(log_path, key) as log:
        log.record("VerifyPin", interface="host", result="01",
                   detail="card 4111111111111111 PIN mismatch")

    assert records(log_path)[0]["detail"] == "card 411111******1111 PIN mismatch"
    assert b"4111111111111111" not in log_path.read_bytes()


def test_long_hex_runs_in_detail_are_redacted_as_key_material_or_pin_blocks(
    log_path: Path, key: bytes
) -> None:
    with AuditLog(log_path, key) as log:
        log.record("CA", interface="host", result="15", detail="block 041234FEDCBA9876 bad")

    assert records(log_path)[0]["detail"] == "block <redacted> bad"


def test_key_material_has_no_way_in(log_path: Path, key: bytes) -> None:
    clear_key = "0123456789ABCDEFFEDCBA9876543210"
    with AuditLog(log_path, key) as log:
        with pytest.raises(ValueError, match=r"^keys\[0\]\.kcv: must be at most 6 hex digits"):
            log.record("A0", interface="host", keys=[KeyUse("generated", "zpk.new", clear_key)])
        with pytest.raises(ValueError, match=r"^detail: at most 200 characters, got 201$"):
            log.record("A0", interface="host", detail="x" * 201)

    assert [f.name for f in dataclasses.fields(KeyUse)] == ["role", "ref", "kcv", "usage"]
    assert log_path.read_bytes() == b""


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"interface": "http"}, r"interface: must be one of \['cli', 'grpc', 'host'\], got"),
        ({"interface": "grpc", "result": ""}, "result: must not be empty"),
        ({"interface": "grpc", "keys": [KeyUse("source", "")]}, r"keys\[0\]\.ref: must not"),
    ],
)
def test_record_names_the_bad_argument(
    log_path: Path, key: bytes, kwargs: dict[str, Any], message: str
) -> None:
    with AuditLog(log_path, key) as log, pytest.raises(ValueError, match=message):
        log.record("TranslatePin", **kwargs)


def test_opening_a_log_with_a_torn_last_line_raises_naming_the_line(
    log_path: Path, key: bytes
) -> None:
    five(log_path, key)
    torn = log_path.read_bytes()[:-40]
    log_path.write_bytes(torn)

    with pytest.raises(AuditError, match=r"audit log .*audit\.log: line 5: not JSON \(torn"):
        AuditLog(log_path, key)
    assert log_path.read_bytes() == torn


def test_opening_a_log_whose_tail_was_forged_raises(log_path: Path, key: bytes) -> None:
    five(log_path, key)

    with pytest.raises(AuditError, match="line 5: MAC does not verify"):
        AuditLog(log_path, audit.audit_key(bytes(32)))


def test_a_second_writer_on_the_same_file_is_refused(log_path: Path, key: bytes) -> None:
    with AuditLog(log_path, key), pytest.raises(AuditError, match="already open by another"):
        AuditLog(log_path, key)


def test_a_closed_log_refuses_records(log_path: Path, key: bytes) -> None:
    log = AuditLog(log_path, key)
    log.close()

    with pytest.raises(AuditError, match="closed"):
        log.record("A0", interface="cli")


def test_concurrent_writers_make_one_consecutive_chain(log_path: Path, key: bytes) -> None:
    log = AuditLog(log_path, key, fsync=False)

    def worker(n: int) -> None:
        for _ in range(200):
            log.record(f"Worker{n}", interface="grpc", keys=[ZPK])

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()

    chain = records(log_path)
    assert audit.verify(log_path, key).records == 1600
    assert [r["seq"] for r in chain] == list(range(1, 1601))
    assert sorted(r["command"] for r in chain) == sorted([f"Worker{n}" for n in range(8)] * 200)


def cli_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cardswitch hsm")
    audit.register(parser.add_subparsers(dest="hsm_command", required=True))
    return parser.parse_args(list(argv))


def test_cli_verify_reports_an_intact_chain(
    log_path: Path, key: bytes, lmk_file: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CARDSWITCH_LMK_FILE", str(lmk_file))
    five(log_path, key)
    args = cli_args("audit", "verify", "--file", str(log_path))

    assert args.func is audit.cmd_verify
    assert args.func(args) == 0
    assert capsys.readouterr().out == f"audit log {log_path}: 5 records, chain intact\n"


def test_cli_verify_names_the_first_bad_line(
    log_path: Path, key: bytes, lmk_file: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CARDSWITCH_LMK_FILE", str(lmk_file))
    five(log_path, key)
    text = lines(log_path)
    text[2] = text[2].replace('"result":"ok"', '"result":"00"')
    log_path.write_text("".join(text), "utf-8")

    code = audit.cmd_verify(argparse.Namespace(file=log_path))

    assert code == 1
    assert capsys.readouterr().err == (
        f"audit log {log_path}: line 3: MAC does not verify (edited?)\n"
    )


def test_cli_verify_finds_the_log_through_the_environment(
    log_path: Path, key: bytes, lmk_file: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CARDSWITCH_LMK_FILE", str(lmk_file))
    monkeypatch.setenv("CARDSWITCH_HSM_AUDIT_FILE", str(log_path))
    five(log_path, key)

    assert audit.default_path() == log_path
    assert audit.cmd_verify(argparse.Namespace(file=None)) == 0
    assert capsys.readouterr().out == f"audit log {log_path}: 5 records, chain intact\n"


def test_default_path_is_under_cardswitch_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARDSWITCH_VAR", str(tmp_path))
    monkeypatch.delenv("CARDSWITCH_HSM_AUDIT_FILE", raising=False)

    assert audit.default_path() == tmp_path / "hsm" / "audit.log"


def test_cli_verify_fails_on_a_missing_log_or_lmk(
    tmp_path: Path, lmk_file: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    missing = tmp_path / "none.log"
    monkeypatch.setenv("CARDSWITCH_LMK_FILE", str(lmk_file))
    assert audit.cmd_verify(argparse.Namespace(file=missing)) == 1
    assert capsys.readouterr().err == f"audit log {missing}: no such file\n"

    monkeypatch.setenv("CARDSWITCH_LMK_FILE", str(tmp_path / "no-lmk.key"))
    assert audit.cmd_verify(argparse.Namespace(file=missing)) == 1
    assert "no LMK at" in capsys.readouterr().err
