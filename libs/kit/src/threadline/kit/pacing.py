"""Adaptive pacing: background work that yields to a service's interactive requests.

``InteractiveLoad`` is fed by ``InteractiveLoadMiddleware`` (every HTTP request except the
excluded path prefixes, e.g. the background work's own routes, health and streams): how
many requests are in flight, and their recent latency next to the latency measured while no
background work ran (the idle figure). ``Pace`` is what a background worker asks between its
batches: ``wait`` returns once no interactive request is in flight and recent latency is
within ``latency_factor`` x the idle figure — or after ``max_wait_seconds``, so the work
always progresses — and ``written`` sizes the next batch from the measured time of the
last one's writes (additive increase, multiplicative decrease: halved when a batch's writes
took longer than ``target_write_seconds``, grown by a step otherwise).

A worker therefore progresses at least ``min_batch`` items per ``max_wait_seconds`` plus
the time of one batch. The clock and the sleep are injectable for tests.

Within a batch, ``hold`` keeps each of the worker's storage commands back while a request is
in flight (at most ``max_hold_seconds`` each): a request's queries then share the storage
server only with the job's commands already running when it came, not with those that
would have started during it.

A worker in another process paces by the service's requests all the same: ``forward_to``
passes each request's start and end on (messaging writes them down its worker process's
pipe), and the other side feeds its own ``InteractiveLoad`` with ``started`` and
``finished``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "InteractiveLoad",
    "InteractiveLoadMiddleware",
    "Pace",
    "PaceSettings",
    "RequestListener",
]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
RequestListener = Callable[[float | None], None]
"""Told of each interactive request: ``None`` when it starts, its seconds when it ends."""


class InteractiveLoad:
    """In-flight interactive requests and their latency, recent and idle (both moving
    averages; ``smoothing`` is the weight of each new request)."""

    def __init__(
        self, *, clock: Clock = time.monotonic, smoothing: float = 0.2, recent_seconds: float = 2.0
    ) -> None:
        self._clock = clock
        self._smoothing = smoothing
        self._recent_seconds = recent_seconds
        self.in_flight = 0
        self.idle_latency: float | None = None
        self.recent_latency: float | None = None
        self._last_finished = float("-inf")
        self._background = 0
        self._background_ended = float("-inf")
        self._listeners: list[RequestListener] = []
        self._none_in_flight = asyncio.Event()
        self._none_in_flight.set()

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        """Count one interactive request while it runs, and its latency when it ends."""
        started = self._clock()
        self.started()
        self._tell(None)
        try:
            yield
        finally:
            seconds = self._clock() - started
            self.finished(seconds)
            self._tell(seconds)

    def started(self) -> None:
        """An interactive request started (here, or in the process that forwards them)."""
        self.in_flight += 1
        self._none_in_flight.clear()

    def finished(self, seconds: float) -> None:
        """An interactive request that took ``seconds`` ended. It is an idle figure when no
        background work ran at any time during it."""
        self.in_flight = max(0, self.in_flight - 1)  # an end whose start this side missed
        if not self.in_flight:
            self._none_in_flight.set()
        now = self._clock()
        idle = not self._background and self._background_ended <= now - seconds
        self._observe(seconds, idle=idle)
        self._last_finished = now

    async def none_in_flight(self) -> None:
        """Return once no interactive request is in flight."""
        await self._none_in_flight.wait()

    def forward_to(self, listener: RequestListener) -> Callable[[], None]:
        """Also tell ``listener`` of every request from now on; returns how to stop."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _tell(self, seconds: float | None) -> None:
        for listener in list(self._listeners):
            listener(seconds)

    @contextlib.contextmanager
    def background(self) -> Iterator[None]:
        """Mark background work running: requests meanwhile do not count as idle figures."""
        self._background += 1
        try:
            yield
        finally:
            self._background -= 1
            self._background_ended = self._clock()

    def latency_above(self, factor: float, floor_seconds: float) -> bool:
        """Whether requests that finished within ``recent_seconds`` were slower on average
        than ``factor`` x the idle latency (never below ``floor_seconds``)."""
        if self.recent_latency is None:
            return False
        if self._clock() - self._last_finished > self._recent_seconds:
            return False  # no recent request: nothing to protect from the work's effect
        idle = max(self.idle_latency or 0.0, floor_seconds)
        return self.recent_latency > factor * idle

    def _observe(self, seconds: float, *, idle: bool) -> None:
        self.recent_latency = _moving(self.recent_latency, seconds, self._smoothing)
        if idle:
            self.idle_latency = _moving(self.idle_latency, seconds, self._smoothing)


def _moving(average: float | None, sample: float, weight: float) -> float:
    return sample if average is None else average + weight * (sample - average)


class InteractiveLoadMiddleware:
    """Feeds ``load`` with every HTTP request whose path starts with none of ``exclude``."""

    def __init__(self, app: ASGIApp, *, load: InteractiveLoad, exclude: tuple[str, ...]) -> None:
        self._app = app
        self._load = load
        self._exclude = exclude

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(self._exclude):
            await self._app(scope, receive, send)
            return
        with self._load.request():
            await self._app(scope, receive, send)


@dataclass(frozen=True)
class PaceSettings:
    max_batch: int = 100
    min_batch: int = 10
    target_write_seconds: float = 0.5
    latency_factor: float = 1.5
    latency_floor_seconds: float = 0.02
    max_wait_seconds: float = 2.0
    check_seconds: float = 0.02
    """How often ``wait`` looks at the load again."""
    max_hold_seconds: float = 0.0
    """Longest ``hold`` of one storage command for the requests in flight (0: none)."""


class Pace:
    """Batch size and the wait between batches of one background job (see the module)."""

    def __init__(
        self,
        load: InteractiveLoad,
        settings: PaceSettings,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._load = load
        self._settings = settings
        self._clock = clock
        self._sleep = sleep
        self.batch_size = max(settings.min_batch, min(settings.max_batch, settings.max_batch // 2))
        self.waited_seconds = 0.0
        """Total time ``wait`` held the job back, for its log."""
        self.held_seconds = 0.0
        """Total time ``hold`` held storage commands back, for the job's log."""

    def busy(self) -> bool:
        """Whether interactive traffic needs the server now."""
        return self._load.in_flight > 0 or self._load.latency_above(
            self._settings.latency_factor, self._settings.latency_floor_seconds
        )

    async def wait(self) -> None:
        """Hold the job while interactive traffic is busy, at most ``max_wait_seconds``."""
        started = self._clock()
        while self.busy():
            left = self._settings.max_wait_seconds - (self._clock() - started)
            if left <= 0:
                break
            await self._sleep(min(self._settings.check_seconds, left))
        self.waited_seconds += self._clock() - started

    async def hold(self) -> None:
        """Hold one of the job's storage commands while interactive requests are in flight,
        at most ``max_hold_seconds``: their queries then do not share the storage server
        with the job's commands that would have started meanwhile."""
        if self._settings.max_hold_seconds <= 0 or not self._load.in_flight:
            return
        started = self._clock()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._settings.max_hold_seconds):
                await self._load.none_in_flight()
        self.held_seconds += self._clock() - started

    def written(self, seconds: float) -> None:
        """The last batch's writes took ``seconds``: size the next one (AIMD)."""
        settings = self._settings
        if seconds > settings.target_write_seconds:
            self.batch_size = max(settings.min_batch, self.batch_size // 2)
        else:
            step = max(1, settings.max_batch // 10)
            self.batch_size = min(settings.max_batch, self.batch_size + step)
