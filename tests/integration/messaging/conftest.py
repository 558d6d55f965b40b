"""Messaging on real servers: one messaging app, a seeded directory, tokens per role."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from threadline.contracts import decode
from threadline.contracts.topics import Topic

from ..conftest import (
    FirmClient,
    ServiceFactory,
    TopicMark,
    find_record,
    mark_topic,
    seed_directory,
    token_for,
)

LEE = "acc_lee_family"  # contacts: ct_ann_lee (notify), ct_ben_lee; assigned: st_mia
PATEL = "acc_patel_llc"  # ct_raj_patel activated, ct_priya_patel not
DORMANT = "acc_dormant_co"  # no contact with portal access


@dataclass
class Firm(FirmClient):
    """A seeded firm on a running messaging service, with a token for each kind of user.
    ``events_from`` marks the messaging topic's end when the firm was set up."""

    events_from: TopicMark | None = None

    def token(self, who: str) -> str:
        tokens: dict[str, Callable[[], str]] = {
            "owner": lambda: token_for(self.firm, role="owner", sub="st_olivia", name="Olivia"),
            "admin": lambda: token_for(self.firm, role="admin", sub="st_adam"),
            "assigned member": lambda: token_for(
                self.firm, role="member", sub="st_mia", accounts=[LEE], name="Mia Chen"
            ),
            "unassigned member": lambda: token_for(
                self.firm, role="member", sub="st_noah", accounts=[PATEL]
            ),
            "member with view-all": lambda: token_for(
                self.firm, role="member", sub="st_noah", perms=["view_all_accounts"]
            ),
            "client": lambda: token_for(self.firm, kind="client", sub="ct_ann_lee", accounts=[LEE]),
            "second client": lambda: token_for(
                self.firm, kind="client", sub="ct_ben_lee", accounts=[LEE]
            ),
            "other client": lambda: token_for(
                self.firm, kind="client", sub="ct_raj_patel", accounts=[PATEL]
            ),
            "other firm": lambda: token_for(f"{self.firm}_other", role="owner", sub="st_olivia"),
        }
        return tokens[who]()

    async def new_thread(self, who: str = "assigned member", **fields: Any) -> dict[str, Any]:
        body = {
            "account_id": LEE,
            "subject": "2025 tax documents",
            "message": {"html": "<p>Hi</p>"},
        }
        response = await self.call(who, "POST", "/v1/threads", json=body | fields)
        assert response.status_code == 201, response.text
        return response.json()

    async def post(self, who: str, thread_id: str, **message: Any) -> httpx.Response:
        return await self.call(who, "POST", f"/v1/threads/{thread_id}/messages", json=message)


async def firm_on(app: FastAPI, http: httpx.AsyncClient, name: str) -> Firm:
    """Firm ``name`` seeded on a running messaging service, its topic position marked."""
    await seed_directory([app], name)
    bootstrap = app.state.runtime.settings.kafka_bootstrap_servers
    return Firm(
        firm=name, http=http, app=app, events_from=await mark_topic(bootstrap, Topic.MESSAGING)
    )


@pytest.fixture
async def firm(start_service: ServiceFactory, run_id: str) -> Firm:
    """A firm on a messaging service of this test's own (see ``module_services`` for why
    seeded services are not shared)."""
    app, http = await start_service("messaging")
    return await firm_on(app, http, f"firm_{run_id}")


async def find_event(firm: Firm, event_type: str, message_id: str) -> Any:
    """The first event of ``event_type`` about ``message_id`` on the messaging topic since
    the firm was set up."""
    assert firm.events_from is not None

    def matches(record: Any) -> bool:
        if dict(record.headers).get("event-type") != event_type.encode():
            return False
        return bool(decode(record.value).data.message_id == message_id)

    return decode((await find_record(firm.events_from, matches)).value)
