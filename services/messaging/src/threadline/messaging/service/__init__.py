"""Messaging use cases. No web or database framework is used here: stores are passed in."""

from threadline.messaging.service.compose import Composer, MessageDraft
from threadline.messaging.service.drafts import DraftService
from threadline.messaging.service.messages import MessageService
from threadline.messaging.service.settings import FirmSettingsService
from threadline.messaging.service.threads import NewThread, ThreadService

__all__ = [
    "Composer",
    "DraftService",
    "FirmSettingsService",
    "MessageDraft",
    "MessageService",
    "NewThread",
    "ThreadService",
]
