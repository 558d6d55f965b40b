"""Messaging HTTP routes."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from threadline.kit.http import CurrentPrincipal
from threadline.kit.inputs import MAX_INT64, RequestModel
from threadline.messaging.api.deps import FirmSettingsServiceDep
from threadline.messaging.domain import FirmChatSettings

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["firm chat settings"])


class FirmChatSettingsOut(BaseModel):
    clients_can_create_threads: bool = Field(description="T3: clients may start threads.")
    show_message_context_in_notifications: bool = Field(
        description="K7: client e-mails include message and task content."
    )
    revision: int = Field(description="Increases with every change; 0 = defaults.")

    @classmethod
    def of(cls, settings: FirmChatSettings) -> FirmChatSettingsOut:
        return cls(
            clients_can_create_threads=settings.clients_can_create_threads,
            show_message_context_in_notifications=settings.show_message_context_in_notifications,
            revision=settings.revision,
        )


class FirmChatSettingsChange(RequestModel):
    clients_can_create_threads: bool | None = None
    show_message_context_in_notifications: bool | None = None
    expected_revision: int | None = Field(
        default=None,
        ge=0,
        le=MAX_INT64,
        description="Reject the change (409) unless this is the current revision.",
    )


@router.get("/firm/chat-settings")
async def get_chat_settings(
    principal: CurrentPrincipal, service: FirmSettingsServiceDep
) -> FirmChatSettingsOut:
    return FirmChatSettingsOut.of(await service.get(principal))


@router.patch("/firm/chat-settings")
async def change_chat_settings(
    change: FirmChatSettingsChange, principal: CurrentPrincipal, service: FirmSettingsServiceDep
) -> FirmChatSettingsOut:
    updated = await service.change(
        principal,
        clients_can_create_threads=change.clients_can_create_threads,
        show_message_context_in_notifications=change.show_message_context_in_notifications,
        expected_revision=change.expected_revision,
    )
    return FirmChatSettingsOut.of(updated)
