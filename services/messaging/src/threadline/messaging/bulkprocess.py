"""The bulk worker in a process of its own (P2: interactive traffic stays fast during a job).

A bulk job's Python work — reading the firm's directory, rendering and sanitising every
thread, encoding the batches, publishing their events — ran on the API's event loop, so a
request arriving meanwhile waited behind it: in ``benchmarks/bulk.py`` the post p99 during
a job was 4-5 x the idle p99 in-process, and 2.2 x with the worker in its own process at
``nice`` 10 (3.2 x at the same priority). So by default (``MESSAGING_BULK_WORKER=process``)
the messaging app starts ``python -m threadline.messaging.bulkprocess`` as its child and
the operating system schedules the two: the API first.

The child reads the same settings from the environment, connects to MongoDB and Kafka
itself and works jobs exactly as the in-process worker does (the same ``BulkWorker``,
paced the same way: the app writes each interactive request's start and end down the pipe,
``InteractiveLoad.forward_to``, and the child's ``InteractiveLoad`` takes them in). Its
standard input is the link to the app: a line per new or cancelled job wakes it, a line
per request start and end paces it, and end-of-file
(the app stopped, or died: the kernel closes the pipe) stops it, so no child outlives its
app. It ignores SIGTERM and SIGINT: a signal to the whole process group (``./threadline
stop``, Ctrl-C) reaches the app too, which then closes the pipe once its own shutdown
begins, and a child stopped by the signal would be restarted by an app still running.
The app restarts a child that exited. ``MESSAGING_BULK_WORKER=in-process`` keeps the
worker on the app's loop (the in-process integration tests do).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading

import structlog

from threadline.kit.app import ServiceRuntime, build_runtime
from threadline.kit.bounded import cancel_within, finish_within
from threadline.kit.diagnostics import install_task_dump
from threadline.kit.directory import MongoDirectory
from threadline.kit.logs import configure_logging
from threadline.kit.pacing import InteractiveLoad, PaceSettings, RequestListener
from threadline.messaging.service.bulk import BulkWorker, WorkerSettings
from threadline.messaging.settings import Settings
from threadline.messaging.store import MongoMessageStore, MongoThreadStore
from threadline.messaging.store.bulk import MongoBulkStore

__all__ = [
    "BulkWorkerProcess",
    "bulk_worker",
    "forward_requests",
    "main",
    "take_line",
    "worker_settings",
]

_log = structlog.get_logger("threadline.messaging.bulkprocess")  # also when run as __main__
WAKE = b"wake\n"
REQUEST_STARTED = b"started\n"
REQUEST_ENDED = b"ended "
"""Followed by the request's seconds and a newline."""
RESTART_SECONDS = 1.0
"""Pause before a child that exited is started again."""
STOP_SECONDS = 10.0
"""How long a stopping child may take to finish its batch before it is killed."""
CLEAN_UP_STEP_SECONDS = 3.0
"""How long the child's clean-up waits for its worker to stop, and then for Kafka's client
(each may swallow its cancellation and hang; the rest of ``STOP_SECONDS`` is for MongoDB's)."""


def bulk_worker(
    runtime: ServiceRuntime,
    settings: Settings,
    *,
    store: MongoBulkStore,
    wake: asyncio.Event,
    load: InteractiveLoad,
) -> BulkWorker:
    """The worker as the settings configure it (in the app or in the child)."""
    database = runtime.database
    return BulkWorker(
        store=store,
        threads=MongoThreadStore(database, outbox=runtime.outbox),
        messages=MongoMessageStore(database, outbox=runtime.outbox),
        directory=MongoDirectory(database),
        publisher=runtime.publisher,
        leases=runtime.leases,
        wake=wake,
        load=load,
        settings=WorkerSettings(
            pace=PaceSettings(
                max_batch=settings.bulk_batch_size,
                min_batch=min(settings.bulk_min_batch_size, settings.bulk_batch_size),
                target_write_seconds=settings.bulk_target_write_seconds,
                latency_factor=settings.bulk_latency_factor,
                latency_floor_seconds=settings.bulk_latency_floor_seconds,
                max_wait_seconds=settings.bulk_max_yield_seconds,
                max_hold_seconds=settings.bulk_max_hold_seconds,
            ),
            pause_seconds=settings.bulk_pause_seconds,
            lease_seconds=settings.bulk_lease_seconds,
            poll_seconds=settings.bulk_poll_seconds,
            max_body_bytes=settings.max_message_bytes,
        ),
    )


class BulkWorkerProcess:
    """The app's side: keeps one child running for the app's lifetime and passes on its
    wake-ups and the app's requests."""

    def __init__(self, wake: asyncio.Event, load: InteractiveLoad) -> None:
        self._wake = wake
        self._load = load

    async def run(self) -> None:
        """Run a child, restarting it when it exits, until cancelled (then stop it)."""
        while True:
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "threadline.messaging.bulkprocess",
                stdin=asyncio.subprocess.PIPE,
            )
            _log.info("bulk worker process started", pid=child.pid)
            try:
                await self._serve(child)
            finally:
                if child.returncode is None:
                    await asyncio.shield(_stop(child))
            _log.warning("bulk worker process exited; restarting it", code=child.returncode)
            await asyncio.sleep(RESTART_SECONDS)

    async def _serve(self, child: asyncio.subprocess.Process) -> None:
        """Pass wake-ups and requests on until the child exits."""
        assert child.stdin is not None
        exited = asyncio.create_task(child.wait())
        stop_forwarding = self._load.forward_to(forward_requests(child.stdin))
        try:
            while not exited.done():
                woken = asyncio.create_task(self._wake.wait())
                await asyncio.wait({exited, woken}, return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
                if self._wake.is_set() and not exited.done():
                    self._wake.clear()
                    child.stdin.write(WAKE)
                    with contextlib.suppress(ConnectionError):
                        await child.stdin.drain()
        finally:
            stop_forwarding()
            exited.cancel()


def forward_requests(pipe: asyncio.StreamWriter) -> RequestListener:
    """Writes a request's start or end down the child's pipe (buffered: never waits)."""

    def forward(seconds: float | None) -> None:
        if not pipe.is_closing():
            pipe.write(
                REQUEST_STARTED if seconds is None else b"%s%.6f\n" % (REQUEST_ENDED, seconds)
            )

    return forward


def take_line(line: bytes, *, wake: asyncio.Event, load: InteractiveLoad) -> None:
    """The child's side of one line from the app."""
    if line == WAKE:
        wake.set()
    elif line == REQUEST_STARTED:
        load.started()
    elif line.startswith(REQUEST_ENDED):
        with contextlib.suppress(ValueError):
            load.finished(float(line[len(REQUEST_ENDED) :]))


async def _stop(child: asyncio.subprocess.Process) -> None:
    """End-of-file on its input stops the child after its batch; kill it if it lingers."""
    assert child.stdin is not None
    child.stdin.close()
    try:
        async with asyncio.timeout(STOP_SECONDS):
            await child.wait()
    except TimeoutError:
        child.kill()
        await child.wait()


def worker_settings(settings: Settings) -> Settings:
    """The child's settings: its MongoDB is the batch URL where one is set (the local stack
    serves that URL's writes at a lower CPU priority than the requests')."""
    if settings.mongodb_batch_url is None:
        return settings
    return settings.model_copy(update={"mongodb_url": settings.mongodb_batch_url})


async def _work(settings: Settings) -> None:
    runtime = build_runtime(settings)
    wake = asyncio.Event()
    load = InteractiveLoad()
    worker = bulk_worker(
        runtime, settings, store=MongoBulkStore(runtime.database), wake=wake, load=load
    )
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await runtime.broker.start()
    working = asyncio.create_task(worker.run(), name="bulk worker")
    remove_task_dump = install_task_dump()  # kill -USR1 <its pid>, as for the app
    try:
        while True:
            reading = asyncio.create_task(reader.readline())
            done, _ = await asyncio.wait({reading, working}, return_when=asyncio.FIRST_COMPLETED)
            reading.cancel()
            if working in done or not reading.result():
                break  # the worker failed, or end-of-file: the app is stopping or gone
            take_line(reading.result(), wake=wake, load=load)
        if working.done() and not working.cancelled() and working.exception() is not None:
            _log.error("bulk worker failed", exc_info=working.exception())
    finally:
        remove_task_dump()
        _exit_if_still_running_after(STOP_SECONDS)
        await cancel_within([working], within=CLEAN_UP_STEP_SECONDS)
        await finish_within(runtime.broker.stop(), CLEAN_UP_STEP_SECONDS, name="broker stop")
        await runtime.mongo.close()


def _exit_if_still_running_after(seconds: float) -> None:
    """End the process hard if its clean-up has not ended it within ``seconds``: a child
    must not outlive its app, and a job is crash-safe (a worker killed mid-batch loses
    nothing). Once, under a loaded CI run, a child whose app had been killed hung in its
    clean-up for minutes, idle on its event loop. A thread, so that it fires even if the
    event loop is blocked."""

    def exit_now() -> None:
        _log.warning("bulk worker process clean-up took too long; exiting", seconds=seconds)
        os._exit(3)

    timer = threading.Timer(seconds, exit_now)
    timer.daemon = True  # a clean exit does not wait for it
    timer.start()


def main() -> None:
    settings = Settings()
    configure_logging(service=settings.service_name, level=settings.log_level)
    for name in (signal.SIGTERM, signal.SIGINT):
        signal.signal(name, signal.SIG_IGN)
    os.nice(settings.bulk_worker_niceness)
    _log.info("bulk worker process working", niceness=os.nice(0))
    asyncio.run(_work(worker_settings(settings)))


if __name__ == "__main__":
    main()
