"""Reminders' MongoDB stores: threads as reminders sees them, armed schedules, the outbound
mail queue, the staff inbox and the firm settings projection."""

from threadline.reminders.store.inbox import MongoInbox
from threadline.reminders.store.mails import MongoMailQueue
from threadline.reminders.store.schedules import MongoArmedSchedules
from threadline.reminders.store.settings import MongoFirmSettingsProjection
from threadline.reminders.store.threads import MongoThreadStore

__all__ = [
    "STORE_INDEXES",
    "MongoArmedSchedules",
    "MongoFirmSettingsProjection",
    "MongoInbox",
    "MongoMailQueue",
    "MongoThreadStore",
]

from threadline.kit.mongo import IndexSpec

STORE_INDEXES = (
    IndexSpec("armed_schedules", [("due_at", 1)], name="due_at"),
    IndexSpec("mails", [("pending", 1), ("due_at", 1)], name="pending_due_at"),
    IndexSpec("mails", [("coalesce_key", 1)], name="coalesce_key"),
    IndexSpec("inbox", [("firm", 1), ("recipient", 1), ("_id", -1)], name="recipient_newest"),
    IndexSpec("inbox", [("firm", 1), ("recipient", 1), ("read", 1)], name="recipient_unread"),
)
