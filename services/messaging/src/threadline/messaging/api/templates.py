"""Chat template routes (P1): CRUD, duplicate, preview, and the shortcode list for editors."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field

from threadline.contracts.events.messaging import ReminderSettings
from threadline.kit.http import CurrentPrincipal, from_state
from threadline.messaging.service.templates import (
    MAX_NAME_CHARS,
    MAX_SUBJECT_CHARS,
    MAX_TASK_CHARS,
    Content,
    TemplateService,
    check_staff,
)
from threadline.messaging.shortcodes import SHORTCODES

__all__ = ["ReminderSettingsIn", "ReminderSettingsOut", "router"]

router = APIRouter(prefix="/v1/templates", tags=["templates"])

MAX_TASKS = 100
MAX_HTML_CHARS = 256 * 1024
TemplateId = Annotated[str, Path(min_length=1, max_length=100)]
Task = Annotated[str, Field(min_length=1, max_length=MAX_TASK_CHARS)]


TemplateServiceDep = Annotated[TemplateService, Depends(from_state("templates", TemplateService))]


class ReminderSettingsIn(BaseModel):
    """Q1: reminders on or off, days between them, how many."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    days_between: int = Field(default=3, ge=1, le=365)
    max_reminders: int = Field(default=1, ge=1, le=50)

    def settings(self) -> ReminderSettings:
        return ReminderSettings(**self.model_dump())


class ReminderSettingsOut(BaseModel):
    enabled: bool
    days_between: int
    max_reminders: int


class TemplateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    subject: str = Field(
        min_length=1, max_length=MAX_SUBJECT_CHARS, description="Plain text; may hold shortcodes."
    )
    html: str = Field(
        min_length=1,
        max_length=MAX_HTML_CHARS,
        description="M1 rich text, sanitised like a message; may hold shortcodes.",
    )
    client_tasks: list[Task] = Field(default_factory=list, max_length=MAX_TASKS)
    reminders: ReminderSettingsIn = Field(default_factory=ReminderSettingsIn)


class TemplateChange(BaseModel):
    """Fields to change; those left out keep their value."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=MAX_NAME_CHARS)
    subject: str | None = Field(default=None, min_length=1, max_length=MAX_SUBJECT_CHARS)
    html: str | None = Field(default=None, min_length=1, max_length=MAX_HTML_CHARS)
    client_tasks: list[Task] | None = Field(default=None, max_length=MAX_TASKS)
    reminders: ReminderSettingsIn | None = None


class TemplateOut(BaseModel):
    id: str
    name: str
    subject: str
    html: str
    client_tasks: list[str]
    reminders: ReminderSettingsOut
    created_by: str
    created_at: datetime
    updated_at: datetime
    revision: int

    @classmethod
    def of(cls, document: dict[str, Any]) -> TemplateOut:
        return cls(
            id=document["_id"],
            name=document["name"],
            subject=document["subject"],
            html=document["html"],
            client_tasks=list(document["client_tasks"]),
            reminders=ReminderSettingsOut(**document["reminders"]),
            created_by=document["created_by"],
            created_at=document["created_at"],
            updated_at=document["updated_at"],
            revision=document["revision"],
        )


class TemplatePageOut(BaseModel):
    templates: list[TemplateOut]
    next_cursor: str | None


class ShortcodeOut(BaseModel):
    code: str = Field(description="The code, e.g. `account.name`.")
    token: str = Field(description="What to type in a template, e.g. `[[account.name]]`.")
    description: str
    fallback: str = Field(description="What is shown when a recipient lacks the value.")


class ShortcodesOut(BaseModel):
    shortcodes: list[ShortcodeOut]


class PreviewOut(BaseModel):
    """What a thread created from the template for the account gets (P1)."""

    account_id: str
    to_contact_ids: list[str]
    subject: str
    html: str
    text: str
    client_tasks: list[str]
    reminders: ReminderSettingsOut


@router.get("/shortcodes")
async def list_shortcodes(principal: CurrentPrincipal) -> ShortcodesOut:
    """The shortcodes a template may use, for template editors (staff)."""
    check_staff(principal)
    return ShortcodesOut(
        shortcodes=[
            ShortcodeOut(
                code=shortcode.code,
                token=f"[[{shortcode.code}]]",
                description=shortcode.description,
                fallback=shortcode.fallback,
            )
            for shortcode in SHORTCODES
        ]
    )


@router.get("")
async def list_templates(
    principal: CurrentPrincipal,
    templates: TemplateServiceDep,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> TemplatePageOut:
    """Every staff member lists the firm's templates, oldest first."""
    page, next_cursor = await templates.page(principal, cursor=cursor, limit=limit)
    return TemplatePageOut(
        templates=[TemplateOut.of(document) for document in page], next_cursor=next_cursor
    )


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_template(
    body: TemplateIn, principal: CurrentPrincipal, templates: TemplateServiceDep
) -> TemplateOut:
    created = await templates.create(
        principal,
        name=body.name,
        content=Content(
            subject=body.subject,
            html=body.html,
            client_tasks=tuple(body.client_tasks),
            reminders=body.reminders.settings(),
        ),
    )
    return TemplateOut.of(created)


@router.get("/{template_id}")
async def get_template(
    template_id: TemplateId, principal: CurrentPrincipal, templates: TemplateServiceDep
) -> TemplateOut:
    return TemplateOut.of(await templates.get(principal, template_id))


@router.patch("/{template_id}")
async def change_template(
    template_id: TemplateId,
    body: TemplateChange,
    principal: CurrentPrincipal,
    templates: TemplateServiceDep,
) -> TemplateOut:
    changed = await templates.update(
        principal,
        template_id,
        name=body.name,
        subject=body.subject,
        html=body.html,
        client_tasks=None if body.client_tasks is None else tuple(body.client_tasks),
        reminders=body.reminders.settings() if body.reminders else None,
    )
    return TemplateOut.of(changed)


@router.post("/{template_id}/duplicate", status_code=status.HTTP_201_CREATED)
async def duplicate_template(
    template_id: TemplateId, principal: CurrentPrincipal, templates: TemplateServiceDep
) -> TemplateOut:
    return TemplateOut.of(await templates.duplicate(principal, template_id))


@router.delete("/{template_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_template(
    template_id: TemplateId, principal: CurrentPrincipal, templates: TemplateServiceDep
) -> None:
    """Threads created from the template keep what they were created with."""
    await templates.delete(principal, template_id)


@router.post("/{template_id}/preview")
async def preview_template(
    template_id: TemplateId,
    principal: CurrentPrincipal,
    templates: TemplateServiceDep,
    account_id: Annotated[str, Query(min_length=1, max_length=200)],
) -> PreviewOut:
    """Subject, message and tasks rendered for the account's portal contacts, exactly as
    a thread created from the template gets them (same rendering path)."""
    rendered, contacts = await templates.preview(principal, template_id, account_id=account_id)
    return PreviewOut(
        account_id=account_id,
        to_contact_ids=contacts,
        subject=rendered.subject,
        html=rendered.body.html,
        text=rendered.body.text,
        client_tasks=list(rendered.client_tasks),
        reminders=ReminderSettingsOut(**rendered.reminders.model_dump()),
    )
