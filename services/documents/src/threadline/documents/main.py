"""Documents app factory: ``uvicorn --factory threadline.documents.main:create_app``."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from threadline.documents import handlers
from threadline.documents.api import ROUTERS
from threadline.documents.archives import ArchiveLimits
from threadline.documents.blobs import MinioBlobStore
from threadline.documents.service import DocumentService
from threadline.documents.settings import Settings
from threadline.documents.store import (
    DOCUMENTS_INDEXES,
    MongoDocumentStore,
    MongoUploadLedger,
)
from threadline.kit.app import ServiceRuntime, Wiring, create_service_app, periodic
from threadline.kit.directory import MongoDirectory
from threadline.kit.threads import ThreadProjection

__all__ = ["create_app"]

SWEEP_INTERVAL_SECONDS = 3600


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    blobs = MinioBlobStore(
        endpoint=settings.s3_endpoint,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key.get_secret_value(),
        bucket=settings.s3_bucket,
        region=settings.s3_region,
        part_size=settings.upload_part_size_bytes,
        buffer_parts=settings.upload_buffer_parts,
        parallel_parts=settings.upload_parallel_parts,
        download_chunk_bytes=settings.download_chunk_bytes,
        public_endpoint=settings.s3_public_endpoint,
        timeout_seconds=settings.s3_timeout_seconds,
        retries=settings.s3_retries,
    )

    def wire(runtime: ServiceRuntime) -> Wiring:
        directory = MongoDirectory(runtime.database)
        threads = ThreadProjection(
            runtime.database, wait_seconds=settings.thread_projection_wait_seconds
        )
        documents = DocumentService(
            documents=MongoDocumentStore(runtime.database, outbox=runtime.outbox),
            threads=threads,
            uploads=MongoUploadLedger(runtime.database),
            directory=directory,
            blobs=blobs,
            archive_limits=ArchiveLimits(
                max_entries=settings.zip_max_entries,
                max_total_bytes=settings.zip_max_total_bytes,
                max_ratio=settings.zip_max_ratio,
                ratio_min_bytes=settings.zip_ratio_min_bytes,
            ),
            presigned_url_seconds=settings.presigned_url_seconds,
            spool_dir=settings.spool_dir,
        )
        handlers.subscribe(
            runtime.events, documents=documents, directory=directory, threads=threads
        )

        async def sweep_abandoned_uploads() -> int:
            """Objects of uploads or deletions a crash cut short (nothing refers to them) go."""
            return await documents.sweep_abandoned_uploads(
                older_than=timedelta(hours=settings.abandoned_upload_hours)
            )

        return Wiring(
            state={"documents": documents, "blobs": blobs},
            on_startup=[blobs.ensure_bucket],
            background=[
                periodic(
                    sweep_abandoned_uploads,
                    every_seconds=SWEEP_INTERVAL_SECONDS,
                    what="swept abandoned uploads",
                    leases=runtime.leases,
                )
            ],
            readiness_checks={"object_storage": blobs.ready},
        )

    return create_service_app(
        settings,
        title="Threadline documents",
        routers=ROUTERS,
        indexes=DOCUMENTS_INDEXES,
        wire=wire,
    )
