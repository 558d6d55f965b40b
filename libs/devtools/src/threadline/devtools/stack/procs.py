"""Detached processes tracked by pid files, so `down` stops exactly what was started.

A record keeps the pid *and* the kernel start time of the process: a pid reused by an
unrelated process after a reboot or a crash is never mistaken for ours, and never signalled.

Processes are launched through a short-lived intermediate process, so they are never children
of the caller: a test that restarts Kafka leaves no zombie and no `Popen` object behind
(whose `ResourceWarning` would fail a `filterwarnings = error` test run).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = [
    "ProcessRecord",
    "is_alive",
    "kill",
    "port_open",
    "read_record",
    "spawn",
    "tail",
    "terminate",
]

_LAUNCHER = """\
import json, os, subprocess, sys
spec = json.load(sys.stdin)
with open(spec["log"], "ab") as log:
    proc = subprocess.Popen(
        spec["cmd"], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        cwd=spec["cwd"], env=spec["env"], start_new_session=True,
    )
sys.stdout.write(str(proc.pid))
sys.stdout.flush()
os._exit(0)
"""


@dataclass(frozen=True)
class ProcessRecord:
    """What the state directory remembers about one started process."""

    name: str
    pid: int
    start_ticks: int
    command: list[str]
    log: str
    started_at: float


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a pid, or None when it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def _reap(pid: int) -> None:
    # Only succeeds for our own children (e.g. a launcher); harmless otherwise.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def is_alive(record: ProcessRecord) -> bool:
    """True while the recorded process runs (not a zombie, not a reused pid)."""
    _reap(record.pid)
    if not Path("/proc").is_dir():  # not Linux: trust the pid alone
        try:
            os.kill(record.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    stat = _proc_stat(record.pid)
    return stat is not None and stat[0] not in {"Z", "X"} and stat[1] == record.start_ticks


def spawn(
    name: str,
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log: Path,
    run_dir: Path,
) -> ProcessRecord:
    """Start `command` detached (own session, output appended to `log`) and record it."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as handle:
        handle.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {name}\n".encode())
    spec = {"cmd": list(command), "env": dict(env), "cwd": str(cwd), "log": str(log)}
    launched = subprocess.run(  # noqa: S603 - our own interpreter and launcher
        [sys.executable, "-c", _LAUNCHER],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(launched.stdout.strip())
    stat = _proc_stat(pid)
    record = ProcessRecord(
        name=name,
        pid=pid,
        start_ticks=stat[1] if stat else 0,
        command=list(command),
        log=str(log),
        started_at=time.time(),
    )
    _write_record(run_dir, record)
    return record


def _record_path(run_dir: Path, name: str) -> Path:
    return run_dir / f"{name}.json"


def _write_record(run_dir: Path, record: ProcessRecord) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    target = _record_path(run_dir, record.name)
    temp = target.with_suffix(f".tmp{os.getpid()}")
    temp.write_text(json.dumps(asdict(record), indent=2))
    temp.replace(target)


def read_record(run_dir: Path, name: str) -> ProcessRecord | None:
    """The record of `name`, or None when there is none (or it is unreadable)."""
    try:
        return ProcessRecord(**json.loads(_record_path(run_dir, name).read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def forget(run_dir: Path, name: str) -> None:
    _record_path(run_dir, name).unlink(missing_ok=True)


def _signal(record: ProcessRecord, signum: int) -> None:
    # Each process leads its own session: signal the group so helpers die with it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(record.pid) == record.pid:
            os.killpg(record.pid, signum)
            return
    with contextlib.suppress(ProcessLookupError):
        os.kill(record.pid, signum)


def _wait_dead(record: ProcessRecord, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(record):
            return True
        time.sleep(0.1)
    return not is_alive(record)


def terminate(record: ProcessRecord, *, timeout: float) -> str:
    """SIGTERM, wait up to `timeout` seconds, then SIGKILL. Returns how it ended."""
    if not is_alive(record):
        return "not running"
    _signal(record, signal.SIGTERM)
    if _wait_dead(record, timeout):
        return "stopped"
    _signal(record, signal.SIGKILL)
    if _wait_dead(record, 10):
        return f"killed after {timeout:.0f}s"
    return "still running after SIGKILL"


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, their children, ...), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            raw = (entry / "stat").read_text()
            parent = int(raw[raw.rindex(")") + 2 :].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill(record: ProcessRecord, *, timeout: float = 10.0) -> str:
    """SIGKILL the recorded process, its group and every process below it at once (a crash,
    no shutdown), and wait until all of them are gone — also those that lead sessions of
    their own, like FerretDB's PostgreSQL: until it has vanished, a new PostgreSQL refuses
    to start on its data directory. Returns how it ended."""
    if not is_alive(record):
        return "not running"
    below = _descendants(record.pid) if Path("/proc").is_dir() else []
    _signal(record, signal.SIGKILL)
    for pid in below:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(record) and not any(Path(f"/proc/{pid}").exists() for pid in below):
            return "killed"
        time.sleep(0.05)
    return "still running after SIGKILL"


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a log file (empty when it does not exist)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(data.splitlines()[-lines:])
