"""CPU accounting from /proc (Linux): the server process, this process, the whole machine.

On a 2-core machine the server, PostgreSQL and the load generator share the CPUs, so every
result says who used how much; and a run on a machine that was busy beforehand says so.
Elsewhere the numbers are simply missing.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _process_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        # The command name may contain spaces and parentheses: split after the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def _backends_seconds(database: str) -> float | None:
    """CPU seconds of the PostgreSQL backends connected to `database` (a local server)."""
    needle = f" {database} ".encode()
    total, found = 0.0, False
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # A backend's title: "postgres: <user> <database> <client> <state>".
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if title.startswith(b"postgres: ") and needle in title:
            seconds = _process_seconds(int(entry.name))
            if seconds is not None:
                total, found = total + seconds, True
    return total if found else None


def _machine_jiffies() -> tuple[float, float] | None:
    """(busy, total) jiffies of all cores since boot."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    if len(values) < 8:
        return None
    total = float(sum(values[:8]))  # user nice system idle iowait irq softirq steal
    return total - values[3] - values[4], total


@dataclass(frozen=True)
class Cpu:
    """A sample: the server's and this process's CPU seconds, the machine's jiffies."""

    server: float | None
    own: float
    postgres: float | None
    machine: tuple[float, float] | None

    @classmethod
    def now(cls, server_pid: int | None = None, database: str | None = None) -> Cpu:
        server = None if server_pid is None else _process_seconds(server_pid)
        postgres = None if database is None else _backends_seconds(database)
        return cls(server, time.process_time(), postgres, _machine_jiffies())

    def machine_cores_since(self, before: Cpu) -> float | None:
        """Cores' worth of CPU the whole machine used per second between the samples."""
        if self.machine is None or before.machine is None:
            return None
        busy = self.machine[1] - before.machine[1]
        return None if not busy else (self.machine[0] - before.machine[0]) / busy * _cores()

    def machine_busy_since(self, before: Cpu) -> float | None:
        """% of all cores busy between `before` and this sample."""
        if self.machine is None or before.machine is None:
            return None
        busy = self.machine[0] - before.machine[0]
        total = self.machine[1] - before.machine[1]
        return 100 * busy / total if total else None


@dataclass(frozen=True)
class Watched:
    """The processes whose CPU a run accounts for: the server and its database's backends."""

    server_pid: int
    database: str

    def sample(self) -> Cpu:
        return Cpu.now(self.server_pid, self.database)


@dataclass(frozen=True)
class Usage:
    """CPU used between two samples, in % of one core."""

    server: float | None
    postgres: float | None
    own: float
    # Everything else on the machine (other processes, hypervisor steal): ~0 when idle.
    other: float | None

    @classmethod
    def between(cls, before: Cpu, after: Cpu, seconds: float) -> Usage:
        server = _percent(before.server, after.server, seconds)
        postgres = _percent(before.postgres, after.postgres, seconds)
        own = 100 * (after.own - before.own) / seconds
        cores = after.machine_cores_since(before)
        other = None
        if cores is not None and server is not None and postgres is not None:
            other = max(0.0, 100 * cores - server - postgres - own)
        return cls(server, postgres, own, other)


def _percent(before: float | None, after: float | None, seconds: float) -> float | None:
    return None if before is None or after is None else 100 * (after - before) / seconds


def _cores() -> int:
    return os.cpu_count() or 1


def background_busy(seconds: float = 3.0) -> float | None:
    """% of all cores busy over `seconds` while the bench itself sleeps."""
    before = Cpu.now()
    time.sleep(seconds)
    return Cpu.now().machine_busy_since(before)
