"""Reminders app factory: ``uvicorn --factory threadline.reminders.main:create_app``."""

from __future__ import annotations

from fastapi import FastAPI

from threadline.contracts.events.messaging import FirmChatSettingsChanged
from threadline.kit.app import ServiceRuntime, Wiring, create_service_app
from threadline.kit.directory import DIRECTORY_INDEXES, MongoDirectory, subscribe_directory
from threadline.reminders.api import router
from threadline.reminders.settings import Settings
from threadline.reminders.store import MongoFirmSettingsProjection

__all__ = ["create_app"]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    def wire(runtime: ServiceRuntime) -> Wiring:
        subscribe_directory(runtime.events, MongoDirectory(runtime.database))
        firm_settings = MongoFirmSettingsProjection(runtime.database)
        runtime.events.on(FirmChatSettingsChanged, firm_settings.apply)
        return Wiring(state={"firm_settings": firm_settings})

    return create_service_app(
        settings,
        title="Threadline reminders",
        routers=[router],
        indexes=DIRECTORY_INDEXES,
        wire=wire,
    )
