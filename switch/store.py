"""Journal statements: small functions of a Connection, run by :class:`switch.journal.Journal`.

Rows travel as plain dicts (column name -> value) so a step never holds an ORM session.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, and_, bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from switch.journal import BulkOp
from switch.models import JournalEntry, OutboxEvent, SafEntry, utcnow

J: Table = JournalEntry.__table__  # type: ignore[assignment]
Q: Table = SafEntry.__table__  # type: ignore[assignment]
E: Table = OutboxEvent.__table__  # type: ignore[assignment]


def _insert(conn: Connection, table: Any) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def rrn_for(journal_id: int, created: dt.datetime) -> str:
    """Retrieval reference number: YDDD (year digit, day of year) + 8 digits of the row id.

    Derived from the database id, so every switch node makes unique RRNs without a counter.
    """
    return f"{created.year % 10}{created.timetuple().tm_yday:03d}{journal_id % 100_000_000:08d}"


def _by_columns(ops: list[Any], key: Any) -> dict[frozenset[str], list[Any]]:
    groups: dict[frozenset[str], list[Any]] = {}
    for op in ops:
        groups.setdefault(frozenset(key(op)), []).append(op)
    return groups


@dataclass
class InsertEntry(BulkOp):
    """Op: inserts a journal row unless its idempotency key exists; returns its id or None.

    A batch of them is one multi-row INSERT ... ON CONFLICT DO NOTHING RETURNING.
    """

    row: dict[str, Any]

    @classmethod
    def execute_many(cls, conn: Connection, ops: list[Any]) -> list[Any]:
        stmt = _insert(conn, J).on_conflict_do_nothing().returning(J.c.id, J.c.transaction_id)
        ids: dict[str, int] = {}
        for group in _by_columns(ops, lambda op: op.row).values():
            rows = [op.row for op in group]
            result = conn.execute(stmt, rows) if len(rows) > 1 else conn.execute(stmt, rows[0])
            ids.update((tid, rid) for rid, tid in result)
        return [ids.get(op.row["transaction_id"]) for op in ops]


def insert_entry(row: dict[str, Any]) -> InsertEntry:
    return InsertEntry(row)


def insert_with_events(row: dict[str, Any], events: list[dict[str, Any]]) -> Any:
    """Op: a final journal row (an early decline) and its outbox events, atomically."""
    if not events:
        return InsertEntry(row)

    def op(conn: Connection) -> int | None:
        inserted: int | None = InsertEntry(row)(conn)
        if inserted is not None:
            conn.execute(E.insert(), events)
        return inserted
    return op


@dataclass
class Complete(BulkOp):
    """Op: records an outcome, with the original's new status, a store-and-forward entry and
    outbox events, atomically.

    A batch of them is one executemany UPDATE (plus the rare original/queue/event statements).
    """

    transaction_id: str
    values: dict[str, Any]
    original_update: tuple[str, dict[str, Any]] | None = None
    saf: dict[str, Any] | None = None
    events: list[dict[str, Any]] | None = None

    @classmethod
    def execute_many(cls, conn: Connection, ops: list[Any]) -> list[Any]:
        now = utcnow()
        for columns, group in _by_columns(ops, lambda op: op.values).items():
            stmt = update(J).where(J.c.transaction_id == bindparam("p_transaction_id")).values(
                {**{c: bindparam(f"p_{c}") for c in sorted(columns)}, "updated_at": now})
            params = [{"p_transaction_id": op.transaction_id,
                       **{f"p_{k}": v for k, v in op.values.items()}} for op in group]
            conn.execute(stmt, params if len(params) > 1 else params[0])
        events = [e for op in ops for e in (op.events or ())]
        if events:
            conn.execute(E.insert(), events)
        for op in ops:
            if op.original_update is not None:
                tid, ovalues = op.original_update
                conn.execute(update(J).where(J.c.transaction_id == tid)
                             .values(**ovalues, updated_at=now))
            if op.saf is not None:
                conn.execute(_insert(conn, Q).values(**op.saf).on_conflict_do_nothing())
        return [None] * len(ops)


def complete(
    transaction_id: str,
    values: dict[str, Any],
    *,
    original_update: tuple[str, dict[str, Any]] | None = None,
    saf: dict[str, Any] | None = None,
    events: list[dict[str, Any]] | None = None,
) -> Complete:
    return Complete(transaction_id, values, original_update, saf, events or None)


def enqueue_reversal(reversal: dict[str, Any]) -> Any:
    """Op: queues a reversal advice (0420) for a transaction unless one is queued already."""
    now = utcnow()
    entry = {"mti": "0420", "attempts": 0, "created_at": now, "next_attempt_at": now, **reversal}

    def op(conn: Connection) -> None:
        conn.execute(_insert(conn, Q).values(**entry).on_conflict_do_nothing())
    return op


def stood_in_today(conn: Connection, pan_token: str, now: dt.datetime) -> tuple[int, int]:
    """(amount, count) of this card's stand-in approvals since midnight UTC."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    row = conn.execute(select(func.coalesce(func.sum(J.c.approved_amount_minor), 0),
                              func.count()).where(
        J.c.pan_token == pan_token, J.c.created_at >= midnight, J.c.stood_in.is_(True),
        J.c.status.in_(("APPROVED", "CAPTURED")))).one()
    return int(row[0]), int(row[1])


def row_to_dict(row: Any) -> dict[str, Any] | None:
    return dict(row._mapping) if row is not None else None


def by_transaction_id(conn: Connection, transaction_id: str) -> dict[str, Any] | None:
    return row_to_dict(conn.execute(select(J).where(J.c.transaction_id == transaction_id)).first())


def by_request_key(conn: Connection, terminal_id: str, stan: str, local_date_time: str,
                   request_id: str | None = None) -> dict[str, Any] | None:
    if request_id:
        cond = J.c.request_id == request_id
    else:
        cond = and_(J.c.terminal_id == terminal_id, J.c.stan == stan,
                    J.c.local_date_time == local_date_time)
    return row_to_dict(conn.execute(select(J).where(cond)).first())


def refunded_total(conn: Connection, original_transaction_id: str) -> int:
    rows = conn.execute(select(J.c.approved_amount_minor).where(
        J.c.original_transaction_id == original_transaction_id, J.c.type == "refund",
        J.c.status == "APPROVED")).all()
    return sum(r[0] or 0 for r in rows)


def claim_due(node: str, limit: int, lease_s: float) -> Any:
    """Op: leases the due, unacknowledged store-and-forward entries of each link, oldest first.

    Per link, entries are taken in queue order and only up to the first one that is not due
    yet, so a later advice never overtakes an earlier one for the same issuer. Leases make it
    safe for several switch nodes to run the worker on one database.
    """
    def op(conn: Connection) -> list[dict[str, Any]]:
        now = utcnow()
        rows = conn.execute(
            select(Q.c.id, Q.c.issuer_link, Q.c.next_attempt_at, Q.c.locked_until)
            .where(Q.c.acknowledged_at.is_(None)).order_by(Q.c.id).limit(limit * 4)).all()
        blocked: set[str] = set()
        claimed = []
        for qid, link, next_at, locked in rows:
            if link in blocked:
                continue
            if _aware(next_at) > now or (locked is not None and _aware(locked) >= now):
                blocked.add(link)  # an earlier entry of this link waits: keep the order
                continue
            res = conn.execute(update(Q).where(
                Q.c.id == qid, or_(Q.c.locked_until.is_(None), Q.c.locked_until < now))
                .values(locked_until=now + dt.timedelta(seconds=lease_s)))
            if res.rowcount == 1:
                claimed.append(row_to_dict(conn.execute(select(Q).where(Q.c.id == qid)).first()))
            if len(claimed) >= limit:
                break
        return [c for c in claimed if c is not None]
    return op


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def saf_acknowledged(queue_id: int, transaction_id: str, mti: str) -> Any:
    """Op: the issuer acknowledged the entry; a reversal marks its transaction REVERSED."""
    def op(conn: Connection) -> None:
        now = utcnow()
        conn.execute(update(Q).where(Q.c.id == queue_id).values(
            acknowledged_at=now, locked_until=None, attempts=Q.c.attempts + 1, last_error=None))
        if mti.startswith("04"):
            conn.execute(update(J).where(J.c.transaction_id == transaction_id).values(
                reversal_acknowledged=True, updated_at=now, status="REVERSED"))
    return op


def release(queue_ids: list[int]) -> Any:
    """Op: gives leased entries back untouched (an earlier one of their link failed)."""
    def op(conn: Connection) -> None:
        if queue_ids:
            conn.execute(update(Q).where(Q.c.id.in_(queue_ids)).values(locked_until=None))
    return op


def saf_failed(queue_id: int, attempts: int, error: str) -> Any:
    def op(conn: Connection) -> None:
        delay = min(2 ** min(attempts, 6), 60)
        conn.execute(update(Q).where(Q.c.id == queue_id).values(
            attempts=attempts + 1, last_error=error[:200], locked_until=None,
            next_attempt_at=utcnow() + dt.timedelta(seconds=delay)))
    return op


def saf_entries(conn: Connection, link: str, include_acknowledged: bool,
                limit: int) -> list[dict[str, Any]]:
    stmt = select(Q).order_by(Q.c.id).limit(limit)
    if link:
        stmt = stmt.where(Q.c.issuer_link == link)
    if not include_acknowledged:
        stmt = stmt.where(Q.c.acknowledged_at.is_(None))
    return [dict(r._mapping) for r in conn.execute(stmt)]


def saf_pending_by_link(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(Q.c.issuer_link, func.count()).where(
        Q.c.acknowledged_at.is_(None)).group_by(Q.c.issuer_link))
    return {str(link): int(n) for link, n in rows}


def events_after(conn: Connection, after_id: int, type_prefix: str,
                 limit: int) -> list[dict[str, Any]]:
    stmt = select(E).where(E.c.id > after_id).order_by(E.c.id).limit(limit)
    if type_prefix:
        stmt = stmt.where(E.c.type.startswith(type_prefix))
    return [dict(r._mapping) for r in conn.execute(stmt)]


def stale_pending(older_than: dt.datetime) -> Any:
    """Op: PENDING rows left by a crashed process become TIMED_OUT with a queued reversal.

    The RRN the dead process sent is derived again from the row id and creation time.
    """
    def op(conn: Connection) -> int:
        rows = conn.execute(select(J.c.id, J.c.transaction_id, J.c.issuer_link, J.c.type,
                                   J.c.created_at, J.c.rrn).where(
            J.c.status == "PENDING", J.c.created_at < older_than)).all()
        for jid, tid, link, kind, created, rrn in rows:
            conn.execute(update(J).where(J.c.transaction_id == tid, J.c.status == "PENDING")
                         .values(status="TIMED_OUT", response_code="91", updated_at=utcnow(),
                                 rrn=rrn or rrn_for(jid, created),
                                 reason="switch restarted before the issuer answered"))
            if link and kind not in ("balance", "capture"):
                now = utcnow()
                conn.execute(_insert(conn, Q).values(
                    transaction_id=tid, mti="0420", issuer_link=link, reason="recovery",
                    attempts=0, created_at=now, next_attempt_at=now)
                    .on_conflict_do_nothing())
        return len(rows)
    return op
