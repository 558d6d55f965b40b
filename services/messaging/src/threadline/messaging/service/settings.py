"""Messaging use cases. No framework imports: stores are passed in."""

from __future__ import annotations

from threadline.contracts.events.messaging import FirmChatSettingsChanged
from threadline.kit.auth import Principal
from threadline.messaging.domain import FirmChatSettings, SettingsConflict, SettingsForbidden
from threadline.messaging.service.compose import EVENTS
from threadline.messaging.store import MongoFirmSettingsStore

__all__ = ["FirmSettingsService"]


class FirmSettingsService:
    def __init__(self, *, store: MongoFirmSettingsStore) -> None:
        self._store = store

    async def get(self, principal: Principal) -> FirmChatSettings:
        """Every user of the firm may read them (clients need T3 to know if they may start)."""
        return await self._store.get(principal.firm)

    async def change(
        self,
        principal: Principal,
        *,
        clients_can_create_threads: bool | None,
        show_message_context_in_notifications: bool | None,
        expected_revision: int | None = None,
    ) -> FirmChatSettings:
        """Owners and admins change firm chat settings; emits ``firm_chat_settings.changed``.

        Raises SettingsForbidden for anyone else, SettingsConflict when ``expected_revision``
        is stale or a concurrent change won.
        """
        if not principal.is_owner_or_admin:
            raise SettingsForbidden("Only the firm's owner and admins can change chat settings.")
        current = await self._store.get(principal.firm)
        if expected_revision is not None and expected_revision != current.revision:
            raise SettingsConflict(
                f"The settings are at revision {current.revision}, not {expected_revision}.",
                current_revision=current.revision,
            )
        updated = current.changed(
            clients_can_create_threads=clients_can_create_threads,
            show_message_context_in_notifications=show_message_context_in_notifications,
        )
        event = EVENTS(
            FirmChatSettingsChanged(
                clients_can_create_threads=updated.clients_can_create_threads,
                show_message_context_in_notifications=updated.show_message_context_in_notifications,
                revision=updated.revision,
                changed_by=principal.sub,
            ),
            firm=principal.firm,
            key=principal.firm,
        )
        if not await self._store.save(updated, expected_revision=current.revision, event=event):
            raise SettingsConflict("Another change was saved at the same time; retry.")
        return updated
