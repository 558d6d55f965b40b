"""Tasks app factory: ``uvicorn --factory threadline.tasks.main:create_app``."""

from __future__ import annotations

from fastapi import FastAPI

from threadline.kit.app import ServiceRuntime, Wiring, create_service_app
from threadline.tasks import handlers
from threadline.tasks.api import ROUTERS
from threadline.tasks.service import TaskService
from threadline.tasks.settings import Settings
from threadline.tasks.store import (
    TASKS_INDEXES,
    MongoListStore,
    MongoRequestStore,
    MongoThreadProjection,
)

__all__ = ["create_app"]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    def wire(runtime: ServiceRuntime) -> Wiring:
        threads = MongoThreadProjection(runtime.database, wait_seconds=settings.thread_wait_seconds)
        tasks = TaskService(
            threads=threads,
            lists=MongoListStore(runtime.database, outbox=runtime.outbox),
            requests=MongoRequestStore(runtime.database, outbox=runtime.outbox),
        )
        handlers.subscribe(runtime.events, tasks=tasks, threads=threads)
        return Wiring(state={"tasks": tasks})

    return create_service_app(
        settings,
        title="Threadline tasks",
        routers=ROUTERS,
        indexes=TASKS_INDEXES,
        wire=wire,
    )
