"""Messaging domain: firm chat settings and the service's error tree. No I/O here.

::

    MessagingError (kit ThreadlineError)
    ├── SettingsForbidden   403 — only owners and admins change firm chat settings
    └── SettingsConflict    409 — a concurrent change won; retry with the new state
"""

from __future__ import annotations

from dataclasses import dataclass

from threadline.kit.errors import Conflict, Forbidden, ThreadlineError

__all__ = ["FirmChatSettings", "MessagingError", "SettingsConflict", "SettingsForbidden"]


class MessagingError(ThreadlineError):
    """Root of messaging's expected errors."""


class SettingsForbidden(MessagingError, Forbidden):
    pass


class SettingsConflict(MessagingError, Conflict):
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
