"""Thread routes: create, list, show, archive, reopen, drafts."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from threadline.contracts.events.messaging import ReminderSettings
from threadline.kit.http import CurrentPrincipal
from threadline.messaging.api.deps import DraftServiceDep, ThreadServiceDep
from threadline.messaging.api.messages import NewMessageIn
from threadline.messaging.service import NewThread

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["threads"])


class ReminderSettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    days_between: int = Field(default=3, ge=1, le=365)
    max_reminders: int = Field(default=1, ge=1, le=50)


class NewThreadIn(BaseModel):
    """T4: subject, first message, addressed contacts, client tasks, reminders, job links.

    With ``template_id`` (P1) the fields left out come from the template, and shortcodes
    are filled for the addressed contacts; without it, ``subject`` and ``message`` are
    required."""

    model_config = ConfigDict(extra="forbid")

    account_id: str = Field(min_length=1, max_length=200)
    template_id: str | None = Field(
        default=None, min_length=1, max_length=100, description="P1: the template to use."
    )
    subject: str | None = Field(default=None, min_length=1, max_length=300)
    message: NewMessageIn | None = None
    to_contact_ids: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="T2: contacts addressed; default every contact with portal access.",
    )
    client_tasks: list[Annotated[str, Field(min_length=1, max_length=2000)]] | None = Field(
        default=None, max_length=100, description="Default: the template's, or none."
    )
    reminders: ReminderSettingsIn | None = Field(
        default=None, description="Default: the template's, or off."
    )
    job_ids: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=50
    )


class DraftIn(BaseModel):
    """D4: text and the internal flag only — no attachments, no reply context."""

    model_config = ConfigDict(extra="forbid")

    html: str = Field(max_length=256 * 1024)
    internal: bool = False


Limit = Annotated[int, Query(ge=1, le=100)]


@router.post("/threads", status_code=status.HTTP_201_CREATED)
async def create_thread(
    body: NewThreadIn, principal: CurrentPrincipal, threads: ThreadServiceDep
) -> dict[str, Any]:
    return await threads.create(
        principal,
        NewThread(
            account_id=body.account_id,
            subject=body.subject,
            first_message=body.message.draft() if body.message else None,
            to_contact_ids=tuple(body.to_contact_ids),
            client_tasks=None if body.client_tasks is None else tuple(body.client_tasks),
            reminders=ReminderSettings(**body.reminders.model_dump()) if body.reminders else None,
            job_ids=tuple(body.job_ids),
            template_id=body.template_id,
        ),
    )


@router.get("/threads")
async def list_threads(
    principal: CurrentPrincipal,
    threads: ThreadServiceDep,
    account_id: str | None = None,
    status_filter: Annotated[
        Literal["active", "archived", "all"], Query(alias="status")
    ] = "active",
    tasks: Literal["incomplete", "completed", "all"] = "all",
    cursor: str | None = None,
    limit: Limit = 25,
) -> dict[str, Any]:
    """T6: newest activity first; firm-wide, or one account with `account_id`."""
    return await threads.page(
        principal,
        account_id=account_id,
        status=status_filter,
        tasks=tasks,
        cursor=cursor,
        limit=limit,
    )


@router.get("/threads/{thread_id}")
async def get_thread(
    thread_id: str, principal: CurrentPrincipal, threads: ThreadServiceDep
) -> dict[str, Any]:
    return await threads.get(principal, thread_id)


@router.post("/threads/{thread_id}/archive")
async def archive_thread(
    thread_id: str, principal: CurrentPrincipal, threads: ThreadServiceDep
) -> dict[str, Any]:
    return await threads.set_archived(principal, thread_id, archived=True)


@router.post("/threads/{thread_id}/reopen")
async def reopen_thread(
    thread_id: str, principal: CurrentPrincipal, threads: ThreadServiceDep
) -> dict[str, Any]:
    return await threads.set_archived(principal, thread_id, archived=False)


@router.get("/threads/{thread_id}/draft")
async def get_draft(
    thread_id: str, principal: CurrentPrincipal, drafts: DraftServiceDep
) -> dict[str, Any]:
    return await drafts.get(principal, thread_id)


@router.put("/threads/{thread_id}/draft", response_model=None)
async def save_draft(
    thread_id: str, body: DraftIn, principal: CurrentPrincipal, drafts: DraftServiceDep
) -> dict[str, Any] | Response:
    saved = await drafts.save(principal, thread_id, html=body.html, internal=body.internal)
    return saved if saved is not None else Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/threads/{thread_id}/draft", status_code=status.HTTP_204_NO_CONTENT)
async def delete_draft(
    thread_id: str, principal: CurrentPrincipal, drafts: DraftServiceDep
) -> None:
    await drafts.delete(principal, thread_id)
