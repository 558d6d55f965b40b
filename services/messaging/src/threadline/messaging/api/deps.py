"""FastAPI dependency aliases for messaging's use cases (built in ``main.create_app``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from threadline.kit.http import from_state
from threadline.messaging.service import (
    DraftService,
    FirmSettingsService,
    MessageService,
    ThreadService,
)

__all__ = ["DraftServiceDep", "FirmSettingsServiceDep", "MessageServiceDep", "ThreadServiceDep"]


ThreadServiceDep = Annotated[ThreadService, Depends(from_state("threads", ThreadService))]
MessageServiceDep = Annotated[MessageService, Depends(from_state("messages", MessageService))]
DraftServiceDep = Annotated[DraftService, Depends(from_state("drafts", DraftService))]
FirmSettingsServiceDep = Annotated[
    FirmSettingsService, Depends(from_state("firm_settings", FirmSettingsService))
]
