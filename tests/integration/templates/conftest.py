"""Templates and bulk messages on real servers: the messaging firm, plus event lookups."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from threadline.contracts import decode, new_event
from threadline.contracts.events.directory import AccountUpserted, Contact
from threadline.contracts.topics import Topic
from threadline.devtools.seed import publish

from ..conftest import ServiceFactory, eventually, run_topic, seed_directory, token_for
from ..messaging.conftest import LEE, Firm

TEMPLATE_MANAGER = "member with manage_templates"


class TemplateFirm(Firm):
    """``Firm`` plus a team member holding the ``manage_templates`` permission."""

    def token(self, who: str) -> str:
        if who == TEMPLATE_MANAGER:
            return token_for(
                self.firm, role="member", sub="st_mia", accounts=[LEE], perms=["manage_templates"]
            )
        return super().token(who)

    async def from_template(
        self, template_id: str, who: str = "assigned member", **fields: Any
    ) -> dict[str, Any]:
        """A thread created with only ``template_id`` and ``fields`` (LEE by default)."""
        body = {"account_id": LEE, "template_id": template_id} | fields
        response = await self.call(who, "POST", "/v1/threads", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    async def new_template(self, who: str = "owner", **fields: Any) -> dict[str, Any]:
        body = {"name": "Document request", "subject": "Documents", "html": "<p>Hi</p>"}
        response = await self.call(who, "POST", "/v1/templates", json=body | fields)
        assert response.status_code == 201, response.text
        return response.json()


@pytest.fixture
async def firm(start_service: ServiceFactory, run_id: str) -> TemplateFirm:
    app, http = await start_service("messaging")
    name = f"firm_{run_id}"
    await seed_directory([app], name)
    return TemplateFirm(firm=name, http=http, app=app)


class ThreadCreatedWatch:
    """Reads ``messaging.thread.created`` published after it started (its position is fixed
    at the topic's end first, so no history is scanned)."""

    def __init__(self, bootstrap: str) -> None:
        self._consumer = AIOKafkaConsumer(run_topic(Topic.MESSAGING), bootstrap_servers=bootstrap)
        self.found: dict[str, Any] = {}
        self.every: list[Any] = []
        """Every ``thread.created`` read, duplicates included."""

    async def __aenter__(self) -> ThreadCreatedWatch:
        await self._consumer.start()

        async def assigned() -> set[Any]:
            return set(self._consumer.assignment())

        await eventually(assigned, until=bool, within=30.0)
        await self._consumer.seek_to_end()
        for partition in self._consumer.assignment():
            await self._consumer.position(partition)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def events(self, thread_ids: set[str], *, within: float = 60.0) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + within
        while not thread_ids <= set(self.found):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no thread.created for {thread_ids - set(self.found)}")
            for records in (await self._consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    if dict(record.headers).get("event-type") == b"messaging.thread.created":
                        event = decode(record.value)
                        self.found[event.data.thread_id] = event
                        self.every.append(event)
        return {thread_id: self.found[thread_id] for thread_id in thread_ids}


async def add_accounts(firm: Firm, accounts: list[AccountUpserted]) -> None:
    """Publish more accounts for the firm and wait until messaging projected them all."""
    events = [
        new_event(account, firm=firm.firm, key=account.account_id, producer="test")
        for account in accounts
    ]
    await publish(firm.app.state.runtime.settings.kafka_bootstrap_servers, events)
    database = firm.app.state.runtime.database
    wanted = [f"{firm.firm}:{account.account_id}" for account in accounts]

    async def projected() -> int:
        return await database["directory_accounts"].count_documents({"_id": {"$in": wanted}})

    await eventually(projected, until=lambda count: count == len(wanted), within=180)


def account(account_id: str, name: str, *contacts: tuple[str, bool]) -> AccountUpserted:
    """An account with contacts given as (name, portal activated), assigned to Mia."""
    return AccountUpserted(
        account_id=account_id,
        name=name,
        assigned_staff=["st_mia"],
        contacts=[
            Contact(
                contact_id=f"ct_{account_id}_{index}",
                name=contact_name,
                email=f"c{index}@{account_id}.example",
                portal_activated=activated,
                notify=True,
            )
            for index, (contact_name, activated) in enumerate(contacts)
        ],
    )
