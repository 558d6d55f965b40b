"""Builds a service: the runtime (Mongo, Kafka, outbox, event router) and the FastAPI app.

Each service's ``main.create_app`` calls ``create_service_app`` with its routers, indexes
and a ``wire`` callback that builds its own stores and services from the runtime,
registers its event handlers and returns a ``Wiring``: what the routes need, plus the
start-up steps, background jobs and readiness checks of the objects it built. Nothing is
created at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from types import FrameType
from typing import Any, Literal

import structlog
from fastapi import APIRouter, FastAPI, Response
from faststream.kafka import KafkaBroker
from pydantic import with_config
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from typing_extensions import TypedDict

from threadline.contracts import Topic
from threadline.kit.auth import Principal, TokenVerifier
from threadline.kit.bounded import cancel_within, finish_within
from threadline.kit.consumer import (
    PROCESSED_EVENTS_INDEXES,
    EventRouter,
    MongoProcessedEvents,
    dead_letter_topic,
)
from threadline.kit.diagnostics import install_task_dump
from threadline.kit.errors import install_problem_handlers
from threadline.kit.http import CurrentPrincipal
from threadline.kit.kafka import KafkaRecordPublisher, RecordPublisher, make_broker
from threadline.kit.leases import Leases, periodic
from threadline.kit.limits import install_body_limits
from threadline.kit.logs import RequestContextMiddleware, configure_logging
from threadline.kit.metrics import ServiceMetrics, metrics_router
from threadline.kit.mongo import IndexSpec, connect, ensure_indexes, ping
from threadline.kit.outbox import Outbox
from threadline.kit.responses import RESPONSE_CONFIG
from threadline.kit.settings import ServiceSettings
from threadline.kit.topics import provision_topics

__all__ = ["ServiceRuntime", "Wiring", "build_runtime", "create_service_app", "periodic"]

_log = structlog.get_logger(__name__)

PROCESSED_PURGE_INTERVAL_SECONDS = 3600


@with_config(RESPONSE_CONFIG)
class Liveness(TypedDict):
    status: Literal["ok"]
    service: str


@with_config(RESPONSE_CONFIG)
class Readiness(TypedDict):
    status: Literal["ready", "not ready"]
    checks: dict[str, bool]


@dataclass
class ServiceRuntime:
    """Everything a service wires its stores and use cases from."""

    settings: ServiceSettings
    mongo: AsyncMongoClient[dict[str, Any]]
    database: AsyncDatabase[dict[str, Any]]
    broker: KafkaBroker
    publisher: RecordPublisher
    """Publishes and waits for the acknowledgement; services go through ``outbox``, except
    work that keeps its own record of what it published (bulk jobs: see messaging)."""
    outbox: Outbox
    events: EventRouter
    processed: MongoProcessedEvents
    verifier: TokenVerifier
    leases: Leases
    metrics: ServiceMetrics
    draining: bool = False
    """Claims of this process (``periodic(..., leases=runtime.leases)`` runs a job once
    across replicas)."""


def build_runtime(settings: ServiceSettings) -> ServiceRuntime:
    mongo = connect(
        settings.mongodb_url,
        app_name=f"threadline-{settings.service_name}",
        timeout_seconds=settings.mongodb_timeout_seconds,
        socket_timeout_seconds=settings.mongodb_socket_timeout_seconds,
    )
    database = mongo[settings.database_name]
    broker = make_broker(
        settings.kafka_bootstrap_servers, client_id=f"threadline-{settings.service_name}"
    )
    publisher = KafkaRecordPublisher(broker, topic_prefix=settings.kafka_topic_prefix)
    processed = MongoProcessedEvents(database)
    metrics = ServiceMetrics(settings.service_name)
    events = EventRouter(
        service=settings.service_name,
        processed=processed,
        dead_letters=publisher,
        max_attempts=settings.consumer_max_attempts,
        backoff_seconds=settings.consumer_backoff_seconds,
        max_backoff_seconds=settings.consumer_max_backoff_seconds,
        transient_retry_seconds=settings.consumer_transient_retry_seconds,
    )
    verifier = TokenVerifier(
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        secret=settings.jwt_secret.get_secret_value() if settings.jwt_secret else None,
        public_key=settings.jwt_public_key,
        jwks_url=settings.jwt_jwks_url,
    )
    events.observe = metrics.event_outcome
    return ServiceRuntime(
        settings=settings,
        mongo=mongo,
        database=database,
        broker=broker,
        publisher=publisher,
        outbox=Outbox(publisher),
        events=events,
        processed=processed,
        verifier=verifier,
        leases=Leases(database),
        metrics=metrics,
    )


@dataclass(frozen=True)
class Wiring:
    """What a service's ``wire`` built. Each ``state`` entry becomes an attribute of
    ``app.state`` for the routes' dependencies; ``migrations`` run before the indexes are
    created (data a new index needs, e.g. values a new unique index must not refuse);
    ``on_startup`` steps run after the indexes exist; ``background`` coroutines run for the
    app's lifetime (e.g. purges); ``readiness_checks`` add service-specific dependencies
    to ``/readyz``."""

    state: Mapping[str, object] = field(default_factory=dict)
    migrations: Sequence[Callable[[], Awaitable[None]]] = ()
    on_startup: Sequence[Callable[[], Awaitable[None]]] = ()
    background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = ()
    readiness_checks: Mapping[str, Callable[[], Awaitable[bool]]] = field(default_factory=dict)
    on_shutdown: Sequence[Callable[[], Awaitable[None]]] = ()
    """Run first when SIGTERM arrives, before the server stops taking requests (e.g. close
    open streams with 1001)."""


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    routers: Sequence[APIRouter] = (),
    indexes: Sequence[IndexSpec] = (),
    wire: Callable[[ServiceRuntime], Wiring] | None = None,
) -> FastAPI:
    """The service's FastAPI app with health, problem details, logs and Kafka lifecycle."""
    configure_logging(service=settings.service_name, level=settings.log_level)
    runtime = build_runtime(settings)
    wired = wire(runtime) if wire is not None else Wiring()
    runtime.events.subscribe(
        runtime.broker,
        group_id=settings.consumer_group or None,
        start=settings.consumer_start,
        topic_prefix=settings.kafka_topic_prefix,
    )

    async def refresh_gauges() -> None:
        runtime.metrics.consumer_lag.clear()
        for (topic, partition), lag in (await runtime.events.lag()).items():
            runtime.metrics.consumer_lag.labels(topic, str(partition)).set(lag)

    runtime.metrics.on_scrape(refresh_gauges)
    runtime.metrics.track_outbox(runtime.outbox)

    async def purge_processed_ids() -> int:
        retention = timedelta(hours=settings.processed_events_retention_hours)
        return await runtime.processed.purge(older_than=retention)

    kit_jobs = [
        periodic(
            purge_processed_ids,
            every_seconds=PROCESSED_PURGE_INTERVAL_SECONDS,
            what="purged processed event ids",
            leases=runtime.leases,
        )
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for migration in wired.migrations:
            await migration()
        await ensure_indexes(runtime.database, [*PROCESSED_EVENTS_INDEXES, *indexes])
        for startup in wired.on_startup:
            await startup()
        if settings.kafka_provision_topics:
            await provision_topics(
                settings.kafka_bootstrap_servers,
                [
                    settings.kafka_topic_prefix + name
                    for name in [*Topic, dead_letter_topic(settings.service_name)]
                ],
                partitions=settings.kafka_topic_partitions,
                replication_factor=settings.kafka_topic_replication_factor,
            )
        await runtime.broker.start()
        tasks = [
            asyncio.create_task(
                runtime.outbox.run(
                    relay_interval_seconds=settings.outbox_relay_interval_seconds,
                    relay_grace_seconds=settings.outbox_relay_grace_seconds,
                ),
                name="outbox",
            ),
            *(
                asyncio.create_task(job(), name=job.__qualname__)
                for job in [*kit_jobs, *wired.background]
            ),
        ]
        restore_signal = _on_sigterm(lambda: _going_away(runtime, wired.on_shutdown))
        remove_task_dump = install_task_dump()
        try:
            yield
        finally:
            remove_task_dump()
            restore_signal()
            await _shut_down(runtime, tasks)

    app = FastAPI(title=title, lifespan=lifespan)
    app.state.runtime = runtime
    for name, value in wired.state.items():
        setattr(app.state, name, value)
    install_body_limits(app, settings)  # innermost: the routes read through its receive
    app.middleware("http")(runtime.metrics.http_middleware)
    retry_after = settings.dependency_retry_after_seconds
    install_problem_handlers(app, retry_after_seconds=retry_after)
    # added last: outermost, catches everything
    app.add_middleware(RequestContextMiddleware, retry_after_seconds=retry_after)
    app.include_router(_health_router(runtime, wired.readiness_checks))
    app.include_router(metrics_router(runtime.metrics))
    for router in routers:
        app.include_router(router)
    return app


def _on_sigterm(going_away: Callable[[], Awaitable[None]]) -> Callable[[], None]:
    """Run ``going_away`` when SIGTERM arrives, then hand the signal to the server's own
    handler (uvicorn then stops listening, finishes in-flight requests within
    ``--timeout-graceful-shutdown`` and runs the lifespan shutdown). Returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGTERM)

    def handle(signum: int, frame: FrameType | None) -> None:
        async def then_stop() -> None:
            try:
                await going_away()
            finally:
                if callable(previous):
                    previous(signum, frame)
                else:
                    raise SystemExit(0)

        loop.call_soon_threadsafe(lambda: loop.create_task(then_stop()))

    signal.signal(signal.SIGTERM, handle)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore


async def _going_away(
    runtime: ServiceRuntime, steps: Sequence[Callable[[], Awaitable[None]]]
) -> None:
    runtime.draining = True  # /readyz answers 503: load balancers stop sending requests
    _log.info("SIGTERM: shutting down", deadline_seconds=runtime.settings.shutdown_deadline_seconds)
    for step in steps:
        with contextlib.suppress(Exception):
            await step()


#: Time the broker's own stop gets even when draining used up the whole deadline.
BROKER_STOP_MIN_SECONDS = 2.0
#: Time cancelled background jobs get to unwind even when draining used up the deadline.
BACKGROUND_STOP_MIN_SECONDS = 2.0


async def _shut_down(runtime: ServiceRuntime, tasks: Sequence[asyncio.Task[None]]) -> None:
    """After the last request: stop consuming (the record in hand is finished and committed,
    or redelivered later), publish what the outbox still holds, then stop — all within the
    configured deadline (what is left stays pending for the relay of the next start).

    A handler that does not finish in time is abandoned: its record's offset is not
    committed, so the group redelivers it after the restart (consumers are idempotent)."""
    loop = asyncio.get_running_loop()
    deadline = runtime.settings.shutdown_deadline_seconds
    ends_at = loop.time() + deadline

    async def stop_consuming_and_drain() -> None:
        await runtime.events.stop()
        await runtime.outbox.drain()
        await runtime.outbox.relay_once(grace_seconds=0)

    try:
        if not await finish_within(stop_consuming_and_drain(), deadline, name="drain"):
            _log.warning(
                "shutdown deadline reached; pending events stay for the relay",
                deadline_seconds=deadline,
                abandoned_records=runtime.events.in_hand,
            )
    except Exception:  # broker or storage down: the outbox relay publishes after restart
        _log.warning("draining at shutdown failed", exc_info=True)
    await cancel_within(tasks, within=max(ends_at - loop.time(), BACKGROUND_STOP_MIN_SECONDS))
    stop_within = max(ends_at - loop.time(), BROKER_STOP_MIN_SECONDS)
    try:
        if not await finish_within(runtime.broker.stop(), stop_within, name="broker stop"):
            _log.warning(
                "broker stop abandoned at the shutdown deadline; the records in hand are not "
                "committed and will be redelivered after the restart",
                waited_seconds=round(stop_within, 1),
                abandoned_records=runtime.events.in_hand,
            )
    except Exception:
        _log.warning("broker stop failed", exc_info=True)
    await runtime.mongo.close()
    _log.info("shut down")


def _health_router(
    runtime: ServiceRuntime, extra_checks: Mapping[str, Callable[[], Awaitable[bool]]]
) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="Liveness: the process answers.")
    async def healthz() -> Liveness:
        return {"status": "ok", "service": runtime.settings.service_name}

    timeout = runtime.settings.readiness_timeout_seconds

    async def bounded(check: Callable[[], Awaitable[bool]]) -> bool:
        """A check that fails, or does not answer within the readiness timeout, is false
        (``finish_within``: a check absorbing its cancel must not hold ``/readyz``)."""
        answer = False

        async def run() -> None:
            nonlocal answer
            answer = await check()

        try:
            return await finish_within(run(), timeout, name="readiness check") and answer
        except Exception:  # the reason is the dependency's; readiness only says "not ready"
            return False

    async def mongodb() -> bool:
        return await ping(runtime.database)

    async def kafka() -> bool:
        return await runtime.broker.ping(timeout=timeout)

    checks_by_name: dict[str, Callable[[], Awaitable[bool]]] = {
        "mongodb": mongodb,
        "kafka": kafka,
        "consumer": runtime.events.positioned,
        **extra_checks,
    }

    @router.get(
        "/readyz",
        summary="Readiness: MongoDB and Kafka reachable, partitions assigned.",
        description=(
            "Every check runs at once, each bounded by `READINESS_TIMEOUT_SECONDS`, so a dead "
            "dependency shows as false within that time."
        ),
        responses={503: {"model": Readiness, "description": "Some check failed."}},
    )
    async def readyz(response: Response) -> Readiness:
        results = await asyncio.gather(*(bounded(check) for check in checks_by_name.values()))
        checks = {
            "accepting": not runtime.draining,
            **dict(zip(checks_by_name, results, strict=True)),
        }
        ready = all(checks.values())
        response.status_code = 200 if ready else 503
        return {"status": "ready" if ready else "not ready", "checks": checks}

    @router.get("/v1/me", summary="The caller's identity, as the token states it.")
    async def me(principal: CurrentPrincipal) -> Principal:
        return principal

    return router
