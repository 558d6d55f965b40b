"""Message use cases: post, page, permalink context, edit, delete, pin, mark read."""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

import structlog
from pymongo.errors import DuplicateKeyError

from threadline.contracts.events.common import Actor
from threadline.contracts.events.messaging import (
    Author,
    MessageDeleted,
    MessageEdited,
    MessagePinned,
    MessagesRead,
    MessageUnpinned,
    NewClientTask,
)
from threadline.kit.auth import Principal
from threadline.kit.ids import Document, stored_precision, utc_now
from threadline.kit.policy import can_see_internal
from threadline.messaging.domain import (
    ActionForbidden,
    InvalidMessage,
    MessageNotFound,
    ThreadNotFound,
    check_can_edit,
    check_can_post,
    check_visible,
)
from threadline.messaging.richtext import MessageBody
from threadline.messaging.service.compose import (
    EVENTS,
    Composer,
    MessageDraft,
    posted_event,
    preview,
)
from threadline.messaging.service.idempotency import IdempotencyConflict, derived_id
from threadline.messaging.service.views import (
    EditVersion,
    MessageContext,
    MessagePage,
    MessageView,
    ReadPosition,
    message_view,
    seq_field,
)
from threadline.messaging.store import MongoMessageStore, MongoReadStore, MongoThreadStore
from threadline.messaging.store.messages import client_number
from threadline.messaging.store.threads import thread_of

__all__ = ["MessageService"]


_log = structlog.get_logger(__name__)


class _LeftToRelay(Exception):
    """The message is stored; recording it in its thread failed and is left to the relay."""


NUMBERING_CACHE_THREADS = 10_000
"""Threads whose last stored numbers a process remembers (least recently posted go first)."""


class ThreadNumbering:
    """Per-thread turns for numbering within one process, and the numbers each thread's
    last post stored here: the next post numbers from them without waiting for (or
    colliding with) the thread document, which records a post only after its insert.
    A turn lasts from just before the insert until the insert is done."""

    def __init__(self, *, remembered: int = NUMBERING_CACHE_THREADS) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._last: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self._remembered = remembered

    @contextlib.asynccontextmanager
    async def turn(self, thread_id: str) -> AsyncIterator[NumberingTurn]:
        """Wait for the thread's turn (ended by ``NumberingTurn.stored`` or on exit)."""
        lock, users = self._locks.get(thread_id, (asyncio.Lock(), 0))
        self._locks[thread_id] = (lock, users + 1)
        try:
            await lock.acquire()
            turn = NumberingTurn(self, thread_id, lock, self._last.get(thread_id, (0, 0)))
            try:
                yield turn
            finally:
                turn.end()
        finally:
            lock, users = self._locks[thread_id]
            if users == 1:
                del self._locks[thread_id]
            else:
                self._locks[thread_id] = (lock, users - 1)

    def remember(self, thread_id: str, seq: int, client_seq: int) -> None:
        previous = self._last.pop(thread_id, (0, 0))
        self._last[thread_id] = (max(seq, previous[0]), max(client_seq, previous[1]))
        while len(self._last) > self._remembered:
            self._last.popitem(last=False)


class NumberingTurn:
    def __init__(
        self, numbering: ThreadNumbering, thread_id: str, lock: asyncio.Lock, last: tuple[int, int]
    ) -> None:
        self.last = last
        """The last (seq, client_seq) stored in the thread by this process."""
        self._numbering, self._thread_id, self._lock = numbering, thread_id, lock
        self._ended = False

    def stored(self, seq: int, client_seq: int) -> None:
        """The insert took these numbers: remember them and let the next post go."""
        self._numbering.remember(self._thread_id, seq, client_seq)
        self.end()

    def end(self) -> None:
        if not self._ended:
            self._ended = True
            self._lock.release()


class MessageService:
    def __init__(
        self,
        *,
        threads: MongoThreadStore,
        messages: MongoMessageStore,
        reads: MongoReadStore,
        composer: Composer,
    ) -> None:
        self._threads = threads
        self._messages = messages
        self._reads = reads
        self._composer = composer
        self._numbering = ThreadNumbering()

    async def visible_thread(self, principal: Principal, thread_id: str) -> Document:
        """The thread document, or ThreadNotFound when it is absent or hidden (T7)."""
        document = await self._threads.get(principal.firm, thread_id)
        if document is None:
            raise ThreadNotFound(f"Thread {thread_id} does not exist.")
        check_visible(principal, thread_of(document))
        return document

    async def _visible_message(
        self, principal: Principal, thread_id: str, message_id: str
    ) -> Document:
        message = await self._messages.get(thread_id, message_id)
        if message is None or (message["internal"] and not can_see_internal(principal)):
            raise MessageNotFound(f"Message {message_id} does not exist in this thread.")
        return message

    async def post(self, principal: Principal, thread_id: str, draft: MessageDraft) -> MessageView:
        thread, author = await self._thread_and_author(principal, thread_id)
        check_can_post(principal, thread_of(thread), internal=draft.internal)
        return await self.post_in(principal, thread, draft, author=author)

    async def _thread_and_author(
        self, principal: Principal, thread_id: str
    ) -> tuple[Document, Author | None]:
        """The visible thread and, for staff, the post's author, read side by side: a staff
        member's name needs no thread (a client's needs its account), so a staff post waits
        for one read fewer in a row."""
        if not principal.is_staff:
            return await self.visible_thread(principal, thread_id), None
        return await asyncio.gather(
            self.visible_thread(principal, thread_id), self._composer.staff_author(principal)
        )

    async def post_once(
        self, principal: Principal, thread_id: str, draft: MessageDraft, *, key: str
    ) -> tuple[MessageView, bool]:
        """Post with an ``Idempotency-Key``: the message's id is derived from the thread, the
        author and the key, so a retry — also one whose first try was stored but answered
        503 or lost on the way — finds that message instead of posting it twice. Returns the
        message and whether it was stored before (a replay). The same key with a different
        message (text, internal flag, reply) is a conflict."""
        thread, author = await self._thread_and_author(principal, thread_id)
        check_can_post(principal, thread_of(thread), internal=draft.internal)
        document, mentions = await self.prepare(principal, thread, draft, author=author)
        message_id = derived_id("message", thread["_id"], principal.sub, key)
        stored = await self._messages.by_id(message_id)
        if stored is None:
            document["_id"] = message_id
            try:
                return await self.store_prepared(principal, thread, document, mentions), False
            except DuplicateKeyError:  # a concurrent retry stored it first
                stored = await self._messages.by_id(message_id)
                if stored is None:
                    raise
        if not _same_post(stored, document):
            raise IdempotencyConflict(
                "This Idempotency-Key was used for a different message in this thread; "
                "use a new key for a new message."
            )
        return message_view(stored, principal), True

    async def post_in(
        self,
        principal: Principal,
        thread: Document,
        draft: MessageDraft,
        *,
        author: Author | None = None,
    ) -> MessageView:
        """Post into a thread already checked for access (``author``: the caller's, when it
        was read already)."""
        document, mentions = await self.prepare(principal, thread, draft, author=author)
        return await self.store_prepared(principal, thread, document, mentions)

    async def prepare(
        self,
        principal: Principal,
        thread: Document,
        draft: MessageDraft,
        *,
        author: Author | None = None,
    ) -> tuple[Document, list[str]]:
        """Validate and render a message without storing it (raises what posting would)."""
        parent = None
        if draft.reply_to is not None:
            parent = await self._messages.get(thread["_id"], draft.reply_to)
        return await self._composer.compose(
            principal,
            thread=thread,
            draft=draft,
            parent=parent,
            at=stored_precision(utc_now()),
            author=author,
        )

    async def store_prepared(
        self,
        principal: Principal,
        thread: Document,
        document: Document,
        mentions: list[str],
        *,
        client_tasks: Sequence[NewClientTask] = (),
    ) -> MessageView:
        """Store a prepared message; ``client_tasks`` ride on its event for the tasks
        service to add to the thread's list (a template sent as a reply, J1).

        The insert takes the message's numbers (see ``MongoMessageStore.insert_numbered``),
        then the thread records it, then its event is published: a crash anywhere leaves
        no gap, and the outbox relay records a stored message in its thread (``finish``)
        before publishing what a crash left pending. Raises ``DuplicateKeyError`` when a
        message with this id is stored already (a redelivered event).

        Posts to one thread take turns within this process (``ThreadNumbering``), so they
        number from what the previous one stored instead of colliding on the index; only
        another replica's post or a crashed one costs a retry."""
        if thread["status"] != "active":
            raise InvalidMessage("The thread is archived; reopen it to post.")

        def event_of(numbered: Document) -> Any:
            event = posted_event(numbered, firm=thread["firm"])
            if client_tasks:
                data = event.data.model_copy(update={"client_tasks": list(client_tasks)})
                event = event.model_copy(update={"data": data})
            return event

        thread_id = thread["_id"]
        known = (int(thread.get("seq", 0)), int(thread.get("client_seq", 0)))
        async with self._numbering.turn(thread_id) as turn:
            # Both are numbers already stored (lower bounds of the thread's last ones).
            after = (max(known[0], turn.last[0]), max(known[1], turn.last[1]))

            async def inserted(message: Document) -> None:
                turn.stored(int(message["seq"]), client_number(message) or after[1])
                try:
                    await self._record_in_thread(message)
                except Exception as exc:
                    raise _LeftToRelay from exc

            try:
                await self._messages.insert_numbered(
                    document, after=after, event_of=event_of, then=inserted
                )
            except _LeftToRelay:
                # Stored, but the thread could not record it now (storage hiccup): its event
                # stays pending, and the relay records it before publishing — it was posted.
                _log.warning("thread record left to the outbox relay", message_id=document["_id"])
        return message_view(document, principal)

    async def _record_in_thread(self, message: Document) -> None:
        deleted = bool(message.get("deleted", False))
        await self._threads.record_posted(
            message["thread_id"],
            seq=int(message["seq"]),
            client_seq=client_number(message),
            at=message["posted_at"] if not deleted else None,
            preview=None if deleted else preview(message),
            mentions=list(message.get("mentions", [])),
        )

    async def finish(self, message_id: str) -> None:
        """The outbox relay's step before it publishes a message's pending events: the
        thread records the message (idempotent), in case a crash came between the two."""
        message = await self._messages.by_id(message_id)
        if message is None or "seq" not in message:
            return
        recorded = await self._threads.records(
            message["thread_id"], seq=int(message["seq"]), client_seq=client_number(message)
        )
        if not recorded:
            await self._record_in_thread(message)

    async def page(
        self,
        principal: Principal,
        thread_id: str,
        *,
        before: int | None,
        after: int | None,
        limit: int,
    ) -> MessagePage:
        """Cursor pagination both ways by sequence number; latest page by default."""
        if before is not None and after is not None:
            raise InvalidMessage("Give either `before` or `after`, not both.")
        await self.visible_thread(principal, thread_id)
        direction: Literal["before", "after"] = "after" if after is not None else "before"
        numbering = seq_field(principal)
        documents, more = await self._messages.page(
            thread_id,
            include_internal=can_see_internal(principal),
            direction=direction,
            seq=after if after is not None else before,
            limit=limit,
            numbering=numbering,
        )
        first = documents[0][numbering] if documents else None
        last = documents[-1][numbering] if documents else None
        if direction == "before":
            older, newer = (first if more else None), (last if before is not None else None)
        else:
            older, newer = first, (last if more else None)
        return {
            "messages": [message_view(document, principal) for document in documents],
            "older_cursor": older,
            "newer_cursor": newer,
        }

    async def context(
        self, principal: Principal, thread_id: str, message_id: str, *, radius: int
    ) -> MessageContext:
        """M9: the page of messages around a permalink's message."""
        await self.visible_thread(principal, thread_id)
        target = await self._visible_message(principal, thread_id, message_id)
        include, numbering = can_see_internal(principal), seq_field(principal)
        around: dict[str, Any] = {
            "include_internal": include,
            "seq": target[numbering],
            "limit": radius,
            "numbering": numbering,
        }
        older, more_older = await self._messages.page(thread_id, direction="before", **around)
        newer, more_newer = await self._messages.page(thread_id, direction="after", **around)
        documents = [*older, target, *newer]
        return {
            "message_id": message_id,
            "messages": [message_view(document, principal) for document in documents],
            "older_cursor": documents[0][numbering] if more_older else None,
            "newer_cursor": documents[-1][numbering] if more_newer else None,
        }

    async def edit(
        self, principal: Principal, thread_id: str, message_id: str, *, html: str
    ) -> MessageView:
        """M8: own messages, staff, within 24 h; history kept for staff."""
        thread = await self.visible_thread(principal, thread_id)
        message = await self._visible_message(principal, thread_id, message_id)
        now = utc_now()
        check_can_edit(
            principal,
            author_id=message["author"]["user_id"],
            posted_at=message["posted_at"],
            now=now,
        )
        body = MessageBody.from_user_html(html, max_bytes=self._composer.max_body_bytes)
        event = EVENTS(
            MessageEdited(
                thread_id=thread_id,
                account_id=thread["account_id"],
                message_id=message_id,
                internal=message["internal"],
                html=body.html,
                text=body.text,
                mentions=message["mentions"],
                edited_by=principal.sub,
                edited_at=now,
            ),
            firm=principal.firm,
        )
        previous = {"html": message["html"], "text": message["text"], "replaced_at": now}
        saved = await self._messages.update(
            message_id,
            expected={"html": message["html"], "deleted": False},
            changes={"html": body.html, "text": body.text, "edited_at": now},
            push={"edit_history": previous},
            event=event,
        )
        if not saved:
            raise ActionForbidden("The message changed meanwhile; reload and try again.")
        await self._refresh_previews(thread_id, message_id)
        return message_view(
            message | {"html": body.html, "text": body.text, "edited_at": now}, principal
        )

    async def history(
        self, principal: Principal, thread_id: str, message_id: str
    ) -> list[EditVersion]:
        """M8: earlier versions of an edited message, for staff only."""
        if not principal.is_staff:
            raise ActionForbidden("Only firm staff can see a message's edit history.")
        await self.visible_thread(principal, thread_id)
        message = await self._visible_message(principal, thread_id, message_id)
        return list(message.get("edit_history", []))

    async def delete(self, principal: Principal, thread_id: str, message_id: str) -> None:
        """M11: permanent, by its sender only; the event lists the attached documents."""
        thread = await self.visible_thread(principal, thread_id)
        message = await self._visible_message(principal, thread_id, message_id)
        if message["author"]["user_id"] != principal.sub:
            raise ActionForbidden("Only the sender can delete a message.")
        event = EVENTS(
            MessageDeleted(
                thread_id=thread_id,
                account_id=thread["account_id"],
                message_id=message_id,
                internal=message["internal"],
                deleted_by=Actor(user_id=principal.sub, kind=principal.kind),
                document_ids=message.get("document_ids", []),
            ),
            firm=principal.firm,
        )
        if not await self._messages.erase(message, event=event):
            raise MessageNotFound(f"Message {message_id} does not exist in this thread.")
        await self._refresh_previews(thread_id, message_id)

    async def _refresh_previews(self, thread_id: str, message_id: str) -> None:
        """M8, M11: thread-list snippets show neither a deleted message nor pre-edit text."""
        latest: dict[bool, Document | None] = {}
        for include_internal in (True, False):
            found, _ = await self._messages.page(
                thread_id, include_internal=include_internal, direction="before", seq=None, limit=1
            )
            latest[include_internal] = preview(found[0]) if found else None
        await self._threads.replace_preview(
            thread_id, message_id, staff=latest[True], client=latest[False]
        )

    async def set_pinned(
        self, principal: Principal, thread_id: str, message_id: str, *, pinned: bool
    ) -> MessageView:
        """M10: anyone who can see the message pins or unpins it."""
        thread = await self.visible_thread(principal, thread_id)
        message = await self._visible_message(principal, thread_id, message_id)
        if message.get("pinned", False) == pinned:
            return message_view(message, principal)
        model = MessagePinned if pinned else MessageUnpinned
        actor = Actor(user_id=principal.sub, kind=principal.kind)
        actor_field = "pinned_by" if pinned else "unpinned_by"
        event = EVENTS(
            model(
                thread_id=thread_id,
                account_id=thread["account_id"],
                message_id=message_id,
                internal=message["internal"],
                **{actor_field: actor},
            ),
            firm=principal.firm,
        )
        changes = {"pinned": pinned, "pinned_at": utc_now() if pinned else None}
        await self._messages.update(
            message_id,
            expected={"pinned": not pinned, "deleted": False},
            changes=changes,
            event=event,
        )
        return message_view(message | changes, principal)

    async def pins(self, principal: Principal, thread_id: str) -> list[MessageView]:
        await self.visible_thread(principal, thread_id)
        documents = await self._messages.pinned(
            thread_id, include_internal=can_see_internal(principal)
        )
        return [message_view(document, principal) for document in documents]

    async def mark_read(
        self, principal: Principal, thread_id: str, *, up_to_seq: int | None
    ) -> ReadPosition:
        """R1: move the caller's read cursor; a client's read stamps firm messages as read."""
        thread = await self.visible_thread(principal, thread_id)
        latest = int(thread.get("seq", 0))
        target = latest
        if up_to_seq is not None and principal.is_client:  # the client's own numbering (M3)
            target = await self._messages.seq_of_client_seq(thread_id, up_to_seq) or latest
        elif up_to_seq is not None:
            target = min(up_to_seq, latest)
        if target < 1:
            return {"thread_id": thread_id, "last_read_seq": 0}
        now = utc_now()
        event = EVENTS(
            MessagesRead(
                thread_id=thread_id,
                account_id=thread["account_id"],
                reader=Actor(user_id=principal.sub, kind=principal.kind),
                up_to_seq=target,
                read_at=now,
            ),
            firm=principal.firm,
        )
        await self._reads.advance(
            firm=principal.firm,
            thread_id=thread_id,
            user_id=principal.sub,
            up_to_seq=target,
            event=event,
        )
        already_read = int(thread.get("client_read_seq", 0))
        if principal.is_client and target > already_read:  # a re-read stamps nothing new
            await self._messages.mark_read_by_client(
                thread_id, after_seq=already_read, up_to_seq=target, at=now
            )
            await self._threads.clients_read_up_to(thread_id, target)
        last = (await self._reads.last_read([thread_id], principal.sub)).get(thread_id, target)
        if principal.is_client and last == latest:  # read to the end: the thread knows
            last = int(thread.get("client_seq", 0))
        elif principal.is_client:
            last = await self._messages.client_seq_at(thread_id, last)
        return {"thread_id": thread_id, "last_read_seq": last}


def _same_post(stored: Document, new: Document) -> bool:
    """Whether ``new`` asks for the message ``stored`` holds (as first posted, before any
    edit)."""
    history = stored.get("edit_history") or []
    first_html = history[0]["html"] if history else stored["html"]
    return bool(
        first_html == new["html"]
        and stored["internal"] == new["internal"]
        and stored["reply_to"] == new["reply_to"]
    )
