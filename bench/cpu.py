"""CPU seconds spent by each process of a measurement, read from ``/proc``.

On a box with few cores the Authorize figure is bounded by CPU, not by waiting: every process on
the path (load generator, switch, HSM, issuer, PostgreSQL) competes for the same cores. Dividing
the CPU each one spent by the requests answered shows where an authorisation's cost goes and
what the best possible rate on this box is (cores / total CPU per request).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

_PROC = Path("/proc")
#: The database server's processes are counted by their command name.
POSTGRES = "postgres"
LOAD_GENERATOR = "load generator"


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process so far (0.0 once it has gone)."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return 0.0
    # Fields after the command name, which may itself hold spaces and parentheses.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def command_cpu_s(command: str) -> float:
    """CPU seconds of every process whose command name is ``command`` (e.g. the database)."""
    total = 0.0
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == command:
                total += process_cpu_s(int(entry.name))
        except OSError:
            continue
    return total


def _snapshot(pids: Mapping[str, int], commands: Iterable[str]) -> dict[str, float]:
    shot = {name: process_cpu_s(pid) for name, pid in pids.items()}
    shot.update((command, command_cpu_s(command)) for command in commands)
    shot[LOAD_GENERATOR] = sum(os.times()[:2])
    return shot


@dataclass
class CpuUse:
    """CPU seconds by process name over one measurement; ``per_request_ms`` divides by answers."""

    seconds: dict[str, float] = field(default_factory=dict)

    def per_request_ms(self, requests: int) -> dict[str, float]:
        if requests <= 0:
            return {name: 0.0 for name in self.seconds}
        return {name: round(1000 * s / requests, 3) for name, s in self.seconds.items()}

    def total_per_request_ms(self, requests: int) -> float:
        return round(sum(self.per_request_ms(requests).values()), 3)


@contextmanager
def measure(pids: Mapping[str, int], commands: Iterable[str] = ()) -> Iterator[CpuUse]:
    """Counts the CPU that ``pids`` (by name), ``commands`` and this process spend in the block."""
    commands = tuple(commands)
    use = CpuUse()
    before = _snapshot(pids, commands)
    try:
        yield use
    finally:
        after = _snapshot(pids, commands)
        use.seconds = {name: max(0.0, after[name] - before[name]) for name in before}


def ceiling_rps(total_ms_per_request: float, cores: int | None = None) -> float:
    """The rate at which the measured processes would use every core (0 if nothing measured)."""
    cores = cores or os.cpu_count() or 1
    return 1000 * cores / total_ms_per_request if total_ms_per_request > 0 else 0.0
