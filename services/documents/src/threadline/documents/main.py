"""Documents app factory: ``uvicorn --factory threadline.documents.main:create_app``.

So far: platform plumbing plus the object-storage bucket (created at start-up, checked by
``/readyz``). Uploads, folders and zip extraction arrive with the documents issue.
"""

from __future__ import annotations

from fastapi import FastAPI

from threadline.documents.blobs import MinioBlobStore
from threadline.documents.settings import Settings
from threadline.kit.app import create_service_app

__all__ = ["create_app"]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    blobs = MinioBlobStore(
        endpoint=settings.s3_endpoint,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key.get_secret_value(),
        bucket=settings.s3_bucket,
        region=settings.s3_region,
    )
    return create_service_app(
        settings,
        title="Threadline documents",
        on_startup=[blobs.ensure_bucket],
        readiness_checks={"object_storage": blobs.ready},
    )
