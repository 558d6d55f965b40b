"""Thread routes: create, list, show, archive, reopen, drafts."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, Field

from threadline.contracts.events.messaging import ReminderSettings
from threadline.kit.http import CurrentPrincipal, idempotency_key_header, mark_replayed
from threadline.kit.inputs import Identifier, Multiline, RequestModel, SingleLine
from threadline.kit.limits import body_limit
from threadline.messaging.api.deps import DraftServiceDep, ThreadServiceDep
from threadline.messaging.api.messages import (
    MAX_HTML_CHARACTERS,
    NewMessageIn,
    message_body_budget,
)
from threadline.messaging.service import NewThread
from threadline.messaging.service.views import DraftView, ThreadPage, ThreadView

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["threads"])


MAX_CLIENT_TASKS = 100
MAX_TASK_CHARACTERS = 2000


def new_thread_budget(settings: Any) -> int:
    """The first message's budget plus room for subject, contacts, jobs and the client
    tasks (each up to three bytes a character once JSON-escaped)."""
    return message_body_budget(settings) + 3 * MAX_CLIENT_TASKS * MAX_TASK_CHARACTERS + 64 * 1024


class ReminderSettingsIn(RequestModel):
    enabled: bool = False
    days_between: int = Field(default=3, ge=1, le=365)
    max_reminders: int = Field(default=1, ge=1, le=50)


class NewThreadIn(RequestModel):
    """T4: subject, first message, addressed contacts, client tasks, reminders, job links.

    With ``template_id`` (P1) the fields left out come from the template, and shortcodes
    are filled for the addressed contacts; without it, ``subject`` and ``message`` are
    required."""

    account_id: Identifier
    template_id: Identifier | None = Field(default=None, description="P1: the template to use.")
    subject: Annotated[str, Field(min_length=1, max_length=300), SingleLine] | None = Field(
        default=None, description="Plain text (shown as text: `<` stays `<`)."
    )
    message: NewMessageIn | None = None
    to_contact_ids: list[Identifier] = Field(
        default_factory=list,
        max_length=100,
        description="T2: contacts addressed; default every contact with portal access.",
    )
    client_tasks: (
        list[Annotated[str, Field(min_length=1, max_length=MAX_TASK_CHARACTERS), Multiline]] | None
    ) = Field(
        default=None,
        max_length=MAX_CLIENT_TASKS,
        description="Plain text. Default: the template's, or none.",
    )
    reminders: ReminderSettingsIn | None = Field(
        default=None, description="Default: the template's, or off."
    )
    job_ids: list[Identifier] = Field(default_factory=list, max_length=50)


class DraftIn(RequestModel):
    """D4: text and the internal flag only — no attachments, no reply context."""

    html: str = Field(max_length=MAX_HTML_CHARACTERS)
    internal: bool = False


Limit = Annotated[int, Query(ge=1, le=100)]


@router.post(
    "/threads",
    status_code=status.HTTP_201_CREATED,
    dependencies=[body_limit(new_thread_budget)],
)
async def create_thread(
    body: NewThreadIn,
    principal: CurrentPrincipal,
    threads: ThreadServiceDep,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        idempotency_key_header(
            "Makes a retried creation safe: the same key (per creator) returns the thread "
            "the first try created, as it is now, with `Idempotent-Replayed: true`; the "
            "same key for another account or subject is 409."
        ),
    ] = None,
) -> ThreadView:
    request = NewThread(
        account_id=body.account_id,
        subject=body.subject,
        first_message=body.message.draft() if body.message else None,
        to_contact_ids=tuple(body.to_contact_ids),
        client_tasks=None if body.client_tasks is None else tuple(body.client_tasks),
        reminders=ReminderSettings(**body.reminders.model_dump()) if body.reminders else None,
        job_ids=tuple(body.job_ids),
        template_id=body.template_id,
    )
    if idempotency_key is None:
        return await threads.create(principal, request)
    view, replayed = await threads.create_once(principal, request, key=idempotency_key)
    mark_replayed(response, replayed)
    return view


@router.get("/threads")
async def list_threads(
    principal: CurrentPrincipal,
    threads: ThreadServiceDep,
    account_id: Annotated[str | None, Query(max_length=200)] = None,
    status_filter: Annotated[
        Literal["active", "archived", "all"], Query(alias="status")
    ] = "active",
    tasks: Literal["incomplete", "completed", "all"] = "all",
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Limit = 25,
) -> ThreadPage:
    """T6: newest activity first; firm-wide, or one account with `account_id`."""
    return await threads.page(
        principal,
        account_id=account_id,
        status=status_filter,
        tasks=tasks,
        cursor=cursor,
        limit=limit,
    )


class ClientSummaryOut(BaseModel):
    """N3: what waits for the calling client across their active threads."""

    threads_with_unread: int = Field(description="Active threads with messages they did not read.")
    unread_messages: int = Field(description="Messages they did not read, in those threads.")
    threads_with_open_tasks: int = Field(description="Active threads with tasks still open.")
    open_tasks: int = Field(description="Client tasks still open in those threads.")


@router.get("/me/summary")
async def client_summary(
    principal: CurrentPrincipal, threads: ThreadServiceDep
) -> ClientSummaryOut:
    """N3: for clients, the number of threads waiting for them and their open tasks."""
    return ClientSummaryOut(**await threads.client_summary(principal))


@router.get("/threads/{thread_id}")
async def get_thread(
    thread_id: str, principal: CurrentPrincipal, threads: ThreadServiceDep
) -> ThreadView:
    return await threads.get(principal, thread_id)


@router.post("/threads/{thread_id}/archive")
async def archive_thread(
    thread_id: str, principal: CurrentPrincipal, threads: ThreadServiceDep
) -> ThreadView:
    return await threads.set_archived(principal, thread_id, archived=True)


@router.post("/threads/{thread_id}/reopen")
async def reopen_thread(
    thread_id: str, principal: CurrentPrincipal, threads: ThreadServiceDep
) -> ThreadView:
    return await threads.set_archived(principal, thread_id, archived=False)


@router.get("/threads/{thread_id}/draft")
async def get_draft(
    thread_id: str, principal: CurrentPrincipal, drafts: DraftServiceDep
) -> DraftView:
    return await drafts.get(principal, thread_id)


@router.put(
    "/threads/{thread_id}/draft",
    response_model=DraftView,
    responses={status.HTTP_204_NO_CONTENT: {"description": "Empty text: the draft is discarded."}},
    dependencies=[body_limit(message_body_budget)],
)
async def save_draft(
    thread_id: str, body: DraftIn, principal: CurrentPrincipal, drafts: DraftServiceDep
) -> DraftView | Response:
    saved = await drafts.save(principal, thread_id, html=body.html, internal=body.internal)
    return saved if saved is not None else Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/threads/{thread_id}/draft", status_code=status.HTTP_204_NO_CONTENT)
async def delete_draft(
    thread_id: str, principal: CurrentPrincipal, drafts: DraftServiceDep
) -> None:
    await drafts.delete(principal, thread_id)
