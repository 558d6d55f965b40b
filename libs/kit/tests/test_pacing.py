"""Adaptive pacing of background work (P2 bulk jobs): a fake clock (real time only where a
storage command is held, bounded), no timing asserts."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from threadline.kit.pacing import InteractiveLoad, InteractiveLoadMiddleware, Pace, PaceSettings


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.on_sleep: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.on_sleep.append(seconds)
        self.now += seconds


def request_taking(load: InteractiveLoad, clock: FakeClock, seconds: float) -> None:
    with load.request():
        clock.now += seconds


SETTINGS = PaceSettings(
    max_batch=100,
    min_batch=10,
    target_write_seconds=0.5,
    latency_factor=2.0,
    latency_floor_seconds=0.01,
    max_wait_seconds=2.0,
    check_seconds=0.1,
)


def test_p2_idle_latency_counts_only_requests_without_background_work() -> None:
    clock = FakeClock()
    load = InteractiveLoad(clock=clock, smoothing=1.0)
    request_taking(load, clock, 0.05)
    with load.background():
        request_taking(load, clock, 0.9)
    assert load.idle_latency == pytest.approx(0.05)
    assert load.recent_latency == pytest.approx(0.9)
    assert load.latency_above(2.0, 0.01)
    assert not load.latency_above(20.0, 0.01)


def test_p2_latency_floor_and_staleness_keep_the_job_going() -> None:
    clock = FakeClock()
    load = InteractiveLoad(clock=clock, smoothing=1.0, recent_seconds=2.0)
    request_taking(load, clock, 0.001)
    with load.background():
        request_taking(load, clock, 0.015)
    assert not load.latency_above(2.0, 0.01)  # 15 ms is below 2 x the 10 ms floor
    with load.background():
        request_taking(load, clock, 0.5)
    assert load.latency_above(2.0, 0.01)
    clock.now += 2.5  # no request since: nothing to protect
    assert not load.latency_above(2.0, 0.01)


async def test_p2_wait_returns_at_once_when_nothing_is_in_flight() -> None:
    clock = FakeClock()
    load = InteractiveLoad(clock=clock)
    pace = Pace(load, SETTINGS, clock=clock, sleep=clock.sleep)
    await pace.wait()
    assert clock.on_sleep == []
    assert pace.waited_seconds == 0


async def test_p2_wait_holds_while_a_request_is_in_flight_and_goes_when_it_ends() -> None:
    clock = FakeClock()
    load = InteractiveLoad(clock=clock)
    request = load.request()
    request.__enter__()

    async def finish_after_three_checks(seconds: float) -> None:
        await clock.sleep(seconds)
        if len(clock.on_sleep) == 3:
            request.__exit__(None, None, None)

    pace = Pace(load, SETTINGS, clock=clock, sleep=finish_after_three_checks)
    await pace.wait()
    assert len(clock.on_sleep) == 3
    assert load.in_flight == 0


async def test_p2_wait_is_bounded_so_the_job_always_progresses() -> None:
    clock = FakeClock()
    load = InteractiveLoad(clock=clock)
    pace = Pace(load, SETTINGS, clock=clock, sleep=clock.sleep)
    with load.request():  # a request that never ends while the job waits
        await pace.wait()
        await pace.wait()
    assert sum(clock.on_sleep) == pytest.approx(2 * SETTINGS.max_wait_seconds)
    assert pace.waited_seconds == pytest.approx(2 * SETTINGS.max_wait_seconds)


async def test_p2_wait_holds_while_recent_latency_is_above_the_bound() -> None:
    clock = FakeClock()
    load = InteractiveLoad(clock=clock, smoothing=1.0, recent_seconds=0.5)
    request_taking(load, clock, 0.05)
    with load.background():
        request_taking(load, clock, 0.4)
        pace = Pace(load, SETTINGS, clock=clock, sleep=clock.sleep)
        await pace.wait()
    # held until the slow request was older than recent_seconds, not the whole bound
    assert 0.5 <= sum(clock.on_sleep) < SETTINGS.max_wait_seconds


async def test_p2_no_wait_when_max_wait_is_zero() -> None:
    clock = FakeClock()
    load = InteractiveLoad(clock=clock)
    pace = Pace(load, PaceSettings(max_wait_seconds=0.0), clock=clock, sleep=clock.sleep)
    with load.request():
        await pace.wait()
    assert clock.on_sleep == []


async def test_p2_hold_keeps_a_storage_command_back_until_the_requests_in_flight_end() -> None:
    load = InteractiveLoad()
    pace = Pace(load, PaceSettings(max_hold_seconds=60.0))
    load.started()
    load.started()
    held = asyncio.create_task(pace.hold())
    await asyncio.sleep(0.01)
    load.finished(0.01)
    await asyncio.sleep(0.01)
    assert not held.done()  # one request is still in flight
    load.finished(0.02)
    await asyncio.wait_for(held, 5)
    assert pace.held_seconds > 0


async def test_p2_hold_is_bounded_and_off_at_zero() -> None:
    load = InteractiveLoad()
    load.started()  # a request that never ends while the job holds
    bounded = Pace(load, PaceSettings(max_hold_seconds=0.01))
    await asyncio.wait_for(bounded.hold(), 5)
    assert bounded.held_seconds > 0
    off = Pace(load, PaceSettings(max_hold_seconds=0.0))
    await off.hold()
    assert off.held_seconds == 0


async def test_p2_hold_returns_at_once_when_nothing_is_in_flight() -> None:
    load = InteractiveLoad()
    load.started()
    load.finished(0.01)
    pace = Pace(load, PaceSettings(max_hold_seconds=60.0))
    await asyncio.wait_for(pace.hold(), 5)
    assert pace.held_seconds == 0


def test_p2_batch_size_grows_additively_and_halves_on_slow_writes() -> None:
    pace = Pace(InteractiveLoad(), SETTINGS)
    assert pace.batch_size == 50
    pace.written(0.1)
    assert pace.batch_size == 60
    for _ in range(10):
        pace.written(0.1)
    assert pace.batch_size == 100  # never above the largest
    pace.written(0.9)
    assert pace.batch_size == 50
    for _ in range(10):
        pace.written(5.0)
    assert pace.batch_size == 10  # never below the smallest


def test_p2_fixed_batch_size_when_smallest_equals_largest() -> None:
    pace = Pace(InteractiveLoad(), PaceSettings(max_batch=2, min_batch=2))
    pace.written(10.0)
    assert pace.batch_size == 2
    pace.written(0.0)
    assert pace.batch_size == 2


async def test_p2_middleware_counts_interactive_requests_but_not_excluded_paths() -> None:
    load = InteractiveLoad()
    app = FastAPI()
    seen: list[int] = []

    @app.get("/v1/threads")
    async def threads() -> dict[str, int]:
        seen.append(load.in_flight)
        return {}

    @app.get("/v1/bulk-messages")
    async def bulk() -> dict[str, int]:
        seen.append(load.in_flight)
        return {}

    app.add_middleware(InteractiveLoadMiddleware, load=load, exclude=("/v1/bulk-messages",))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        await client.get("/v1/threads")
        await client.get("/v1/bulk-messages")
    assert seen == [1, 0]
    assert load.in_flight == 0
    assert load.idle_latency is not None and load.recent_latency == load.idle_latency


def test_p2_requests_are_forwarded_to_listeners_until_stopped() -> None:
    clock = FakeClock()
    load = InteractiveLoad(clock=clock)
    told: list[float | None] = []
    stop = load.forward_to(told.append)
    request_taking(load, clock, 0.25)
    stop()
    request_taking(load, clock, 0.5)
    assert told == [None, pytest.approx(0.25)]


def test_p2_forwarded_requests_count_as_this_sides_own() -> None:
    clock = FakeClock()
    load = InteractiveLoad(clock=clock, smoothing=1.0)
    load.started()
    assert load.in_flight == 1
    clock.now += 0.05
    load.finished(0.05)
    assert (load.in_flight, load.idle_latency) == (0, pytest.approx(0.05))
    load.finished(0.05)  # an end whose start was missed (the receiver restarted)
    assert load.in_flight == 0


def test_p2_a_request_during_which_background_work_ran_is_no_idle_figure() -> None:
    clock = FakeClock()
    load = InteractiveLoad(clock=clock, smoothing=1.0)
    load.started()
    with load.background():  # began and ended while the request was in flight
        clock.now += 0.3
    clock.now += 0.1
    load.finished(0.4)
    assert load.idle_latency is None
    assert load.recent_latency == pytest.approx(0.4)
