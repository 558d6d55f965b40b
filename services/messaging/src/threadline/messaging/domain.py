"""Messaging domain: threads, messages, read cursors, drafts, firm chat settings, and the
service's error tree. No I/O here.

::

    MessagingError (kit ThreadlineError)
    ├── ThreadNotFound / MessageNotFound   404 — also when the caller may not see it (T7, M3)
    ├── ActionForbidden                    403 — may see it, may not do this
    ├── SettingsConflict                   409 — a concurrent change won; retry
    └── InvalidMessage                     422 — the request breaks a messaging rule
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from threadline.kit.auth import Principal
from threadline.kit.errors import Conflict, Forbidden, InvalidRequest, NotFound, ThreadlineError
from threadline.kit.policy import ThreadFacts, can_access_account, can_see_internal, can_view_thread

__all__ = [
    "DRAFT_LIFETIME",
    "EDIT_WINDOW",
    "ActionForbidden",
    "FirmChatSettings",
    "InvalidMessage",
    "MessageNotFound",
    "MessagingError",
    "SettingsConflict",
    "SettingsForbidden",
    "Thread",
    "ThreadNotFound",
    "ThreadStatus",
    "check_can_create_thread",
    "check_can_edit",
    "check_can_manage_thread",
    "check_can_post",
    "check_visible",
]

EDIT_WINDOW = timedelta(hours=24)  # M8
DRAFT_LIFETIME = timedelta(days=90)  # D3: "kept 3 months"
ThreadStatus = Literal["active", "archived"]


class MessagingError(ThreadlineError):
    """Root of messaging's expected errors."""


class ThreadNotFound(MessagingError, NotFound):
    pass


class MessageNotFound(MessagingError, NotFound):
    pass


class ActionForbidden(MessagingError, Forbidden):
    pass


class SettingsForbidden(ActionForbidden):
    pass


class SettingsConflict(MessagingError, Conflict):
    pass


class InvalidMessage(MessagingError, InvalidRequest):
    pass


@dataclass(frozen=True)
class FirmChatSettings:
    """A firm's chat settings (T3, K7); revision 0 means the firm never changed them."""

    firm: str
    clients_can_create_threads: bool = True
    show_message_context_in_notifications: bool = False
    revision: int = 0

    def changed(
        self,
        *,
        clients_can_create_threads: bool | None,
        show_message_context_in_notifications: bool | None,
    ) -> FirmChatSettings:
        """The next revision with the given fields changed (``None`` keeps a field)."""
        return FirmChatSettings(
            firm=self.firm,
            clients_can_create_threads=(
                self.clients_can_create_threads
                if clients_can_create_threads is None
                else clients_can_create_threads
            ),
            show_message_context_in_notifications=(
                self.show_message_context_in_notifications
                if show_message_context_in_notifications is None
                else show_message_context_in_notifications
            ),
            revision=self.revision + 1,
        )


@dataclass(frozen=True)
class Thread:
    """What the rules need to know about a thread."""

    thread_id: str
    firm: str
    account_id: str
    subject: str
    status: ThreadStatus = "active"
    mentioned_staff: Collection[str] = field(default_factory=tuple)

    @property
    def facts(self) -> ThreadFacts:
        return ThreadFacts(
            firm=self.firm, account_id=self.account_id, mentioned_staff=self.mentioned_staff
        )


def check_visible(principal: Principal, thread: Thread) -> None:
    """T7: raise ThreadNotFound (404) when the caller may not see the thread at all."""
    if not can_view_thread(principal, thread.facts):
        raise ThreadNotFound(f"Thread {thread.thread_id} does not exist.")


def check_can_post(principal: Principal, thread: Thread, *, internal: bool) -> None:
    """M3: only staff post internal messages; archived threads take no new messages (T5)."""
    check_visible(principal, thread)
    if internal and not can_see_internal(principal):
        raise ActionForbidden("Only firm staff can post internal messages.")
    if thread.status == "archived":
        raise InvalidMessage("The thread is archived; reopen it to post.")


def check_can_create_thread(
    principal: Principal, *, firm: str, account_id: str, clients_may_create: bool
) -> None:
    """T1 (staff with access to the account) and T3 (clients, unless the firm forbids it)."""
    if not can_access_account(principal, firm=firm, account_id=account_id):
        raise ThreadNotFound(f"Account {account_id} does not exist.")
    if principal.is_client and not clients_may_create:
        raise ActionForbidden(
            "Your firm does not let clients start threads; reply to a thread created for you."
        )


def check_can_edit(
    principal: Principal, *, author_id: str, posted_at: datetime, now: datetime
) -> None:
    """M8: staff edit their own messages within 24 hours; clients never edit."""
    if principal.is_client:
        raise ActionForbidden("Clients cannot edit messages.")
    if principal.sub != author_id:
        raise ActionForbidden("Only the author can edit a message.")
    if now - posted_at > EDIT_WINDOW:
        raise ActionForbidden("Messages can only be edited within 24 hours of sending.")


def check_can_manage_thread(principal: Principal, thread: Thread) -> None:
    """Archive, reopen: staff who can see the thread (T5)."""
    check_visible(principal, thread)
    if not principal.is_staff:
        raise ActionForbidden("Only firm staff can archive or reopen threads.")
