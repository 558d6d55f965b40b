"""Message routes: post, page, permalink context, edit, history, delete, pins, mark read."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from pydantic import Field

from threadline.kit.http import CurrentPrincipal, idempotency_key_header, mark_replayed
from threadline.kit.inputs import MAX_INT64, Identifier, NonNegativeInt64Query, RequestModel
from threadline.kit.limits import body_limit
from threadline.messaging.api.deps import MessageServiceDep
from threadline.messaging.service import MessageDraft
from threadline.messaging.service.views import (
    EditHistory,
    MessageContext,
    MessagePage,
    MessageView,
    PinnedMessages,
    ReadPosition,
)

__all__ = ["NewMessageIn", "router"]

router = APIRouter(prefix="/v1/threads/{thread_id}", tags=["messages"])

MAX_HTML_CHARACTERS = 256 * 1024
MAX_MENTIONS_IN_REQUEST = 100
MAX_VIDEO_URLS = 20


def message_body_budget(settings: Any) -> int:
    """A message request's body limit: the configured message size, three times over (JSON
    may escape a character into six bytes where UTF-8 needs two), plus room for the other
    fields (mentions, links)."""
    return 3 * int(settings.max_message_bytes) + 64 * 1024


class NewMessageIn(RequestModel):
    html: str = Field(
        max_length=MAX_HTML_CHARACTERS, description="M1: rich text; sanitised on receipt."
    )
    internal: bool = Field(default=False, description="M3: staff-only message.")
    mentions: list[Identifier] = Field(
        default_factory=list, max_length=MAX_MENTIONS_IN_REQUEST, description="M2: staff user ids."
    )
    reply_to: Identifier | None = Field(
        default=None, description="M7: id of the message replied to."
    )
    video_urls: list[Annotated[str, Field(max_length=2000)]] = Field(
        default_factory=list,
        max_length=MAX_VIDEO_URLS,
        description="M5: Loom, YouTube, Vimeo or Google Drive links.",
    )

    def draft(self) -> MessageDraft:
        return MessageDraft(
            html=self.html,
            internal=self.internal,
            mentions=tuple(self.mentions),
            reply_to=self.reply_to,
            video_urls=tuple(self.video_urls),
        )


class EditIn(RequestModel):
    html: str = Field(max_length=MAX_HTML_CHARACTERS)


class ReadIn(RequestModel):
    up_to_seq: int | None = Field(
        default=None, ge=1, le=MAX_INT64, description="Default: the latest message."
    )


@router.post(
    "/messages",
    status_code=status.HTTP_201_CREATED,
    dependencies=[body_limit(message_body_budget)],
)
async def post_message(
    thread_id: str,
    body: NewMessageIn,
    principal: CurrentPrincipal,
    messages: MessageServiceDep,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        idempotency_key_header(
            "Makes a retried post safe: the same key (per author and thread) returns the "
            "message the first try stored, with `Idempotent-Replayed: true`; the same key "
            "with a different message is 409."
        ),
    ] = None,
) -> MessageView:
    if idempotency_key is None:
        return await messages.post(principal, thread_id, body.draft())
    view, replayed = await messages.post_once(
        principal, thread_id, body.draft(), key=idempotency_key
    )
    mark_replayed(response, replayed)
    return view


@router.get("/messages")
async def list_messages(
    thread_id: str,
    principal: CurrentPrincipal,
    messages: MessageServiceDep,
    before: NonNegativeInt64Query = None,
    after: NonNegativeInt64Query = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> MessagePage:
    """Ascending by `seq`; `before`/`after` take the cursors of a previous page."""
    return await messages.page(principal, thread_id, before=before, after=after, limit=limit)


@router.get("/messages/{message_id}/context")
async def message_context(
    thread_id: str,
    message_id: str,
    principal: CurrentPrincipal,
    messages: MessageServiceDep,
    radius: Annotated[int, Query(ge=0, le=100)] = 20,
) -> MessageContext:
    """M9: what a permalink opens — the message with `radius` messages each side."""
    return await messages.context(principal, thread_id, message_id, radius=radius)


@router.patch("/messages/{message_id}", dependencies=[body_limit(message_body_budget)])
async def edit_message(
    thread_id: str,
    message_id: str,
    body: EditIn,
    principal: CurrentPrincipal,
    messages: MessageServiceDep,
) -> MessageView:
    """M8: staff edit their own message within 24 hours."""
    return await messages.edit(principal, thread_id, message_id, html=body.html)


@router.get("/messages/{message_id}/history")
async def message_history(
    thread_id: str, message_id: str, principal: CurrentPrincipal, messages: MessageServiceDep
) -> EditHistory:
    return {"versions": await messages.history(principal, thread_id, message_id)}


@router.delete("/messages/{message_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_message(
    thread_id: str, message_id: str, principal: CurrentPrincipal, messages: MessageServiceDep
) -> None:
    await messages.delete(principal, thread_id, message_id)


@router.put("/messages/{message_id}/pin")
async def pin_message(
    thread_id: str, message_id: str, principal: CurrentPrincipal, messages: MessageServiceDep
) -> MessageView:
    return await messages.set_pinned(principal, thread_id, message_id, pinned=True)


@router.delete("/messages/{message_id}/pin")
async def unpin_message(
    thread_id: str, message_id: str, principal: CurrentPrincipal, messages: MessageServiceDep
) -> MessageView:
    return await messages.set_pinned(principal, thread_id, message_id, pinned=False)


@router.get("/pins")
async def pinned_messages(
    thread_id: str, principal: CurrentPrincipal, messages: MessageServiceDep
) -> PinnedMessages:
    return {"messages": await messages.pins(principal, thread_id)}


@router.post("/read")
async def mark_read(
    thread_id: str, body: ReadIn, principal: CurrentPrincipal, messages: MessageServiceDep
) -> ReadPosition:
    return await messages.mark_read(principal, thread_id, up_to_seq=body.up_to_seq)
