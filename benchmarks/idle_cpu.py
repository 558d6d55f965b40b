"""Idle CPU of a running local platform, optionally after storing many messages.

    .venv/bin/python benchmarks/idle_cpu.py [--messages 100000] [--seconds 60]

Reads the processes recorded in the stack's state directory (THREADLINE_STATE_DIR, as for
`./threadline status`): the five services and the `mongodb` server with its PostgreSQL.
With `--messages N` it first stores N messages (in threads of 100) straight into the
messaging database, then waits `--settle` seconds. It prints the CPU each process used
while idle, in percent of one core (each process with all its descendants). `--cleanup`
removes what `--messages` stored.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from threadline.devtools.stack import procs
from threadline.devtools.stack.config import SERVICES, StackConfig

FIRM = "idle-bench"
TICKS = os.sysconf("SC_CLK_TCK")


def _tree_ticks(leader: int) -> int:
    """CPU ticks of `leader` and every live descendant, including what their exited children
    used (PostgreSQL's processes each lead a session of their own, so a process group would
    miss them)."""
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        pid, ppid = int(entry.name), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        ticks[pid] = sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    total, pending = 0, [leader]
    while pending:
        pid = pending.pop()
        total += ticks.get(pid, 0)
        pending.extend(children.get(pid, []))
    return total


async def _store_messages(url: str, database: str, count: int) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, tz_aware=True)
    messages = client[database]["messages"]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    batch: list[dict[str, Any]] = []
    for i in range(count):
        thread = f"{FIRM}-thread-{i // 100:05d}"
        batch.append(
            {
                "_id": f"{FIRM}-msg-{i:07d}",
                "firm": FIRM,
                "thread_id": thread,
                "seq": i % 100 + 1,
                "client_seq": i % 100 + 1,
                "author": {"user_id": "staff-1", "kind": "staff"},
                "body": f"<p>Message {i} about the quarterly VAT return</p>",
                "internal": False,
                "deleted": False,
                "created_at": start + timedelta(seconds=i),
                "_outbox": [],
            }
        )
        if len(batch) == 1000:
            await messages.insert_many(batch)
            batch = []
    if batch:
        await messages.insert_many(batch)
    await client.close()


async def _cleanup(url: str, database: str) -> None:
    # Thread by thread: FerretDB on PostgreSQL cannot delete more than 65,535 documents in
    # one command (one SQL parameter per id), and a flat equality filter is pushed down.
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    messages = client[database]["messages"]
    for thread in await messages.distinct("thread_id", {"firm": FIRM}):
        await messages.delete_many({"thread_id": thread, "firm": FIRM})
    await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=15.0)
    parser.add_argument("--database", default="threadline_messaging")
    parser.add_argument("--cleanup", action="store_true")
    args = parser.parse_args()
    cfg = StackConfig.from_env()
    url = cfg.endpoints()["THREADLINE_MONGODB_URL"]
    if args.cleanup:
        asyncio.run(_cleanup(url, args.database))
        return
    if args.messages:
        began = time.monotonic()
        asyncio.run(_store_messages(url, args.database, args.messages))
        print(f"stored {args.messages} messages in {time.monotonic() - began:.0f}s")
    time.sleep(args.settle)
    leaders = {}
    for name in ("mongodb", *SERVICES):
        record = procs.read_record(cfg.run_dir, name)
        if record is None or not procs.is_alive(record):
            raise SystemExit(f"{name} is not running in {cfg.state_dir}")
        leaders[name] = record.pid
    before = {name: _tree_ticks(pid) for name, pid in leaders.items()}
    began = time.monotonic()
    time.sleep(args.seconds)
    elapsed = time.monotonic() - began
    used = {name: (_tree_ticks(pid) - before[name]) / TICKS for name, pid in leaders.items()}
    for name, seconds in used.items():
        print(f"  {name:10} {100 * seconds / elapsed:6.1f} % of a core")
    print(f"  {'total':10} {100 * sum(used.values()) / elapsed:6.1f} % of a core")


if __name__ == "__main__":
    main()
