"""Reminders HTTP routes (reminder scheduling and e-mails arrive with their issue)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from threadline.kit.errors import Forbidden
from threadline.kit.http import CurrentPrincipal, from_state
from threadline.reminders.store import MongoFirmSettingsProjection

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["notification settings"])


_projection = from_state("firm_settings", MongoFirmSettingsProjection)


class NotificationSettingsOut(BaseModel):
    show_message_context_in_notifications: bool
    revision: int


@router.get("/firm/notification-settings")
async def notification_settings(
    principal: CurrentPrincipal,
    projection: Annotated[MongoFirmSettingsProjection, Depends(_projection)],
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
