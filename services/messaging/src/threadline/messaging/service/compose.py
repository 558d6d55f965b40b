"""Composing a message: the rules every new message goes through (M1-M3, M5, M7).

Shared by posting a reply and by creating a thread with its first message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from threadline.contracts import Envelope
from threadline.contracts.events.messaging import Author, Embed, MessagePosted
from threadline.kit.auth import Principal
from threadline.kit.directory import MongoDirectory
from threadline.kit.events import EventFactory
from threadline.kit.ids import Document, new_id
from threadline.messaging.domain import ActionForbidden, InvalidMessage, MessageNotFound
from threadline.messaging.embeds import parse_video_embed
from threadline.messaging.richtext import MessageBody
from threadline.messaging.store.messages import client_number

__all__ = ["EVENTS", "Composer", "MessageDraft", "message_document"]

EVENTS = EventFactory("messaging")
MAX_MENTIONS = 50
MAX_EMBEDS = 10
SNIPPET_CHARS = 140


@dataclass(frozen=True)
class MessageDraft:
    """What a caller asks to post."""

    html: str
    internal: bool = False
    mentions: tuple[str, ...] = ()
    reply_to: str | None = None
    video_urls: tuple[str, ...] = ()


class Composer:
    def __init__(self, *, directory: MongoDirectory, max_body_bytes: int) -> None:
        self._directory = directory
        self.max_body_bytes = max_body_bytes

    async def author(self, principal: Principal, account_id: str) -> Author:
        """R3: a client is shown as the contact person of the account, with the account."""
        if principal.is_staff:
            return await self.staff_author(principal)
        account = await self._directory.account(principal.firm, account_id) or {}
        contact: dict[str, Any] = next(
            (c for c in account.get("contacts", []) if c["contact_id"] == principal.sub), {}
        )
        return Author(
            user_id=principal.sub,
            kind=principal.kind,
            name=contact.get("name") or principal.name or principal.sub,
            account_name=account.get("name") or account_id,
        )

    async def staff_author(self, principal: Principal) -> Author:
        """A staff member is shown by their name in the directory. It needs no thread, so a
        post reads it side by side with the thread (``MessageService.post``)."""
        staff = await self._directory.staff_member(principal.firm, principal.sub) or {}
        return Author(
            user_id=principal.sub,
            kind=principal.kind,
            name=staff.get("name") or principal.name or principal.sub,
        )

    async def check_mentions(self, principal: Principal, mentions: tuple[str, ...]) -> list[str]:
        """M2: mentions are staff of the firm, made by staff."""
        unique = list(dict.fromkeys(mentions))
        if not unique:
            return []
        if principal.is_client:
            raise ActionForbidden("Only firm staff can mention team members.")
        if len(unique) > MAX_MENTIONS:
            raise InvalidMessage(f"A message can mention at most {MAX_MENTIONS} team members.")
        known = await self._directory.active_staff_ids(principal.firm, unique)
        unknown = [user_id for user_id in unique if user_id not in known]
        if unknown:
            raise InvalidMessage(
                f"Mentions must name active staff of the firm; unknown: {', '.join(unknown)}."
            )
        return unique

    def check_internal(
        self, principal: Principal, draft: MessageDraft, parent: Document | None
    ) -> bool:
        """M3: staff only; a reply to an internal message is internal."""
        internal = draft.internal or bool(parent and parent["internal"])
        if internal and principal.is_client:
            raise ActionForbidden("Only firm staff can post internal messages.")
        return internal

    def check_reply(self, principal: Principal, parent: Document | None, reply_to: str) -> None:
        if parent is None or (parent["internal"] and principal.is_client):
            raise MessageNotFound(f"Message {reply_to} to reply to does not exist in this thread.")

    async def compose(
        self,
        principal: Principal,
        *,
        thread: Document,
        draft: MessageDraft,
        parent: Document | None,
        at: datetime,
        author: Author | None = None,
    ) -> tuple[Document, list[str]]:
        """Validate and render a message; returns the document (without seq) and mentions.
        ``author`` is the caller's, when it was read already."""
        if draft.reply_to is not None:
            self.check_reply(principal, parent, draft.reply_to)
        internal = self.check_internal(principal, draft, parent)
        body = MessageBody.from_user_html(draft.html, max_bytes=self.max_body_bytes)
        if len(draft.video_urls) > MAX_EMBEDS:
            raise InvalidMessage(f"A message can embed at most {MAX_EMBEDS} videos.")
        embeds = [parse_video_embed(url) for url in draft.video_urls]
        mentions = await self.check_mentions(principal, draft.mentions)
        if author is None:
            author = await self.author(principal, thread["account_id"])
        document = message_document(
            message_id=new_id(),
            thread=thread,
            author=author,
            internal=internal,
            body=body,
            mentions=mentions,
            reply_to=draft.reply_to,
            embeds=[
                {"provider": e.provider, "url": e.source_url, "embed_url": e.embed_url}
                for e in embeds
            ],
            at=at,
        )
        return document, mentions


def message_document(
    *,
    message_id: str,
    thread: Document,
    author: Author,
    internal: bool,
    body: MessageBody,
    mentions: list[str],
    reply_to: str | None,
    embeds: list[Document],
    at: datetime,
) -> Document:
    """A new message's document, without its numbers (shared with bulk jobs)."""
    return {
        "_id": message_id,
        "firm": thread["firm"],
        "thread_id": thread["_id"],
        "account_id": thread["account_id"],
        "author": author.model_dump(),
        "internal": internal,
        "html": body.html,
        "text": body.text,
        "mentions": mentions,
        "reply_to": reply_to,
        "embeds": embeds,
        "document_ids": [],
        "posted_at": at,
        "edited_at": None,
        "edit_history": [],
        "pinned": False,
        "pinned_at": None,
        "read_by_client_at": None,
        "deleted": False,
    }


def preview(document: Document) -> Document:
    """The thread list's last-message snippet."""
    return {
        "message_id": document["_id"],
        "author_name": document["author"]["name"],
        "author_kind": document["author"]["kind"],
        "text": document["text"][:SNIPPET_CHARS],
        "at": document["posted_at"],
    }


def posted_event(
    document: Document, *, firm: str, event_id: UUID | None = None
) -> Envelope[MessagePosted]:
    return EVENTS(
        MessagePosted(
            thread_id=document["thread_id"],
            account_id=document["account_id"],
            message_id=document["_id"],
            seq=document["seq"],
            client_seq=client_number(document),
            author=Author(**document["author"]),
            internal=document["internal"],
            html=document["html"],
            text=document["text"],
            mentions=document["mentions"],
            reply_to=document["reply_to"],
            document_ids=document["document_ids"],
            embeds=[
                Embed(url=e["url"], provider=e["provider"], embed_url=e["embed_url"])
                for e in document["embeds"]
            ],
            posted_at=document["posted_at"],
        ),
        firm=firm,
        event_id=event_id,
    )
