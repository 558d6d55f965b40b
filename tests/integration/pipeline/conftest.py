"""Pipeline on real servers: messaging, tasks and pipeline side by side, one seeded firm.

Pipeline runs in its own exit stack so a test can stop it and start it again on the same
database and consumer group (a restart in the middle of the automove loop).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, TypeVar

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from threadline.contracts import Envelope
from threadline.contracts.topics import Topic
from threadline.kit.mongo import connect
from threadline.pipeline.main import create_app
from threadline.pipeline.settings import Settings

from ..conftest import ServiceFactory, TopicMark, keyed_events, mark_topic, seed_directory
from ..conftest import eventually as _eventually
from ..tasks.conftest import LEE, PATEL, Platform

__all__ = ["LEE", "PATEL", "PipelineFirm", "eventually", "pipeline_events"]

PATIENCE = 180.0
"""Seconds a cross-service wait may take: the shared test servers can be slow when several
suites run at once; correct code gets there far sooner, broken code never does."""
T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]], *, until: Callable[[T], bool], within: float = PATIENCE
) -> T:
    return await _eventually(probe, until=until, within=within)


class PipelineService:
    """A pipeline app this test can stop and start again (same database, same group)."""

    def __init__(self, run_id: str) -> None:
        self.settings = Settings(
            mongodb_database=f"it_pipeline_{run_id}",
            consumer_group=f"it-pipeline-{run_id}",
            outbox_relay_interval_seconds=0.3,
            outbox_relay_grace_seconds=1.0,
            consumer_backoff_seconds=0.05,
            consumer_start="latest",
        )
        self.app: FastAPI | None = None
        self.http: httpx.AsyncClient | None = None
        self._stack: AsyncExitStack | None = None

    async def start(self) -> None:
        self._stack = AsyncExitStack()
        app = create_app(self.settings)
        manager = await self._stack.enter_async_context(
            LifespanManager(app, startup_timeout=60, shutdown_timeout=60)
        )
        self.http = await self._stack.enter_async_context(
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=manager.app), base_url="http://pipeline"
            )
        )
        self.app = app
        http = self.http
        await eventually(lambda: http.get("/readyz"), until=lambda r: r.status_code == 200)

    async def stop(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = None


class PipelineFirm(Platform):
    """The tasks platform (messaging + tasks, tokens per user) plus pipeline."""

    pipeline: PipelineService
    pipeline_from: TopicMark
    """The pipeline topic's end when the firm was set up (``pipeline_events`` reads on)."""

    async def pipe(self, who: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        assert self.pipeline.http is not None
        return await self.pipeline.http.request(method, url, headers=self.auth(who), **kwargs)

    async def ok(self, response: httpx.Response, status: int = 200) -> dict[str, Any]:
        assert response.status_code == status, response.text
        return dict(response.json())

    async def new_template(
        self, *, tasks: list[str], subject: str = "Documents for [[date.year]]"
    ) -> str:
        body = {
            "name": subject,
            "subject": subject,
            "html": "<p>Hi [[contact.first_name]], please see the tasks for [[account.name]].</p>",
            "client_tasks": tasks,
        }
        template = await self.ok(await self.call("owner", "POST", "/v1/templates", json=body), 201)
        return str(template["id"])

    async def new_pipeline(
        self, stages: list[dict[str, Any]], name: str = "Individual 1040"
    ) -> dict[str, Any]:
        body = {"name": name, "stages": stages}
        return await self.ok(await self.pipe("owner", "POST", "/v1/pipelines", json=body), 201)

    async def new_job(
        self, pipeline: dict[str, Any], *, stage: int = 0, who: str = "assigned member"
    ) -> dict[str, Any]:
        body = {
            "account_id": LEE,
            "pipeline_id": pipeline["pipeline_id"],
            "name": "2025 Form 1040",
            "stage_id": pipeline["stages"][stage]["stage_id"],
        }
        return await self.ok(await self.pipe(who, "POST", "/v1/jobs", json=body), 201)

    async def job(self, job_id: str) -> dict[str, Any]:
        return await self.ok(await self.pipe("owner", "GET", f"/v1/jobs/{job_id}"))

    async def wait_job(
        self, job_id: str, until: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any]:
        return await eventually(lambda: self.job(job_id), until=until)

    async def thread_tasks(self, who: str, thread_id: str) -> dict[str, Any]:
        return await self.ok(await self.tasks(who, "GET", f"/v1/threads/{thread_id}/tasks"))

    async def tick(self, who: str, thread_id: str, task_id: str) -> None:
        await self.ok(await self.tasks(who, "PUT", f"/v1/threads/{thread_id}/tasks/{task_id}/done"))

    async def wait_tasks(self, thread_id: str, total: int) -> list[dict[str, Any]]:
        body = await eventually(
            lambda: self.tasks("owner", "GET", f"/v1/threads/{thread_id}/tasks"),
            until=lambda r: r.status_code == 200 and len(r.json()["tasks"]) == total,
        )
        return list(body.json()["tasks"])

    async def wait_linked_progress(
        self, job_id: str, thread_id: str, done: int, total: int
    ) -> None:
        """Pipeline's projection shows the thread's progress on the job (J4 reads it)."""
        await self.wait_job(
            job_id,
            lambda job: any(
                t["thread_id"] == thread_id and (t["tasks_done"], t["tasks_total"]) == (done, total)
                for t in job["threads"]
            ),
        )


@pytest.fixture
async def firm(start_service: ServiceFactory, run_id: str) -> AsyncIterator[PipelineFirm]:
    messaging_app, messaging_http = await start_service("messaging", task_digest_seconds=1.0)
    tasks_app, tasks_http = await start_service("tasks")
    pipeline = PipelineService(run_id)
    try:
        await pipeline.start()
        name = f"firm_{run_id}"
        await seed_directory([messaging_app], name, within=PATIENCE)
        world = PipelineFirm(firm=name, http=messaging_http, app=messaging_app)
        world.tasks_http, world.tasks_app, world.pipeline = tasks_http, tasks_app, pipeline
        world.pipeline_from = await mark_topic(
            pipeline.settings.kafka_bootstrap_servers, Topic.PIPELINE
        )
        yield world
    finally:
        await pipeline.stop()
        mongo = connect(pipeline.settings.mongodb_url, app_name="it-pipeline-cleanup")
        await mongo.drop_database(pipeline.settings.database_name)
        await mongo.close()


async def pipeline_events(
    world: PipelineFirm,
    job_id: str,
    *,
    until: Callable[[list[Envelope[Any]]], bool],
    linger: float = 2.0,
) -> list[Envelope[Any]]:
    """Every distinct event of ``job_id`` on the pipeline topic since the firm was set up
    (``keyed_events``)."""
    return await keyed_events(
        world.pipeline_from, job_id, until=until, linger=linger, within=PATIENCE
    )
