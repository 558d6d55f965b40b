"""A Threadline service as a real uvicorn subprocess, and the raw baseline's topic, for the
benchmarks.

Every benchmark starts services the same way: its own database and consumer group (so runs
never share state), the consumer reading from the end of the log, warnings only, then
waiting for ``/readyz``. ``ServiceProcess`` does exactly that once for all of them.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Mapping
from types import TracebackType

import httpx
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from threadline.devtools.ports import free_port

__all__ = ["ServiceProcess", "Steal", "create_raw_topic"]


class Steal:
    """The share of the machine's CPU time its host gave to other guests (``steal`` in
    ``/proc/stat``) since this was made: noise that no code measured here causes, printed
    beside the figures so a disturbed phase shows as one. ``None`` without ``/proc/stat``."""

    def __init__(self) -> None:
        self._start = _steal_and_total_jiffies()

    def share(self) -> float | None:
        end = _steal_and_total_jiffies()
        if self._start is None or end is None:
            return None
        steal, total = end[0] - self._start[0], end[1] - self._start[1]
        return steal / total if total else 0.0


def _steal_and_total_jiffies() -> tuple[int, int] | None:
    try:
        with open("/proc/stat") as stat:
            times = [int(field) for field in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal guest guest_nice; guests are in user.
    return (times[7], sum(times[:8])) if len(times) >= 8 else None


class ServiceProcess:
    """``threadline.<service>.main:create_app`` under uvicorn on a free loopback port.

    ``database`` and ``group`` become ``<SERVICE>_MONGODB_DATABASE`` and
    ``<SERVICE>_CONSUMER_GROUP``; ``env`` adds or overrides variables (e.g. settings under
    test, or ``<SERVICE>_LOG_LEVEL``). Use ``start``/``stop`` or ``async with``.
    """

    def __init__(
        self,
        service: str,
        *,
        database: str,
        group: str,
        env: Mapping[str, str] | None = None,
        ready_seconds: float = 120.0,
        log_path: str | None = None,
    ) -> None:
        self.service = service
        self.database = database
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        prefix = service.upper()
        self._env = {
            f"{prefix}_MONGODB_DATABASE": database,
            f"{prefix}_CONSUMER_GROUP": group,
            f"{prefix}_CONSUMER_START": "latest",
            f"{prefix}_LOG_LEVEL": "WARNING",
            **(env or {}),
        }
        self._ready_seconds = ready_seconds
        self._log_path = log_path
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError(f"{self.service} is not running")
        return self._process.pid

    async def launch(self) -> None:
        """Start the process without waiting for it to be ready (its output goes to
        ``log_path`` when given)."""
        log = None
        if self._log_path is not None:
            log = os.open(self._log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            self._process = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "uvicorn", "--factory"),
                f"threadline.{self.service}.main:create_app",
                *("--host", "127.0.0.1", "--port", str(self.port)),
                *("--log-level", "warning", "--no-access-log"),
                env=os.environ | self._env,
                stdout=log,
                stderr=log,
            )
        finally:
            if log is not None:
                os.close(log)

    async def wait_ready(self) -> None:
        """Poll ``/readyz`` until it answers 200; stop the process and raise if it never does."""
        deadline = time.monotonic() + self._ready_seconds
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if self._process is not None and self._process.returncode is not None:
                    break
                try:
                    if (await client.get(f"{self.url}/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        await self.stop()
        raise RuntimeError(f"{self.service} did not become ready within {self._ready_seconds} s")

    async def start(self) -> None:
        await self.launch()
        await self.wait_ready()

    async def stop(self, *, grace_seconds: float = 30.0) -> None:
        """SIGTERM (the service drains and shuts down), SIGKILL after ``grace_seconds``."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), grace_seconds)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def __aenter__(self) -> ServiceProcess:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


async def create_raw_topic(bootstrap: str, topic: str) -> None:
    """The one-partition topic a benchmark's raw baseline produces to (kept between runs)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    except Exception as exc:  # already there from an earlier run
        if "TopicAlreadyExists" not in type(exc).__name__ + str(exc):
            raise
    finally:
        await admin.close()
