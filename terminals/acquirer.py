"""An acquirer host's side of the switch's ISO 8583 port, for the end-to-end tests and the demo.

One connection carries many requests in flight. The switch answers in completion order, so each
request waits for the answer with its response MTI, terminal (DE 41) and STAN (DE 11), which
the switch repeats. Builders make the messages an acquirer sends: :func:`financial` (0100/0200),
:func:`reversal` (0400/0420 for an earlier request) and :func:`network` (0800).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from types import TracebackType

from cardswitch import currency, iso8583
from cardswitch.iso8583 import Dialect, Message

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30.0
#: Acquiring institution id (DE 32) the builders send; DE 90 repeats it.
ACQUIRER_ID = "123456"

Key = tuple[str, str, str]


def _match_key(message: Message, mti: str) -> Key:
    return mti, str(message.get("41", "")).rstrip(), str(message.get("11", ""))


class AcquirerClient:
    """One connection to an acquirer host port of the switch, requests matched to answers."""

    def __init__(self, host: str, port: int, dialect: Dialect = iso8583.DEFAULT) -> None:
        self.host, self.port, self.dialect = host, port, dialect
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[Key, asyncio.Future[Message]] = {}
        self._write_lock = asyncio.Lock()

    async def __aenter__(self) -> AcquirerClient:
        await self.connect()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def connect(self) -> None:
        reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self._reader_task = asyncio.create_task(self._read(reader), name="acquirer-client")

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
        self._fail(ConnectionError("acquirer client closed"))

    async def send(self, message: Message, timeout: float = DEFAULT_TIMEOUT_S) -> Message:
        """Sends a request and waits up to ``timeout`` s for its answer (TimeoutError after)."""
        answer_mti = iso8583.RESPONSE_MTI.get(str(message.get("t", "")))
        if answer_mti is None:
            raise ValueError(f"message: MTI {message.get('t')!r} is not a request the switch "
                             "answers")
        if self._writer is None:
            raise ConnectionError("acquirer client: not connected")
        key = _match_key(message, answer_mti)
        if key in self._pending:
            raise ValueError(f"message: {key} is already waiting for its answer")
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            data = self.dialect.frame(self.dialect.encode(message))
            async with self._write_lock:
                self._writer.write(data)
                await self._writer.drain()
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(key, None)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                frame = await self.dialect.read_frame(reader)
                answer = self.dialect.decode(frame.payload)
                future = self._pending.get(_match_key(answer, str(answer.get("t", ""))))
                if future is None or future.done():
                    log.warning("answer %s STAN %s matches no waiting request", answer.get("t"),
                                answer.get("11"))
                    continue
                future.set_result(answer)
        except (asyncio.IncompleteReadError, ConnectionError, iso8583.MessageError) as exc:
            self._fail(ConnectionError(f"acquirer client: connection lost ({exc})"))

    def _fail(self, exc: Exception) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(exc)


# -- message builders -----------------------------------------------------------------------


def times(now: dt.datetime) -> Message:
    """DE 7 (transmission, UTC MMDDhhmmss), DE 12 (local hhmmss) and DE 13 (local MMDD)."""
    utc = now.astimezone(dt.UTC) if now.tzinfo else now
    return {"7": utc.strftime("%m%d%H%M%S"), "12": now.strftime("%H%M%S"),
            "13": now.strftime("%m%d")}


def financial(mti: str, proc: str, terminal_id: str, merchant_id: str, stan: int,
              amount_minor: int, currency_alpha: str, *, now: dt.datetime,
              track2: str = "", pan: str = "", expiry_yymm: str = "", cvv2: str = "",
              pin_block: bytes = b"", chip: bytes = b"", entry_mode: str = "",
              mcc: str = "") -> Message:
    """A 0100/0200: ``proc`` the DE 3 processing code (000000 purchase, 200000 refund,
    310000 balance), ``entry_mode`` DE 22 (e.g. "021" magstripe without PIN, "051" chip)."""
    found = currency.by_alpha(currency_alpha)
    if found is None:
        raise ValueError(f"currency_alpha: unknown ISO 4217 currency {currency_alpha!r}")
    message: Message = {"t": mti, "3": proc, "4": f"{amount_minor:012d}", "11": f"{stan:06d}",
                        **times(now), "32": ACQUIRER_ID, "41": terminal_id,
                        "42": f"{merchant_id:<15}", "49": found.numeric}
    optional = {"2": pan, "14": expiry_yymm, "18": mcc, "22": entry_mode, "35": track2,
                "52": pin_block.hex().upper(), "55": chip.hex().upper()}
    message |= {de: value for de, value in optional.items() if value}
    if cvv2:
        message["48"] = iso8583.encode_de48({"C2": cvv2})
    return message


def reversal(original: Message, *, advice: bool = False, now: dt.datetime) -> Message:
    """The 0400 (void) or 0420 (advice: no answer came) of ``original``: its DE 3, 4, 11, 12, 13,
    37, 41, 42 and 49, and DE 90 naming it (MTI, STAN, DE 7, acquirer id)."""
    repeated = ("3", "4", "11", "12", "13", "32", "37", "41", "42", "49")
    return {"t": "0420" if advice else "0400",
            **{de: original[de] for de in repeated if de in original},
            "7": times(now)["7"],
            "90": (f"{original['t']}{original['11']}{original['7']}"
                   f"{original.get('32', ACQUIRER_ID):0>11}{'0' * 11}")}


def network(code: str, stan: int, *, now: dt.datetime) -> Message:
    """An 0800: ``code`` is DE 70 (001 sign-on, 002 sign-off, 301 echo)."""
    return {"t": "0800", "7": times(now)["7"], "11": f"{stan:06d}", "70": code}
