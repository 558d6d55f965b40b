"""Pipeline app factory: ``uvicorn --factory threadline.pipeline.main:create_app``."""

from __future__ import annotations

from fastapi import FastAPI

from threadline.kit.app import ServiceRuntime, Wiring, create_service_app
from threadline.pipeline import handlers
from threadline.pipeline.api import router
from threadline.pipeline.service import JobService, PipelineService
from threadline.pipeline.settings import Settings
from threadline.pipeline.store import (
    PIPELINE_INDEXES,
    MongoJobStore,
    MongoPipelineStore,
    PipelineThreads,
)

__all__ = ["create_app"]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    def wire(runtime: ServiceRuntime) -> Wiring:
        pipelines = MongoPipelineStore(runtime.database)
        jobs = MongoJobStore(runtime.database, outbox=runtime.outbox)
        threads = PipelineThreads(
            runtime.database, wait_seconds=settings.thread_projection_wait_seconds
        )
        job_service = JobService(pipelines=pipelines, jobs=jobs, threads=threads)
        handlers.subscribe(runtime.events, threads=threads, jobs=job_service)
        return Wiring(
            state={
                "pipelines": PipelineService(pipelines=pipelines, jobs=jobs),
                "jobs": job_service,
            }
        )

    return create_service_app(
        settings,
        title="Threadline pipeline",
        routers=(router,),
        indexes=PIPELINE_INDEXES,
        wire=wire,
    )
