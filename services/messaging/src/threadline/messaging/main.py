"""Messaging app factory: ``uvicorn --factory threadline.messaging.main:create_app``."""

from __future__ import annotations

import asyncio

import structlog
from fastapi import FastAPI

from threadline.kit.app import ServiceRuntime, create_service_app
from threadline.kit.directory import MongoDirectory
from threadline.messaging import attachments, handlers
from threadline.messaging.api import ROUTERS
from threadline.messaging.domain import utc_now
from threadline.messaging.service import (
    Composer,
    DraftService,
    FirmSettingsService,
    MessageService,
    ThreadService,
)
from threadline.messaging.settings import Settings
from threadline.messaging.store import (
    MESSAGING_INDEXES,
    MongoDraftStore,
    MongoFirmSettingsStore,
    MongoMessageStore,
    MongoReadStore,
    MongoThreadStore,
)
from threadline.messaging.stream import KafkaStreamFeed, StreamHub
from threadline.messaging.stream import router as stream_router

__all__ = ["create_app"]

_log = structlog.get_logger(__name__)
DRAFT_PURGE_INTERVAL_SECONDS = 3600


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    drafts_store: list[MongoDraftStore] = []
    feeds: list[KafkaStreamFeed] = []

    def wire(runtime: ServiceRuntime) -> dict[str, object]:
        database, outbox = runtime.database, runtime.outbox
        directory = MongoDirectory(database)
        threads = MongoThreadStore(database, outbox=outbox)
        messages = MongoMessageStore(database, outbox=outbox)
        reads = MongoReadStore(database, outbox=outbox)
        drafts = MongoDraftStore(database)
        firm_settings = MongoFirmSettingsStore(database, outbox=outbox)
        drafts_store.append(drafts)
        handlers.subscribe(runtime.events, directory=directory, threads=threads)
        composer = Composer(directory=directory, max_body_bytes=settings.max_message_bytes)
        message_service = MessageService(
            threads=threads, messages=messages, reads=reads, composer=composer
        )
        attachments.subscribe(
            runtime.events,
            database=database,
            threads=threads,
            messages=messages,
            message_service=message_service,
        )
        hub = StreamHub(mentions=threads.mentioned_staff, queue_size=settings.stream_queue_size)
        feeds.append(
            KafkaStreamFeed(
                hub,
                bootstrap_servers=settings.kafka_bootstrap_servers,
                client_id=f"threadline-{settings.service_name}-stream",
            )
        )
        return {
            "stream": hub,
            "messages": message_service,
            "threads": ThreadService(
                threads=threads,
                messages=messages,
                reads=reads,
                drafts=drafts,
                settings=firm_settings,
                directory=directory,
                message_service=message_service,
            ),
            "drafts": DraftService(
                drafts=drafts, messages=message_service, max_body_bytes=settings.max_message_bytes
            ),
            "firm_settings": FirmSettingsService(store=firm_settings),
        }

    async def purge_expired_drafts() -> None:
        """D3: drafts expire after 90 days (queries already hide them; this frees space)."""
        while True:
            try:
                purged = await drafts_store[0].purge_expired(now=utc_now())
                if purged:
                    _log.info("purged expired drafts", count=purged)
            except Exception:  # storage hiccup: try again next time
                _log.warning("draft purge failed", exc_info=True)
            await asyncio.sleep(DRAFT_PURGE_INTERVAL_SECONDS)

    async def run_stream_feed() -> None:
        await feeds[0].run()

    async def stream_positioned() -> bool:
        return await feeds[0].ready()

    return create_service_app(
        settings,
        title="Threadline messaging",
        routers=(*ROUTERS, stream_router),
        indexes=MESSAGING_INDEXES,
        wire=wire,
        background=[purge_expired_drafts, run_stream_feed],
        readiness_checks={"stream": stream_positioned},
    )
