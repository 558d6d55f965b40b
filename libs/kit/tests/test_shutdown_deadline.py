"""Shutdown is bounded by SHUTDOWN_DEADLINE_SECONDS even when a handler never finishes."""

import asyncio
from types import SimpleNamespace
from typing import Any

from structlog.testing import capture_logs

from threadline.kit.app import BACKGROUND_STOP_MIN_SECONDS, BROKER_STOP_MIN_SECONDS, _shut_down

IN_HAND = "threadline.messaging.v1/3/41"


class _HangingEvents:
    """A consumer whose record in hand never finishes: stopping it waits forever."""

    def __init__(self) -> None:
        self.in_hand = [IN_HAND]

    async def stop(self) -> None:
        await asyncio.Event().wait()


class _HangingBroker:
    def __init__(self) -> None:
        self.stop_called = False

    async def stop(self) -> None:
        self.stop_called = True
        await asyncio.Event().wait()


class _Outbox:
    async def drain(self) -> None:
        return None

    async def relay_once(self, *, grace_seconds: float) -> int:
        return 0


class _Mongo:
    def __init__(self) -> None:
        self.closed = False

    async def close(self) -> None:
        self.closed = True


async def test_shutdown_abandons_a_hanging_handler_and_broker_stop_at_the_deadline() -> None:
    broker, mongo = _HangingBroker(), _Mongo()
    runtime: Any = SimpleNamespace(
        settings=SimpleNamespace(shutdown_deadline_seconds=0.2),
        events=_HangingEvents(),
        outbox=_Outbox(),
        broker=broker,
        mongo=mongo,
    )
    background = asyncio.create_task(asyncio.Event().wait())
    bound = 0.2 + BROKER_STOP_MIN_SECONDS + 20  # generous: only "finishes at all" matters
    with capture_logs() as logs:
        await asyncio.wait_for(_shut_down(runtime, [background]), timeout=bound)
    assert broker.stop_called and mongo.closed and background.cancelled()
    abandoned = [entry for entry in logs if entry.get("abandoned_records") == [IN_HAND]]
    assert [entry["event"] for entry in abandoned] == [
        "shutdown deadline reached; pending events stay for the relay",
        "broker stop abandoned at the shutdown deadline; the records in hand are not "
        "committed and will be redelivered after the restart",
    ]


class _QuickEvents:
    in_hand: tuple[str, ...] = ()

    async def stop(self) -> None:
        return None


class _QuickBroker:
    async def stop(self) -> None:
        return None


async def _cleanup_that_hangs() -> None:
    """A background job whose clean-up never returns (like a Kafka client's ``stop()`` that
    waits on a connection that is gone)."""
    try:
        await asyncio.Event().wait()
    finally:
        await asyncio.Event().wait()


async def test_shutdown_leaves_a_background_job_whose_cleanup_hangs_and_names_it() -> None:
    """The CI failure of 2026-12-02: one job's clean-up hung, and shutdown waited for it
    until the test harness gave up after 60 s."""
    mongo = _Mongo()
    runtime: Any = SimpleNamespace(
        settings=SimpleNamespace(shutdown_deadline_seconds=0.2),
        events=_QuickEvents(),
        outbox=_Outbox(),
        broker=_QuickBroker(),
        mongo=mongo,
    )
    stuck = asyncio.create_task(_cleanup_that_hangs(), name="feed")
    await asyncio.sleep(0)
    bound = 0.2 + BACKGROUND_STOP_MIN_SECONDS + 20
    with capture_logs() as logs:
        await asyncio.wait_for(_shut_down(runtime, [stuck]), timeout=bound)
    assert mongo.closed and not stuck.done()
    [report] = [entry for entry in logs if entry["event"] == "background job did not stop in time"]
    assert report["job"] == "feed"
    assert any("in _cleanup_that_hangs" in link for link in report["awaits"])
    stuck.cancel()
