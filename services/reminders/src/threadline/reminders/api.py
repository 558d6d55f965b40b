"""Reminders HTTP routes: notification settings, per-thread reminder settings (Q1), the staff
inbox (N2, K5, K6)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from threadline.contracts.events.reminders import StopReason
from threadline.kit.auth import Principal
from threadline.kit.errors import Forbidden, NotFound
from threadline.kit.http import CurrentPrincipal, from_state
from threadline.kit.policy import can_view_thread
from threadline.kit.threads import ThreadProjection
from threadline.reminders.domain import InboxItemType, ReminderPolicy, Schedule
from threadline.reminders.schedule import ReminderService, policy_of
from threadline.reminders.store import MongoFirmSettingsProjection, MongoInbox, MongoThreadStore

__all__ = ["router"]

router = APIRouter(prefix="/v1")

MAX_ID_CHARS = 200
THREAD_SETTLE_SECONDS = 2.0
ThreadIdPath = Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)]


_projection = from_state("firm_settings", MongoFirmSettingsProjection)
_reminders = from_state("reminders", ReminderService)
_projection_of_threads = from_state("thread_projection", ThreadProjection)
_threads = from_state("threads", MongoThreadStore)
_inbox = from_state("inbox", MongoInbox)


FirmSettingsDep = Annotated[MongoFirmSettingsProjection, Depends(_projection)]
RemindersDep = Annotated[ReminderService, Depends(_reminders)]
ThreadsDep = Annotated[MongoThreadStore, Depends(_threads)]
ThreadProjectionDep = Annotated[ThreadProjection, Depends(_projection_of_threads)]
InboxDep = Annotated[MongoInbox, Depends(_inbox)]


class NotificationSettingsOut(BaseModel):
    show_message_context_in_notifications: bool
    revision: int


@router.get("/firm/notification-settings", tags=["notification settings"])
async def notification_settings(
    principal: CurrentPrincipal, projection: FirmSettingsDep
) -> NotificationSettingsOut:
    """What client e-mails of the caller's firm may show (staff only), as reminders sees it."""
    if not principal.is_staff:
        raise Forbidden("Only firm staff can read notification settings.")
    document = await projection.get(principal.firm) or {}
    return NotificationSettingsOut(
        show_message_context_in_notifications=document.get(
            "show_message_context_in_notifications", False
        ),
        revision=document.get("revision", 0),
    )


# -- per-thread reminder settings (Q1) ---------------------------------------------------


class RemindersIn(BaseModel):
    """Reminder settings of one thread (Q1)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    enabled: bool = Field(description="Reminders on or off.")
    days_between: int = Field(default=3, ge=1, le=365, description="Days until the next reminder.")
    max_reminders: int = Field(default=1, ge=1, le=50, description="How many reminders at most.")


class RemindersOut(BaseModel):
    thread_id: str
    enabled: bool
    days_between: int
    max_reminders: int
    reminders_sent: int = Field(description="Reminders sent about the current message.")
    about_message_id: str | None = Field(description="The firm message reminders are about (Q2).")
    next_reminder_at: datetime | None = Field(description="When the next reminder is due.")
    stopped_reason: StopReason | None = Field(
        description="Why reminders stopped (Q3), if they did."
    )


def _reminders_out(thread: dict[str, Any]) -> RemindersOut:
    policy = policy_of(thread)
    schedule = Schedule.from_document(thread.get("schedule"))
    stopped = thread.get("stopped")
    return RemindersOut(
        thread_id=str(thread["thread_id"]),
        enabled=policy.enabled,
        days_between=policy.days_between,
        max_reminders=policy.max_reminders,
        reminders_sent=int(thread.get("reminders_sent", 0)),
        about_message_id=(thread.get("last_firm") or {}).get("message_id"),
        next_reminder_at=schedule.due_at if schedule else None,
        stopped_reason=StopReason(stopped) if stopped else None,
    )


async def _thread_for_staff(
    principal: Principal,
    projection: ThreadProjection,
    threads: MongoThreadStore,
    thread_id: str,
) -> dict[str, Any]:
    """The thread if the caller may manage its reminders: staff who see it (T7). Others who
    see it (its clients) get 403; everyone else 404, as if it did not exist."""
    facts = await projection.facts(principal.firm, thread_id)
    if facts is None or not can_view_thread(principal, facts):
        raise NotFound(f"Thread {thread_id} was not found.")
    if not principal.is_staff:
        raise Forbidden("Only firm staff can see or change a thread's reminders.")
    # the projection and reminders' own thread are written by one event's two handlers
    thread = await threads.wait_for(principal.firm, thread_id, seconds=THREAD_SETTLE_SECONDS)
    if thread is None:
        raise NotFound(f"Thread {thread_id} was not found.")
    return thread


@router.get("/threads/{thread_id}/reminders", tags=["reminders"])
async def get_reminders(
    thread_id: ThreadIdPath,
    principal: CurrentPrincipal,
    projection: ThreadProjectionDep,
    threads: ThreadsDep,
) -> RemindersOut:
    """A thread's reminder settings and state (Q1-Q3)."""
    return _reminders_out(await _thread_for_staff(principal, projection, threads, thread_id))


@router.put("/threads/{thread_id}/reminders", tags=["reminders"])
async def put_reminders(
    *,
    thread_id: ThreadIdPath,
    body: RemindersIn,
    principal: CurrentPrincipal,
    projection: ThreadProjectionDep,
    threads: ThreadsDep,
    reminders: RemindersDep,
) -> RemindersOut:
    """Change a thread's reminder settings (Q1): off stops them, on (re-)arms them."""
    thread = await _thread_for_staff(principal, projection, threads, thread_id)
    policy = ReminderPolicy(
        enabled=body.enabled, days_between=body.days_between, max_reminders=body.max_reminders
    )
    return _reminders_out(await reminders.change_settings(thread, policy))


# -- staff inbox (N2, K5, K6) -------------------------------------------------------------


class ActorOut(BaseModel):
    user_id: str
    kind: Literal["staff", "client"]
    name: str


class ProgressOut(BaseModel):
    done: int
    total: int


class InboxDetailOut(BaseModel):
    """What the item is about; which fields are set depends on the type."""

    message_id: str | None = None
    internal: bool | None = None
    excerpt: str | None = None
    change: str | None = None
    tasks: list[str] | None = None
    progress: ProgressOut | None = None
    total: int | None = None
    document_id: str | None = None
    filename: str | None = None


class InboxItemOut(BaseModel):
    id: str
    type: InboxItemType
    thread_id: str | None
    account_id: str
    account_name: str
    subject: str
    actor: ActorOut
    at: datetime
    read: bool
    detail: InboxDetailOut


class InboxPageOut(BaseModel):
    items: list[InboxItemOut]
    unread_count: int
    next_before: str | None = Field(description="Pass as `before` for the next (older) page.")


class InboxMarkedOut(BaseModel):
    marked: int
    unread_count: int


def _staff_only(principal: Principal) -> None:
    if not principal.is_staff:
        raise Forbidden("The inbox is for firm staff; clients see their threads instead.")


def _item_out(document: dict[str, Any]) -> InboxItemOut:
    return InboxItemOut(
        id=str(document["_id"]),
        type=InboxItemType(document["type"]),
        thread_id=document.get("thread_id"),
        account_id=str(document.get("account_id", "")),
        account_name=str(document.get("account_name", "")),
        subject=str(document.get("subject", "")),
        actor=ActorOut.model_validate(document["actor"]),
        at=document["at"],
        read=bool(document.get("read")),
        detail=InboxDetailOut.model_validate(document.get("detail") or {}),
    )


@router.get("/inbox", tags=["inbox"])
async def list_inbox(
    principal: CurrentPrincipal,
    inbox: InboxDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    before: Annotated[str | None, Query(min_length=1, max_length=2 * MAX_ID_CHARS)] = None,
    unread_only: bool = False,
) -> InboxPageOut:
    """The caller's inbox items, newest first, with the unread count (N2, K5, K6)."""
    _staff_only(principal)
    documents = await inbox.page(
        principal.firm, principal.sub, before=before, limit=limit, unread_only=unread_only
    )
    return InboxPageOut(
        items=[_item_out(document) for document in documents],
        unread_count=await inbox.unread_count(principal.firm, principal.sub),
        next_before=str(documents[-1]["_id"]) if len(documents) == limit else None,
    )


@router.post("/inbox/read-all", tags=["inbox"])
async def mark_all_read(principal: CurrentPrincipal, inbox: InboxDep) -> InboxMarkedOut:
    _staff_only(principal)
    marked = await inbox.mark_all_read(principal.firm, principal.sub)
    return InboxMarkedOut(marked=marked, unread_count=0)


@router.post("/inbox/{item_id}/read", tags=["inbox"])
async def mark_read(
    item_id: Annotated[str, Path(min_length=1, max_length=2 * MAX_ID_CHARS)],
    principal: CurrentPrincipal,
    inbox: InboxDep,
) -> InboxMarkedOut:
    _staff_only(principal)
    if not await inbox.mark_read(principal.firm, principal.sub, item_id):
        raise NotFound(f"Inbox item {item_id} was not found.")
    return InboxMarkedOut(
        marked=1, unread_count=await inbox.unread_count(principal.firm, principal.sub)
    )
