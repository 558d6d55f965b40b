"""Fakes at the tasks service's store boundary, and factories for its tests (fixtures:
test modules cannot import each other under pytest's importlib mode)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from threadline.contracts import Envelope
from threadline.kit.auth import Principal
from threadline.kit.policy import ThreadFacts
from threadline.tasks.domain import ClientRequest, RequestStatus, TaskList, ThreadInfo
from threadline.tasks.service import TaskService

FIRM = "firm_acme"
LEE, PATEL = "acc_lee_family", "acc_patel_llc"


class FakeThreads:
    """The thread projection (facts) and the subjects store, in memory."""

    def __init__(self) -> None:
        self.threads: dict[tuple[str, str], ThreadFacts] = {}
        self.subjects: dict[tuple[str, str], str] = {}

    def add(self, thread_id: str, account_id: str = LEE, **fields: Any) -> ThreadInfo:
        firm = fields.pop("firm", FIRM)
        self.subjects[(firm, thread_id)] = fields.pop("subject", f"Subject of {thread_id}")
        facts = ThreadFacts(firm=firm, account_id=account_id, **fields)
        self.threads[(firm, thread_id)] = facts
        return ThreadInfo(thread_id=thread_id, facts=facts)

    async def facts(self, firm: str, thread_id: str) -> ThreadFacts | None:
        return self.threads.get((firm, thread_id))

    async def subject(self, firm: str, thread_id: str) -> str | None:
        return self.subjects.get((firm, thread_id))

    async def remember(self, firm: str, thread_id: str, subject: str) -> None:
        self.subjects[(firm, thread_id)] = subject


class InMemoryListStore:
    """Stores lists with the same revision check as Mongo; yields between read and write so
    concurrent changes really interleave."""

    def __init__(self) -> None:
        self.lists: dict[tuple[str, str], TaskList] = {}
        self.events: list[Envelope[Any]] = []
        self.lost_races = 0

    async def get(self, firm: str, thread_id: str) -> TaskList | None:
        await asyncio.sleep(0)
        return self.lists.get((firm, thread_id))

    async def save(
        self, task_list: TaskList, *, expected_revision: int, events: Sequence[Envelope[Any]]
    ) -> bool:
        await asyncio.sleep(0)
        key = (task_list.firm, task_list.thread_id)
        stored = self.lists.get(key)
        if (stored.revision if stored else 0) != expected_revision:
            self.lost_races += 1
            return False
        self.lists[key] = task_list
        self.events.extend(events)
        return True

    async def events_only(self, task_list: TaskList, events: Sequence[Envelope[Any]]) -> bool:
        stored = self.lists.get((task_list.firm, task_list.thread_id))
        if stored is None or stored.revision != task_list.revision:
            return False
        self.events.extend(events)
        return True

    async def visible(
        self, firm: str, *, accounts: frozenset[str] | None, limit: int
    ) -> list[TaskList]:
        found = [
            task_list
            for (list_firm, _), task_list in self.lists.items()
            if list_firm == firm and (accounts is None or task_list.account_id in accounts)
        ]
        return found[:limit]

    def of_type(self, event_type: str) -> list[Any]:
        return [event.data for event in self.events if event.type == event_type]


class FakeAccounts:
    async def account(self, firm: str, account_id: str) -> dict[str, Any] | None:
        known = firm == FIRM and account_id in {LEE, PATEL}
        return {"account_id": account_id} if known else None


class InMemoryRequestStore:
    def __init__(self) -> None:
        self.requests: dict[str, ClientRequest] = {}
        self.events: list[Envelope[Any]] = []

    async def get(self, firm: str, request_id: str) -> ClientRequest | None:
        found = self.requests.get(request_id)
        return found if found and found.firm == firm else None

    async def save(
        self, request: ClientRequest, *, expected_revision: int, events: Sequence[Envelope[Any]]
    ) -> bool:
        await asyncio.sleep(0)
        stored = self.requests.get(request.request_id)
        if (stored.revision if stored else 0) != expected_revision:
            return False
        self.requests[request.request_id] = replace(request)
        self.events.extend(events)
        return True

    async def visible(
        self,
        firm: str,
        *,
        accounts: frozenset[str] | None,
        status: RequestStatus | None,
        limit: int,
    ) -> list[ClientRequest]:
        return [
            request
            for request in self.requests.values()
            if request.firm == firm
            and (accounts is None or request.account_id in accounts)
            and (status is None or request.status == status)
        ][:limit]

    async def attached_to(self, firm: str, thread_id: str) -> list[ClientRequest]:
        return [r for r in self.requests.values() if r.firm == firm and thread_id in r.thread_ids]


def staff(
    sub: str = "st_mia", *, role: str = "member", accounts: Sequence[str] = (LEE,), **kw: Any
) -> Principal:
    return Principal(
        sub=sub,
        firm=kw.pop("firm", FIRM),
        kind="staff",
        role=role,  # type: ignore[arg-type]
        accounts=frozenset(accounts),
        name=kw.pop("name", "Mia Chen"),
        **kw,
    )


def client(sub: str = "ct_ann_lee", *, accounts: Sequence[str] = (LEE,), **kw: Any) -> Principal:
    return Principal(
        sub=sub,
        firm=kw.pop("firm", FIRM),
        kind="client",
        accounts=frozenset(accounts),
        name=kw.pop("name", "Ann Lee"),
        **kw,
    )


class World:
    """A service over fakes, with one thread of the Lee account."""

    def __init__(self) -> None:
        self.threads = FakeThreads()
        self.lists = InMemoryListStore()
        self.requests = InMemoryRequestStore()
        self.service = TaskService(
            threads=self.threads,
            subjects=self.threads,
            lists=self.lists,
            requests=self.requests,
            accounts=FakeAccounts(),
        )
        self.thread = self.threads.add("th_1")

    staff = staticmethod(staff)
    client = staticmethod(client)

    async def with_tasks(self, *texts: str) -> TaskList:
        return await self.service.add(staff(), self.thread.thread_id, list(texts))


@pytest.fixture
def w() -> World:
    return World()
