"""Tasks use cases: checklists (K1-K6) and client requests (M12). No framework here.

Every change is read → decide (domain) → one conditional single-document write of the new
state *and* its events (the outbox), accepted only if the stored revision is still the one
read. A lost race re-reads and decides again, so concurrent ticks never overwrite each
other and the move into "all completed" is written — with its event — exactly once (K6).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal, Protocol

from threadline.contracts import Envelope
from threadline.contracts.events.common import Actor
from threadline.contracts.events.messaging import MessagePosted, ThreadCreated
from threadline.contracts.events.tasks import (
    ClientRequest as RequestSnapshot,
)
from threadline.contracts.events.tasks import (
    ClientRequestChanged,
    Progress,
    TaskItem,
    TaskListAllCompleted,
    TaskListChanged,
    TaskListResent,
)
from threadline.kit.auth import Principal
from threadline.kit.events import EventFactory
from threadline.kit.ids import new_id
from threadline.kit.policy import ThreadFacts, visible_account_filter
from threadline.tasks.domain import (
    MAX_REQUEST_DESCRIPTION,
    MAX_REQUEST_TITLE,
    MAX_TASK_TEXT,
    MAX_TASKS,
    ActionForbidden,
    ClientRequest,
    InvalidTasks,
    ListChange,
    ListConflict,
    RequestNotFound,
    RequestStatus,
    TaskList,
    ThreadInfo,
    ThreadNotFound,
    actor_of,
    check_can_manage_requests,
    check_can_manage_tasks,
    check_can_see_request,
    check_can_tick,
    check_visible,
    clean_text,
    utc_now,
)

__all__ = [
    "PRODUCER",
    "AccountDirectory",
    "ListStore",
    "MyTask",
    "RequestStore",
    "SubjectStore",
    "TaskService",
    "ThreadDirectory",
    "thread_task_id",
]

PRODUCER = "tasks"
EVENTS = EventFactory(PRODUCER)
MAX_WRITE_ATTEMPTS = 40
"""Conditional writes one change may lose to concurrent ones before the caller gets 409."""
_NAMESPACE = uuid.UUID("3b8e6f0a-9c4d-4e21-8f5a-6d2c1b7e9a43")
StatusFilter = Literal["open", "done", "all"]
RequestFilter = Literal["open", "completed", "cancelled", "all"]


def thread_task_id(event_id: str, index: int) -> str:
    """The id of the ``index``-th task a thread creation asked for: derived from the event,
    so a redelivered event finds its tasks already there."""
    return str(uuid.uuid5(_NAMESPACE, f"{event_id}:{index}"))


class ThreadDirectory(Protocol):
    """Threads as projected from messaging (the kit's ``ThreadProjection``)."""

    async def facts(self, firm: str, thread_id: str) -> ThreadFacts | None:
        """The thread's access facts, waiting briefly for a thread just created elsewhere;
        None if unknown."""
        ...


class SubjectStore(Protocol):
    async def subject(self, firm: str, thread_id: str) -> str | None: ...

    async def remember(self, firm: str, thread_id: str, subject: str) -> None: ...


class ListStore(Protocol):
    async def get(self, firm: str, thread_id: str) -> TaskList | None: ...

    async def save(
        self, task_list: TaskList, *, expected_revision: int, events: Sequence[Envelope[Any]]
    ) -> bool:
        """Store ``task_list`` with its events if the stored one is at ``expected_revision``
        (0: none stored yet); False when another change got there first."""
        ...

    async def events_only(self, task_list: TaskList, events: Sequence[Envelope[Any]]) -> bool:
        """Write events for the list as it stands (resend) if it is still at its revision."""
        ...

    async def visible(
        self, firm: str, *, accounts: frozenset[str] | None, limit: int
    ) -> list[TaskList]:
        """Lists of the firm (of ``accounts`` unless None), most recently changed first."""
        ...


class AccountDirectory(Protocol):
    """The account directory (projected from ``threadline.directory.v1``)."""

    async def account(self, firm: str, account_id: str) -> dict[str, Any] | None: ...


class RequestStore(Protocol):
    async def get(self, firm: str, request_id: str) -> ClientRequest | None: ...

    async def save(
        self, request: ClientRequest, *, expected_revision: int, events: Sequence[Envelope[Any]]
    ) -> bool: ...

    async def visible(
        self,
        firm: str,
        *,
        accounts: frozenset[str] | None,
        status: RequestStatus | None,
        limit: int,
    ) -> list[ClientRequest]: ...

    async def attached_to(self, firm: str, thread_id: str) -> list[ClientRequest]: ...


@dataclass(frozen=True)
class MyTask:
    """One row of a user's task page: a thread task or a client request."""

    kind: Literal["task", "request"]
    account_id: str
    thread_id: str | None
    thread_subject: str | None
    task: Any  # domain Task for kind "task", ClientRequest for kind "request"


def _item(task: Any) -> TaskItem:
    return TaskItem(
        task_id=task.task_id,
        text=task.text,
        done=task.done,
        done_at=task.done_at,
        done_by=task.done_by,
    )


def _snapshot(request: ClientRequest) -> RequestSnapshot:
    return RequestSnapshot(
        request_id=request.request_id,
        account_id=request.account_id,
        title=request.title,
        description=request.description,
        due_date=request.due_date,
        status=request.status,
        thread_ids=list(request.thread_ids),
        created_by=request.created_by,
        created_at=request.created_at,
        completed_by=request.completed_by,
        completed_at=request.completed_at,
    )


def list_events(change: ListChange, *, causation_id: str | None = None) -> list[Envelope[Any]]:
    """K5: every change → ``tasks.list.changed`` with the whole list; K6: the move into
    "all completed" → ``tasks.list.all_completed`` as well (in the same write)."""
    after = change.after
    events: list[Envelope[Any]] = [
        EVENTS(
            TaskListChanged(
                thread_id=after.thread_id,
                account_id=after.account_id,
                change=change.kind,
                changed_task_ids=list(change.task_ids),
                tasks=[_item(task) for task in after.tasks],
                progress=Progress(done=after.done, total=after.total),
                changed_by=change.actor,
                revision=after.revision,
            ),
            firm=after.firm,
            causation_id=causation_id,
        )
    ]
    if change.became_all_completed:
        events.append(
            EVENTS(
                TaskListAllCompleted(
                    thread_id=after.thread_id,
                    account_id=after.account_id,
                    total=after.total,
                    completed_by=change.actor,
                    completed_at=change.at,
                    revision=after.revision,
                ),
                firm=after.firm,
                causation_id=causation_id,
            )
        )
    return events


class TaskService:
    def __init__(
        self,
        *,
        threads: ThreadDirectory,
        subjects: SubjectStore,
        lists: ListStore,
        requests: RequestStore,
        accounts: AccountDirectory,
    ) -> None:
        self._threads = threads
        self._subjects = subjects
        self._accounts = accounts
        self._lists = lists
        self._requests = requests

    # --- threads and their lists ----------------------------------------------------------

    async def _thread(self, principal: Principal, thread_id: str) -> ThreadInfo:
        facts = await self._threads.facts(principal.firm, thread_id)
        if facts is None:
            raise ThreadNotFound(f"Thread {thread_id} does not exist.")
        return ThreadInfo(thread_id=thread_id, facts=facts)

    async def _list_of(self, thread: ThreadInfo) -> TaskList:
        stored = await self._lists.get(thread.firm, thread.thread_id)
        if stored is not None:
            return stored
        return TaskList(
            firm=thread.firm,
            thread_id=thread.thread_id,
            account_id=thread.account_id,
            subject=await self._subjects.subject(thread.firm, thread.thread_id) or "",
        )

    async def _change(
        self,
        thread: ThreadInfo,
        decide: Callable[[TaskList], ListChange | None],
        *,
        causation_id: str | None = None,
        first: TaskList | None = None,
    ) -> TaskList:
        """Read, decide, write conditionally; on a lost race, read and decide again
        (``first``: the list already read for the first attempt)."""
        for _ in range(MAX_WRITE_ATTEMPTS):
            current, first = first or await self._list_of(thread), None
            change = decide(current)
            if change is None:
                return current
            events = list_events(change, causation_id=causation_id)
            if await self._lists.save(
                change.after, expected_revision=current.revision, events=events
            ):
                return change.after
        raise ListConflict("The task list is changing too fast right now; retry shortly.")

    async def thread_tasks(
        self, principal: Principal, thread_id: str
    ) -> tuple[TaskList, list[ClientRequest]]:
        """K1, M12: a thread's checklist and the requests attached to it (T7)."""
        thread = await self._thread(principal, thread_id)
        check_visible(principal, thread)
        task_list = await self._list_of(thread)
        requests = await self._requests.attached_to(principal.firm, thread_id)
        return task_list, requests

    async def add(self, principal: Principal, thread_id: str, texts: Sequence[str]) -> TaskList:
        """K1: staff add tasks to the thread's one list (created by the first addition)."""
        thread = await self._thread(principal, thread_id)
        check_can_manage_tasks(principal, thread)
        if not texts:
            raise InvalidTasks("Give at least one task.")
        if len(texts) > MAX_TASKS:
            raise InvalidTasks(f"At most {MAX_TASKS} tasks at once.")
        cleaned = [clean_text(text, what="task text", limit=MAX_TASK_TEXT) for text in texts]
        new = [(new_id(), text) for text in cleaned]
        actor, at = actor_of(principal), utc_now()
        return await self._change(thread, lambda current: current.add(new, actor=actor, at=at))

    async def set_done(
        self, principal: Principal, thread_id: str, task_id: str, *, done: bool
    ) -> TaskList:
        """K2: tick or undo (idempotent); K6 follows from the conditional write."""
        # The thread and its list are read side by side: a tick is one read's latency
        # and one conditional write.
        facts, stored = await asyncio.gather(
            self._threads.facts(principal.firm, thread_id),
            self._lists.get(principal.firm, thread_id),
        )
        if facts is None:
            raise ThreadNotFound(f"Thread {thread_id} does not exist.")
        thread = ThreadInfo(thread_id=thread_id, facts=facts)
        check_can_tick(principal, thread)
        actor, at = actor_of(principal), utc_now()
        return await self._change(
            thread,
            lambda current: current.set_done(task_id, done, actor=actor, at=at),
            first=stored,
        )

    async def reorder(
        self, principal: Principal, thread_id: str, task_ids: Sequence[str]
    ) -> TaskList:
        thread = await self._thread(principal, thread_id)
        check_can_manage_tasks(principal, thread)
        actor, at = actor_of(principal), utc_now()
        return await self._change(
            thread, lambda current: current.reorder(task_ids, actor=actor, at=at)
        )

    async def edit(self, principal: Principal, thread_id: str, task_id: str, text: str) -> TaskList:
        thread = await self._thread(principal, thread_id)
        check_can_manage_tasks(principal, thread)
        cleaned = clean_text(text, what="task text", limit=MAX_TASK_TEXT)
        actor, at = actor_of(principal), utc_now()
        return await self._change(
            thread, lambda current: current.edit(task_id, cleaned, actor=actor, at=at)
        )

    async def delete(self, principal: Principal, thread_id: str, task_id: str) -> TaskList:
        thread = await self._thread(principal, thread_id)
        check_can_manage_tasks(principal, thread)
        actor, at = actor_of(principal), utc_now()
        return await self._change(
            thread, lambda current: current.delete(task_id, actor=actor, at=at)
        )

    async def resend(self, principal: Principal, thread_id: str) -> TaskList:
        """K3: post the current list into the thread again (messaging posts it)."""
        thread = await self._thread(principal, thread_id)
        check_can_manage_tasks(principal, thread)
        for _ in range(MAX_WRITE_ATTEMPTS):
            current = await self._list_of(thread)
            if not current.tasks:
                raise InvalidTasks("The thread has no tasks to resend.")
            event = EVENTS(
                TaskListResent(
                    thread_id=current.thread_id,
                    account_id=current.account_id,
                    tasks=[_item(task) for task in current.tasks],
                    progress=Progress(done=current.done, total=current.total),
                    resent_by=actor_of(principal),
                    revision=current.revision,
                ),
                firm=current.firm,
            )
            if await self._lists.events_only(current, [event]):
                return current
        raise ListConflict("The task list is changing too fast right now; retry shortly.")

    async def create_from_thread(self, event: Envelope[Any]) -> None:
        """K1: the client tasks a thread was created with become its list. Task ids derive
        from the event id, so a redelivered event adds nothing twice; a list staff started
        meanwhile is extended, never replaced."""
        data: ThreadCreated = event.data
        await self._subjects.remember(event.firm, data.thread_id, data.subject)
        if not data.client_tasks:
            return
        thread = ThreadInfo(
            thread_id=data.thread_id,
            facts=ThreadFacts(firm=event.firm, account_id=data.account_id),
        )
        new = []
        for index, task in enumerate(data.client_tasks[:MAX_TASKS]):
            text = " ".join(task.text.split())[:MAX_TASK_TEXT] or "(empty task)"
            new.append((task.task_id or thread_task_id(str(event.id), index), text))
        actor = data.created_by
        at = event.occurred_at
        at = at.replace(microsecond=at.microsecond // 1000 * 1000)

        def decide(current: TaskList) -> ListChange | None:
            room = MAX_TASKS - len(current.tasks)
            return current.add(new[: max(room, 0)], actor=actor, at=at) if room > 0 else None

        await self._change(thread, decide, causation_id=str(event.id))

    async def add_from_message(self, event: Envelope[Any]) -> None:
        """K4, J1: a message that carries client tasks (a template sent as a reply by a
        pipeline automation) adds them to the thread's existing list. Ids come with the
        event, so a redelivered message adds nothing twice."""
        data: MessagePosted = event.data
        if not data.client_tasks:
            return
        thread = ThreadInfo(
            thread_id=data.thread_id,
            facts=ThreadFacts(firm=event.firm, account_id=data.account_id),
        )
        new = [
            (
                task.task_id or thread_task_id(str(event.id), index),
                " ".join(task.text.split())[:MAX_TASK_TEXT] or "(empty task)",
            )
            for index, task in enumerate(data.client_tasks[:MAX_TASKS])
        ]
        actor = Actor(user_id=data.author.user_id, kind=data.author.kind, name=data.author.name)
        at = event.occurred_at.replace(microsecond=event.occurred_at.microsecond // 1000 * 1000)

        def decide(current: TaskList) -> ListChange | None:
            room = MAX_TASKS - len(current.tasks)
            return current.add(new[: max(room, 0)], actor=actor, at=at) if room > 0 else None

        await self._change(thread, decide, causation_id=str(event.id))

    async def my_tasks(
        self,
        principal: Principal,
        *,
        status: StatusFilter,
        account_id: str | None,
        limit: int,
    ) -> list[MyTask]:
        """The task page: every task and request of the caller's accounts (clients), or of
        the accounts a staff member sees, newest list first, open before done."""
        accounts = visible_account_filter(principal)
        if account_id is not None:
            if accounts is not None and account_id not in accounts:
                return []
            accounts = frozenset({account_id})
        rows: list[MyTask] = [
            MyTask("task", task_list.account_id, task_list.thread_id, task_list.subject, task)
            for task_list in await self._lists.visible(
                principal.firm, accounts=accounts, limit=limit
            )
            for task in task_list.tasks
            if status == "all" or (status == "done") == task.done
        ]
        request_status: RequestStatus | None = None
        if status != "all":
            request_status = "open" if status == "open" else "completed"
        for request in await self._requests.visible(
            principal.firm, accounts=accounts, status=request_status, limit=limit
        ):
            if status == "all" or request.status != "cancelled":
                first = request.thread_ids[0] if request.thread_ids else None
                rows.append(
                    MyTask(
                        "request",
                        request.account_id,
                        first,
                        request.subjects.get(first) if first else None,
                        request,
                    )
                )
        return rows[:limit]

    # --- client requests (M12) --------------------------------------------------------------

    async def create_request(
        self,
        principal: Principal,
        account_id: str,
        *,
        title: str,
        description: str,
        due_date: date | None,
    ) -> ClientRequest:
        check_can_manage_requests(principal, firm=principal.firm, account_id=account_id)
        if await self._accounts.account(principal.firm, account_id) is None:
            raise RequestNotFound(f"Account {account_id} does not exist.")
        request = ClientRequest(
            request_id=new_id(),
            firm=principal.firm,
            account_id=account_id,
            title=clean_text(title, what="title", limit=MAX_REQUEST_TITLE),
            description=clean_text(
                description, what="description", limit=MAX_REQUEST_DESCRIPTION, allow_empty=True
            ),
            due_date=due_date,
            created_by=actor_of(principal),
            created_at=utc_now(),
        )
        await self._requests.save(
            request,
            expected_revision=0,
            events=[self._request_event(request, "created", actor_of(principal))],
        )
        return request

    async def request(self, principal: Principal, request_id: str) -> ClientRequest:
        request = await self._requests.get(principal.firm, request_id)
        if request is None:
            raise RequestNotFound(f"Request {request_id} does not exist.")
        check_can_see_request(principal, request)
        return request

    async def requests(
        self,
        principal: Principal,
        *,
        status: RequestFilter,
        account_id: str | None,
        limit: int,
    ) -> list[ClientRequest]:
        accounts = visible_account_filter(principal)
        if account_id is not None:
            if accounts is not None and account_id not in accounts:
                return []
            accounts = frozenset({account_id})
        return await self._requests.visible(
            principal.firm,
            accounts=accounts,
            status=None if status == "all" else status,
            limit=limit,
        )

    def _request_event(
        self,
        request: ClientRequest,
        change: Literal["created", "attached", "edited", "completed", "cancelled", "reopened"],
        actor: Actor,
        *,
        thread_id: str | None = None,
    ) -> Envelope[Any]:
        return EVENTS(
            ClientRequestChanged(
                request_id=request.request_id,
                account_id=request.account_id,
                change=change,
                thread_id=thread_id,
                request=_snapshot(request),
                changed_by=actor,
                revision=request.revision,
            ),
            firm=request.firm,
        )

    async def _change_request(
        self,
        principal: Principal,
        request_id: str,
        decide: Callable[[ClientRequest], tuple[ClientRequest, Envelope[Any]] | None],
    ) -> ClientRequest:
        for _ in range(MAX_WRITE_ATTEMPTS):
            current = await self.request(principal, request_id)
            decided = decide(current)
            if decided is None:
                return current
            changed, event = decided
            if await self._requests.save(
                changed, expected_revision=current.revision, events=[event]
            ):
                return changed
        raise ListConflict("The request is changing too fast right now; retry shortly.")

    async def complete_request(self, principal: Principal, request_id: str) -> ClientRequest:
        """M12: the client completes it (or staff on their behalf); idempotent."""
        actor, at = actor_of(principal), utc_now()

        def decide(current: ClientRequest) -> tuple[ClientRequest, Envelope[Any]] | None:
            changed = current.complete(actor, at)
            if changed is None:
                return None
            return changed, self._request_event(changed, "completed", actor)

        return await self._change_request(principal, request_id, decide)

    async def update_request(
        self,
        principal: Principal,
        request_id: str,
        *,
        title: str | None = None,
        description: str | None = None,
        due_date: date | None = None,
        clear_due_date: bool = False,
        status: Literal["open", "cancelled"] | None = None,
    ) -> ClientRequest:
        """Staff edit a request, cancel it or reopen it."""
        actor = actor_of(principal)
        fields: dict[str, Any] = {}
        if title is not None:
            fields["title"] = clean_text(title, what="title", limit=MAX_REQUEST_TITLE)
        if description is not None:
            fields["description"] = clean_text(
                description, what="description", limit=MAX_REQUEST_DESCRIPTION, allow_empty=True
            )
        if due_date is not None or clear_due_date:
            fields["due_date"] = due_date

        def decide(current: ClientRequest) -> tuple[ClientRequest, Envelope[Any]] | None:
            check_can_manage_requests(principal, firm=current.firm, account_id=current.account_id)
            edits = {k: v for k, v in fields.items() if getattr(current, k) != v}
            if status is not None:
                moved = current.set_status(status)
                if moved is not None:
                    changed = moved.next(**edits) if edits else moved
                    change: Literal["cancelled", "reopened"] = (
                        "cancelled" if status == "cancelled" else "reopened"
                    )
                    return changed, self._request_event(changed, change, actor)
            if not edits:
                return None
            changed = current.next(**edits)
            return changed, self._request_event(changed, "edited", actor)

        return await self._change_request(principal, request_id, decide)

    async def attach_request(
        self, principal: Principal, thread_id: str, request_id: str
    ) -> ClientRequest:
        """M12: attach an existing request to a thread of its account (idempotent)."""
        thread = await self._thread(principal, thread_id)
        check_can_manage_tasks(principal, thread)
        actor = actor_of(principal)
        subject = await self._subjects.subject(principal.firm, thread_id) or ""

        def decide(current: ClientRequest) -> tuple[ClientRequest, Envelope[Any]] | None:
            if not principal.is_staff:
                raise ActionForbidden("Only firm staff can attach client requests.")
            changed = current.attach(thread, subject)
            if changed is None:
                return None
            event = self._request_event(changed, "attached", actor, thread_id=thread_id)
            return changed, event

        return await self._change_request(principal, request_id, decide)
