"""Tasks app factory: ``uvicorn --factory threadline.tasks.main:create_app``."""

from __future__ import annotations

from fastapi import FastAPI

from threadline.kit.app import ServiceRuntime, Wiring, create_service_app
from threadline.kit.directory import MongoDirectory, subscribe_directory
from threadline.kit.threads import ThreadProjection
from threadline.tasks import handlers
from threadline.tasks.api import ROUTERS
from threadline.tasks.service import TaskService
from threadline.tasks.settings import Settings
from threadline.tasks.store import (
    TASKS_INDEXES,
    MongoListStore,
    MongoRequestStore,
    MongoThreadSubjects,
)

__all__ = ["create_app"]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    def wire(runtime: ServiceRuntime) -> Wiring:
        threads = ThreadProjection(
            runtime.database, wait_seconds=settings.thread_projection_wait_seconds
        )
        directory = MongoDirectory(runtime.database)
        subscribe_directory(runtime.events, directory)
        tasks = TaskService(
            accounts=directory,
            threads=threads,
            subjects=MongoThreadSubjects(runtime.database),
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
