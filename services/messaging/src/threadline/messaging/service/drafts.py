"""Drafts (D1-D4): unsent text per user per thread, private, kept 90 days.

A draft holds text and whether it is internal — never attachments, a reply-to context or
edits of a sent message (D4) — and saving one does not touch the thread, so the thread
list's order does not change.
"""

from __future__ import annotations

from threadline.kit.auth import Principal
from threadline.kit.errors import NotFound
from threadline.kit.ids import Document, utc_now
from threadline.messaging.domain import (
    DRAFT_LIFETIME,
    ActionForbidden,
    MessagingError,
)
from threadline.messaging.richtext import MessageBody, sanitize_html
from threadline.messaging.service.messages import MessageService
from threadline.messaging.service.views import DraftView
from threadline.messaging.store import MongoDraftStore

__all__ = ["DraftNotFound", "DraftService"]


class DraftNotFound(MessagingError, NotFound):
    pass


def _view(document: Document) -> DraftView:
    return {
        "thread_id": document["thread_id"],
        "html": document["html"],
        "internal": document["internal"],
        "updated_at": document["updated_at"],
        "expires_at": document["expires_at"],
    }


class DraftService:
    def __init__(
        self, *, drafts: MongoDraftStore, messages: MessageService, max_body_bytes: int
    ) -> None:
        self._drafts = drafts
        self._messages = messages
        self._max_body_bytes = max_body_bytes

    async def get(self, principal: Principal, thread_id: str) -> DraftView:
        await self._messages.visible_thread(principal, thread_id)
        document = await self._drafts.get(
            firm=principal.firm, thread_id=thread_id, user_id=principal.sub, now=utc_now()
        )
        if document is None:
            raise DraftNotFound("You have no draft in this thread.")
        return _view(document)

    async def save(
        self, principal: Principal, thread_id: str, *, html: str, internal: bool
    ) -> DraftView | None:
        """Save (or, when the text is empty, discard) the caller's draft."""
        await self._messages.visible_thread(principal, thread_id)
        if internal and not principal.is_staff:
            raise ActionForbidden("Only firm staff can draft internal messages.")
        if not sanitize_html(html).strip():
            await self.delete(principal, thread_id)
            return None
        body = MessageBody.from_user_html(html, max_bytes=self._max_body_bytes)
        now = utc_now()
        document = {
            "firm": principal.firm,
            "thread_id": thread_id,
            "user_id": principal.sub,
            "html": body.html,
            "internal": internal,
            "updated_at": now,
            "expires_at": now + DRAFT_LIFETIME,
        }
        await self._drafts.save(document)
        return _view(document)

    async def delete(self, principal: Principal, thread_id: str) -> None:
        await self._messages.visible_thread(principal, thread_id)
        await self._drafts.delete(firm=principal.firm, thread_id=thread_id, user_id=principal.sub)
