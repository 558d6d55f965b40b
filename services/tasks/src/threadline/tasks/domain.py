"""Tasks domain: a thread's client task checklist (K1-K6), client requests (M12), the rules
of who may do what, and the service's error tree. No I/O here.

::

    TasksError (kit ThreadlineError)
    ├── ThreadNotFound / TaskNotFound / RequestNotFound  404 — also when the caller may not
    │                                                    see it (T7)
    ├── ActionForbidden                                  403 — may see it, may not do this
    ├── ListConflict                                     409 — a concurrent change won, or the
    │                                                    request names a stale state; reload
    └── InvalidTasks                                     422 — the request breaks a rule

Every change returns a new value (nothing mutates in place) so the service can write it
with a revision check: the list (or request) read at revision ``r`` is replaced only if it
is still at ``r``. That makes "exactly once" transitions (K6) a property of the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Literal

from threadline.contracts.events.common import Actor
from threadline.kit.auth import Principal
from threadline.kit.errors import Conflict, Forbidden, InvalidRequest, NotFound, ThreadlineError
from threadline.kit.policy import ThreadFacts, can_access_account, can_view_thread

__all__ = [
    "MAX_REQUEST_DESCRIPTION",
    "MAX_REQUEST_THREADS",
    "MAX_REQUEST_TITLE",
    "MAX_TASKS",
    "MAX_TASK_TEXT",
    "ActionForbidden",
    "ClientRequest",
    "InvalidTasks",
    "ListChange",
    "ListConflict",
    "RequestNotFound",
    "RequestStatus",
    "Task",
    "TaskList",
    "TaskNotFound",
    "TasksError",
    "ThreadInfo",
    "ThreadNotFound",
    "actor_of",
    "check_can_manage_requests",
    "check_can_manage_tasks",
    "check_can_see_request",
    "check_can_tick",
    "check_visible",
    "clean_text",
    "utc_now",
]

MAX_TASKS = 100
"""Tasks in one list (the thread-creation API allows as many)."""
MAX_TASK_TEXT = 2000
"""Characters of one task's text (as at thread creation)."""
MAX_REQUEST_TITLE = 300
MAX_REQUEST_DESCRIPTION = 10_000
MAX_REQUEST_THREADS = 50
"""Threads one request may be attached to."""

ChangeKind = Literal["created", "added", "completed", "reopened", "reordered", "deleted", "edited"]
RequestStatus = Literal["open", "completed", "cancelled"]


def utc_now() -> datetime:
    """Now, to the millisecond: what MongoDB stores, so a value read back compares equal."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class TasksError(ThreadlineError):
    """Root of the tasks service's expected errors."""


class ThreadNotFound(TasksError, NotFound):
    pass


class TaskNotFound(TasksError, NotFound):
    pass


class RequestNotFound(TasksError, NotFound):
    pass


class ActionForbidden(TasksError, Forbidden):
    pass


class ListConflict(TasksError, Conflict):
    pass


class InvalidTasks(TasksError, InvalidRequest):
    pass


def actor_of(principal: Principal) -> Actor:
    return Actor(user_id=principal.sub, kind=principal.kind, name=principal.name or None)


def clean_text(text: str, *, what: str, limit: int, allow_empty: bool = False) -> str:
    """Plain text as stored: surrounding blanks removed, bounded, no control characters
    other than tab and newline (they would garble e-mails and thread messages)."""
    cleaned = text.replace("\r\n", "\n").strip()
    if not cleaned and not allow_empty:
        raise InvalidTasks(f"The {what} is empty.")
    if len(cleaned) > limit:
        raise InvalidTasks(f"The {what} is {len(cleaned)} characters long; at most {limit}.")
    if any(ord(char) < 32 and char not in "\t\n" for char in cleaned):
        raise InvalidTasks(f"The {what} contains control characters.")
    return cleaned


# --- threads, as the tasks service knows them ------------------------------------------


@dataclass(frozen=True)
class ThreadInfo:
    """What the rules need to know about a thread (the kit's projection of messaging's
    threads: account, archive state, mentioned staff)."""

    thread_id: str
    facts: ThreadFacts

    @property
    def firm(self) -> str:
        return self.facts.firm

    @property
    def account_id(self) -> str:
        return self.facts.account_id

    @property
    def archived(self) -> bool:
        return self.facts.archived


def check_visible(principal: Principal, thread: ThreadInfo) -> None:
    """T7: a thread the caller may not see does not exist for them (404)."""
    if not can_view_thread(principal, thread.facts):
        raise ThreadNotFound(f"Thread {thread.thread_id} does not exist.")


def check_can_tick(principal: Principal, thread: ThreadInfo) -> None:
    """K2: staff who see the thread and the account's clients tick; archived threads are
    read-only for clients."""
    check_visible(principal, thread)
    if principal.is_client and thread.archived:
        raise ActionForbidden("The thread is archived; its tasks are read-only for clients.")


def check_can_manage_tasks(principal: Principal, thread: ThreadInfo) -> None:
    """K2, K3: add, edit, reorder, delete and resend are for staff who see the thread."""
    check_visible(principal, thread)
    if not principal.is_staff:
        raise ActionForbidden("Only firm staff can add, edit, reorder, delete or resend tasks.")


# --- the checklist ----------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    task_id: str
    text: str
    created_at: datetime
    done: bool = False
    done_at: datetime | None = None
    done_by: Actor | None = None


@dataclass(frozen=True)
class ListChange:
    """A change to a list: the list before and after, and what to tell the world."""

    before: TaskList
    after: TaskList
    kind: ChangeKind
    task_ids: tuple[str, ...]
    actor: Actor
    at: datetime

    @property
    def became_all_completed(self) -> bool:
        """K6: the transition into "all done" (never for an empty list)."""
        return self.after.all_completed and not self.before.all_completed


@dataclass(frozen=True)
class TaskList:
    """One thread's ordered checklist (K1). ``revision`` counts stored changes; a list that
    was never stored has revision 0."""

    firm: str
    thread_id: str
    account_id: str
    subject: str
    tasks: tuple[Task, ...] = ()
    revision: int = 0
    created_at: datetime | None = None

    @property
    def done(self) -> int:
        return sum(1 for task in self.tasks if task.done)

    @property
    def total(self) -> int:
        return len(self.tasks)

    @property
    def all_completed(self) -> bool:
        """K6: every task done, and there is at least one."""
        return bool(self.tasks) and all(task.done for task in self.tasks)

    def task(self, task_id: str) -> Task:
        for task in self.tasks:
            if task.task_id == task_id:
                return task
        raise TaskNotFound(f"Task {task_id} does not exist in this thread.")

    def _changed(
        self,
        tasks: Sequence[Task],
        kind: ChangeKind,
        task_ids: Sequence[str],
        actor: Actor,
        at: datetime,
    ) -> ListChange:
        after = replace(
            self,
            tasks=tuple(tasks),
            revision=self.revision + 1,
            created_at=self.created_at or at,
        )
        return ListChange(self, after, kind, tuple(task_ids), actor, at)

    def add(
        self, new: Sequence[tuple[str, str]], *, actor: Actor, at: datetime
    ) -> ListChange | None:
        """K1: append ``(task_id, text)`` pairs; ids already present are skipped (a redelivered
        thread creation adds nothing twice). ``None`` when nothing is new."""
        present = {task.task_id for task in self.tasks}
        fresh = [
            Task(task_id, text, created_at=at) for task_id, text in new if task_id not in present
        ]
        if not fresh:
            return None
        if len(self.tasks) + len(fresh) > MAX_TASKS:
            raise InvalidTasks(
                f"A thread holds at most {MAX_TASKS} tasks; it has {len(self.tasks)} and "
                f"{len(fresh)} would be added."
            )
        kind: ChangeKind = "added" if self.tasks else "created"
        return self._changed(
            [*self.tasks, *fresh], kind, [task.task_id for task in fresh], actor, at
        )

    def set_done(
        self, task_id: str, done: bool, *, actor: Actor, at: datetime
    ) -> ListChange | None:
        """K2: tick or undo; ``None`` when the task already is in that state (a retried
        request changes nothing and emits nothing)."""
        current = self.task(task_id)
        if current.done == done:
            return None
        updated = replace(
            current,
            done=done,
            done_at=at if done else None,
            done_by=actor if done else None,
        )
        tasks = [updated if task.task_id == task_id else task for task in self.tasks]
        return self._changed(tasks, "completed" if done else "reopened", [task_id], actor, at)

    def reorder(self, task_ids: Sequence[str], *, actor: Actor, at: datetime) -> ListChange | None:
        """K2: the whole new order; it must name exactly the current tasks."""
        if len(set(task_ids)) != len(task_ids):
            raise InvalidTasks("The new order names a task more than once.")
        current = [task.task_id for task in self.tasks]
        if set(task_ids) != set(current):
            missing = sorted(set(current) - set(task_ids))
            unknown = sorted(set(task_ids) - set(current))
            raise ListConflict(
                "The new order must name exactly the thread's current tasks; reload the list. "
                f"Missing: {', '.join(missing) or 'none'}; "
                f"unknown: {', '.join(unknown) or 'none'}.",
                missing=missing,
                unknown=unknown,
            )
        if list(task_ids) == current:
            return None
        by_id = {task.task_id: task for task in self.tasks}
        return self._changed([by_id[i] for i in task_ids], "reordered", [], actor, at)

    def edit(self, task_id: str, text: str, *, actor: Actor, at: datetime) -> ListChange | None:
        current = self.task(task_id)
        if current.text == text:
            return None
        tasks = [replace(t, text=text) if t.task_id == task_id else t for t in self.tasks]
        return self._changed(tasks, "edited", [task_id], actor, at)

    def delete(self, task_id: str, *, actor: Actor, at: datetime) -> ListChange:
        self.task(task_id)
        tasks = [task for task in self.tasks if task.task_id != task_id]
        return self._changed(tasks, "deleted", [task_id], actor, at)


# --- client requests (M12) ----------------------------------------------------------------


def check_can_see_request(principal: Principal, request: ClientRequest) -> None:
    """A request is the account's: its clients and staff with access to it see it."""
    if not can_access_account(principal, firm=request.firm, account_id=request.account_id):
        raise RequestNotFound(f"Request {request.request_id} does not exist.")


def check_can_manage_requests(principal: Principal, *, firm: str, account_id: str) -> None:
    """M12: staff with access to the account create, edit, attach, cancel and reopen."""
    if not can_access_account(principal, firm=firm, account_id=account_id):
        raise RequestNotFound(f"Account {account_id} does not exist.")
    if not principal.is_staff:
        raise ActionForbidden("Only firm staff can create or change client requests.")


@dataclass(frozen=True)
class ClientRequest:
    request_id: str
    firm: str
    account_id: str
    title: str
    created_by: Actor
    created_at: datetime
    description: str = ""
    due_date: date | None = None
    status: RequestStatus = "open"
    thread_ids: tuple[str, ...] = ()
    completed_by: Actor | None = None
    completed_at: datetime | None = None
    revision: int = 1
    subjects: dict[str, str] = field(default_factory=dict)
    """Subject of each attached thread, for the client's task page."""

    def next(self, **changes: object) -> ClientRequest:
        return replace(self, revision=self.revision + 1, **changes)  # type: ignore[arg-type]

    def complete(self, actor: Actor, at: datetime) -> ClientRequest | None:
        """M12: the client's action (or staff's for them); completing twice changes nothing."""
        if self.status == "completed":
            return None
        if self.status == "cancelled":
            raise ListConflict("The request was cancelled; it cannot be completed.")
        return self.next(status="completed", completed_by=actor, completed_at=at)

    def set_status(self, status: RequestStatus) -> ClientRequest | None:
        """Staff cancel an open request or reopen a completed or cancelled one."""
        if status == self.status:
            return None
        if status == "completed":
            raise InvalidTasks("Complete a request with POST /v1/requests/{id}/complete.")
        return self.next(status=status, completed_by=None, completed_at=None)

    def attach(self, thread: ThreadInfo, subject: str) -> ClientRequest | None:
        if thread.account_id != self.account_id:
            raise InvalidTasks("A request can only be attached to a thread of its own account.")
        if self.status == "cancelled":
            raise ListConflict("The request was cancelled; reopen it before attaching it.")
        if thread.thread_id in self.thread_ids:
            return None
        if len(self.thread_ids) >= MAX_REQUEST_THREADS:
            raise InvalidTasks(
                f"A request can be attached to at most {MAX_REQUEST_THREADS} threads."
            )
        return self.next(
            thread_ids=(*self.thread_ids, thread.thread_id),
            subjects={**self.subjects, thread.thread_id: subject},
        )
