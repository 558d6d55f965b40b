"""Messaging app factory: ``uvicorn --factory threadline.messaging.main:create_app``."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from fastapi import FastAPI
from prometheus_client import Counter, Gauge

from threadline.contracts import Topic
from threadline.kit.app import ServiceRuntime, Wiring, create_service_app, periodic
from threadline.kit.directory import MongoDirectory
from threadline.kit.ids import utc_now
from threadline.kit.pacing import InteractiveLoad, InteractiveLoadMiddleware
from threadline.messaging import attachments, automations, handlers, tasklists
from threadline.messaging.api import ROUTERS
from threadline.messaging.bulkprocess import BulkWorkerProcess, bulk_worker
from threadline.messaging.service import (
    Composer,
    DraftService,
    FirmSettingsService,
    MessageService,
    ThreadService,
)
from threadline.messaging.service.bulk import BulkService
from threadline.messaging.service.templates import TemplateService
from threadline.messaging.settings import Settings
from threadline.messaging.store import (
    MESSAGING_INDEXES,
    MongoDraftStore,
    MongoFirmSettingsStore,
    MongoMessageStore,
    MongoReadStore,
    MongoThreadStore,
)
from threadline.messaging.store.bulk import MongoBulkStore
from threadline.messaging.store.messages import number_internal_messages_for_clients
from threadline.messaging.store.taskdigests import MongoTaskDigests
from threadline.messaging.store.templates import MongoTemplateStore
from threadline.messaging.store.threads import flag_pending_first_messages
from threadline.messaging.stream import KafkaStreamFeed, StreamHub
from threadline.messaging.stream import router as stream_router

__all__ = ["create_app"]

DRAFT_PURGE_INTERVAL_SECONDS = 3600
TASK_DIGEST_POLL_SECONDS = 1.0
"""How often due batches of ticks are looked for (K4): a batch posts ≤ 1 s after its window."""
BULK_PACE_EXCLUDED = ("/v1/bulk-messages", "/v1/stream", "/healthz", "/readyz", "/metrics")
"""Requests a bulk job does not yield to: its own routes, the stream, probes and scrapes."""
INTERRUPTED_CREATION_AGE = timedelta(minutes=1)
"""Creations pending longer than this were cut short (a live one takes milliseconds)."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    interactive = InteractiveLoad()

    def wire(runtime: ServiceRuntime) -> Wiring:
        database, outbox = runtime.database, runtime.outbox
        directory = MongoDirectory(database)
        threads = MongoThreadStore(database, outbox=outbox)
        messages = MongoMessageStore(database, outbox=outbox)
        reads = MongoReadStore(database, outbox=outbox)
        drafts = MongoDraftStore(database)
        firm_settings = MongoFirmSettingsStore(database, outbox=outbox)
        handlers.subscribe(runtime.events, directory=directory)
        composer = Composer(directory=directory, max_body_bytes=settings.max_message_bytes)
        message_service = MessageService(
            threads=threads, messages=messages, reads=reads, composer=composer
        )
        # A message stored by a process that died before its thread recorded it: the relay
        # records it first, then publishes its event.
        runtime.outbox.before_relay(database["messages"], message_service.finish)
        attachments.subscribe(
            runtime.events,
            threads=threads,
            messages=messages,
            message_service=message_service,
        )
        task_messages = tasklists.TaskMessages(
            threads=threads,
            messages=messages,
            message_service=message_service,
            composer=composer,
            digests=MongoTaskDigests(database),
            window=timedelta(seconds=settings.task_digest_seconds),
        )
        tasklists.subscribe(runtime.events, task_messages=task_messages)
        registry = runtime.metrics.registry
        dropped = Counter(
            "threadline_stream_dropped_subscribers_total",
            "Stream connections closed because the client fell too far behind.",
            registry=registry,
        )
        hub = StreamHub(
            mentions=threads.mentioned_staff,
            queue_size=settings.stream_queue_size,
            on_dropped=dropped.inc,
        )
        Gauge(
            "threadline_stream_subscribers",
            "Stream connections open on this replica.",
            registry=registry,
        ).set_function(lambda: hub.connections)
        feed = KafkaStreamFeed(
            hub,
            topic=settings.kafka_topic_prefix + Topic.MESSAGING,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            client_id=f"threadline-{settings.service_name}-stream",
        )
        templates = TemplateService(
            store=MongoTemplateStore(database),
            directory=directory,
            max_body_bytes=settings.max_message_bytes,
        )
        thread_service = ThreadService(
            threads=threads,
            messages=messages,
            reads=reads,
            drafts=drafts,
            settings=firm_settings,
            directory=directory,
            message_service=message_service,
            templates=templates,
        )
        automations.subscribe(
            runtime.events,
            automations.PipelineAutomations(
                threads=threads,
                messages=messages,
                thread_service=thread_service,
                message_service=message_service,
                templates=templates,
                directory=directory,
            ),
        )

        bulk_store = MongoBulkStore(database)
        bulk_wake = asyncio.Event()
        if settings.bulk_worker == "process":
            bulk_work = BulkWorkerProcess(bulk_wake, interactive).run
        else:
            bulk_work = bulk_worker(
                runtime, settings, store=bulk_store, wake=bulk_wake, load=interactive
            ).run

        async def purge_expired_drafts() -> int:
            """D3: drafts expire after 90 days (queries already hide them; this frees space)."""
            return await drafts.purge_expired(now=utc_now())

        async def complete_interrupted_creations() -> int:
            """A thread whose creation a crash cut short gets its first message (see create)."""
            return await thread_service.complete_interrupted(older_than=INTERRUPTED_CREATION_AGE)

        async def migrate_client_numbers() -> None:
            await number_internal_messages_for_clients(database)

        async def migrate_pending_first_messages() -> None:
            await flag_pending_first_messages(database)

        return Wiring(
            migrations=[migrate_client_numbers, migrate_pending_first_messages],
            state={
                "stream": hub,
                "stream_feed": feed,
                "messages": message_service,
                "threads": thread_service,
                "drafts": DraftService(
                    drafts=drafts,
                    messages=message_service,
                    max_body_bytes=settings.max_message_bytes,
                ),
                "firm_settings": FirmSettingsService(store=firm_settings),
                "templates": templates,
                "bulk": BulkService(store=bulk_store, templates=templates, wake=bulk_wake),
            },
            on_shutdown=[hub.close_all],
            background=[
                periodic(
                    purge_expired_drafts,
                    every_seconds=DRAFT_PURGE_INTERVAL_SECONDS,
                    what="purged expired drafts",
                    leases=runtime.leases,
                ),
                periodic(
                    complete_interrupted_creations,
                    every_seconds=INTERRUPTED_CREATION_AGE.total_seconds(),
                    what="completed interrupted thread creations",
                    leases=runtime.leases,
                ),
                periodic(
                    task_messages.flush_due,
                    every_seconds=TASK_DIGEST_POLL_SECONDS,
                    what="posted batched task completions",
                    leases=runtime.leases,
                ),
                feed.run,
                bulk_work,
            ],
            readiness_checks={"stream": feed.ready},
        )

    app = create_service_app(
        settings,
        title="Threadline messaging",
        routers=(*ROUTERS, stream_router),
        indexes=MESSAGING_INDEXES,
        wire=wire,
    )
    # Outermost: a request's latency as its client sees it, what the bulk job yields to.
    app.add_middleware(InteractiveLoadMiddleware, load=interactive, exclude=BULK_PACE_EXCLUDED)
    return app
