"""Messaging app factory: ``uvicorn --factory threadline.messaging.main:create_app``."""

from __future__ import annotations

from fastapi import FastAPI

from threadline.kit.app import ServiceRuntime, create_service_app
from threadline.kit.directory import DIRECTORY_INDEXES, MongoDirectory, subscribe_directory
from threadline.messaging.api import router
from threadline.messaging.service import FirmSettingsService
from threadline.messaging.settings import Settings
from threadline.messaging.store import MongoFirmSettingsStore

__all__ = ["create_app"]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    def wire(runtime: ServiceRuntime) -> dict[str, object]:
        subscribe_directory(runtime.events, MongoDirectory(runtime.database))
        store = MongoFirmSettingsStore(runtime.database, outbox=runtime.outbox)
        return {"firm_settings": FirmSettingsService(store=store)}

    return create_service_app(
        settings,
        title="Threadline messaging",
        routers=[router],
        indexes=DIRECTORY_INDEXES,
        wire=wire,
    )
