"""Reminders on real servers: messaging and reminders apps on real Kafka and MongoDB, and an
SMTP sink each test starts on its own port (so it can stop and start it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from threadline.contracts import Envelope, new_event
from threadline.contracts.events.common import Actor
from threadline.contracts.events.tasks import (
    Progress,
    TaskItem,
    TaskListAllCompleted,
    TaskListChanged,
)
from threadline.contracts.topics import Topic
from threadline.devtools.ports import free_port
from threadline.devtools.seed import publish
from threadline.devtools.smtp_sink import read_mails, serve

from ..conftest import (
    LEE,
    FirmClient,
    ServiceFactory,
    TopicMark,
    eventually,
    mark_topic,
    seed_directory,
)

ANN, BEN = "ann@lee.example", "ben@lee.example"
MIA = Actor(user_id="st_mia", kind="staff")
ANN_ACTOR = Actor(user_id="ct_ann_lee", kind="client")


@dataclass
class SmtpSink:
    """The devtools SMTP sink on a port of this test's own, stoppable and restartable."""

    mail_dir: Path
    port: int = field(default_factory=free_port)
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await serve("127.0.0.1", self.port, self.mail_dir)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def mails(self, to: str | None = None, *, thread: str | None = None) -> list[EmailMessage]:
        """Mails received (to one address, about one thread). The service also serves other
        firms' events from the shared Kafka, so tests look at their own threads only."""
        return [
            mail
            for mail in read_mails(self.mail_dir)
            if (to is None or to in str(mail["X-RcptTo"]))
            and (thread is None or f"/threads/{thread}" in body_text(mail))
        ]


@pytest.fixture
async def smtp(tmp_path: Path) -> AsyncIterator[SmtpSink]:
    sink = SmtpSink(mail_dir=tmp_path / "mail")
    await sink.start()
    yield sink
    await sink.stop()


def body_text(mail: EmailMessage) -> str:
    part = mail.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def is_reminder(mail: EmailMessage) -> bool:
    return str(mail["Subject"]).startswith("Reminder:")


@dataclass
class Firm(FirmClient):
    """A seeded firm on running messaging and reminders services (users: ``DEMO_USERS``)."""

    reminders: httpx.AsyncClient
    reminders_app: FastAPI
    reminders_from: TopicMark
    """The reminders topic's end when the firm was set up."""

    async def new_thread(self, who: str = "assigned member", **fields: Any) -> dict[str, Any]:
        body = {
            "account_id": LEE,
            "subject": "2025 tax documents",
            "message": {"html": "<p>Please upload your W-2</p>"},
        }
        response = await self.call(who, "POST", "/v1/threads", json=body | fields)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def post(self, who: str, thread_id: str, **message: Any) -> dict[str, Any]:
        response = await self.call(who, "POST", f"/v1/threads/{thread_id}/messages", json=message)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def on_reminders(self, who: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return await self.reminders.request(method, url, headers=self.auth(who), **kwargs)

    async def reminder_state(self, thread_id: str) -> dict[str, Any]:
        response = await self.on_reminders("owner", "GET", f"/v1/threads/{thread_id}/reminders")
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def wait_reminder_state(
        self, thread_id: str, until: Callable[[dict[str, Any]], bool], within: float = 90.0
    ) -> dict[str, Any]:
        return await eventually(lambda: self.reminder_state(thread_id), until=until, within=within)

    async def armed_for(self, thread_id: str, message_id: str) -> dict[str, Any]:
        """Wait until reminders has seen ``message_id`` (the shared Kafka may lag)."""
        return await self.wait_reminder_state(
            thread_id, until=lambda s: s["about_message_id"] == message_id
        )

    async def inbox(self, who: str, **params: Any) -> dict[str, Any]:
        response = await self.on_reminders(who, "GET", "/v1/inbox", params=params)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def publish(self, *events: Envelope[Any]) -> None:
        await publish(self.app.state.runtime.settings.kafka_bootstrap_servers, events)

    def tasks_event(
        self,
        thread_id: str,
        *,
        done: list[bool],
        change: str = "created",
        by: Actor = MIA,
    ) -> Envelope[Any]:
        tasks = [
            TaskItem(task_id=f"task_{i}", text=f"Task <{i}>", done=is_done)
            for i, is_done in enumerate(done)
        ]
        return new_event(
            TaskListChanged(
                thread_id=thread_id,
                account_id=LEE,
                change=change,  # type: ignore[arg-type]
                changed_task_ids=[task.task_id for task in tasks],
                tasks=tasks,
                progress=Progress(done=sum(done), total=len(done)),
                changed_by=by,
            ),
            firm=self.firm,
            producer="tasks",
        )

    def all_completed_event(self, thread_id: str, total: int, by: Actor) -> Envelope[Any]:
        from threadline.contracts.envelope import utc_now  # noqa: PLC0415

        return new_event(
            TaskListAllCompleted(
                thread_id=thread_id,
                account_id=LEE,
                total=total,
                completed_by=by,
                completed_at=utc_now(),
            ),
            firm=self.firm,
            producer="tasks",
        )


FAST = {
    "scan_interval_seconds": 0.1,
    "coalesce_window_seconds": 0.5,
    "day_seconds": 1.0,
    "claim_lease_seconds": 5.0,
    "mail_backoff_max_seconds": 0.5,
    "thread_projection_wait_seconds": 30.0,  # the shared test Kafka can lag under load
}


async def start_firm(
    start_service: ServiceFactory, run_id: str, smtp: SmtpSink, **overrides: Any
) -> Firm:
    messaging_app, messaging = await start_service("messaging")
    reminders_app, reminders = await start_service(
        "reminders", smtp_port=smtp.port, **(FAST | overrides)
    )
    name = f"firm_{run_id}"
    await seed_directory([messaging_app, reminders_app], name)
    bootstrap = messaging_app.state.runtime.settings.kafka_bootstrap_servers
    return Firm(
        firm=name,
        http=messaging,
        app=messaging_app,
        reminders=reminders,
        reminders_app=reminders_app,
        reminders_from=await mark_topic(bootstrap, Topic.REMINDERS),
    )


@pytest.fixture
async def firm(start_service: ServiceFactory, run_id: str, smtp: SmtpSink) -> Firm:
    return await start_firm(start_service, run_id, smtp)
