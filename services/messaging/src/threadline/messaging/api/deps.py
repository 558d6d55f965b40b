"""FastAPI dependency aliases for messaging's use cases (built in ``main.create_app``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from threadline.messaging.service import (
    DraftService,
    FirmSettingsService,
    MessageService,
    ThreadService,
)

__all__ = ["DraftServiceDep", "FirmSettingsServiceDep", "MessageServiceDep", "ThreadServiceDep"]


def _threads(request: Request) -> ThreadService:
    service: ThreadService = request.app.state.threads
    return service


def _messages(request: Request) -> MessageService:
    service: MessageService = request.app.state.messages
    return service


def _drafts(request: Request) -> DraftService:
    service: DraftService = request.app.state.drafts
    return service


def _firm_settings(request: Request) -> FirmSettingsService:
    service: FirmSettingsService = request.app.state.firm_settings
    return service


ThreadServiceDep = Annotated[ThreadService, Depends(_threads)]
MessageServiceDep = Annotated[MessageService, Depends(_messages)]
DraftServiceDep = Annotated[DraftService, Depends(_drafts)]
FirmSettingsServiceDep = Annotated[FirmSettingsService, Depends(_firm_settings)]
