"""Indexes messaging creates at start-up (no TTL or partial indexes: FerretDB lacks them)."""

from threadline.kit.directory import DIRECTORY_INDEXES
from threadline.kit.mongo import IndexSpec
from threadline.messaging.store.messages import CLIENT_SEQ_INDEX
from threadline.messaging.store.threads import FIRST_MESSAGE_PENDING, FIRST_MESSAGE_PENDING_INDEX

__all__ = ["MESSAGING_INDEXES"]

MESSAGING_INDEXES = (
    *DIRECTORY_INDEXES,
    IndexSpec("threads", [("firm", 1), ("account_id", 1), ("last_activity_at", -1), ("_id", -1)]),
    IndexSpec("threads", [("firm", 1), ("account_id", 1), ("client_activity_at", -1), ("_id", -1)]),
    IndexSpec("threads", [("firm", 1), ("last_activity_at", -1), ("_id", -1)]),
    IndexSpec("threads", [("firm", 1), ("mentioned_staff", 1)]),
    IndexSpec("threads", [(FIRST_MESSAGE_PENDING, 1)], name=FIRST_MESSAGE_PENDING_INDEX),
    IndexSpec("messages", [("thread_id", 1), ("seq", 1)], unique=True),
    # Internal messages carry -seq there (no partial indexes), so this is unique too.
    IndexSpec(
        "messages", [("thread_id", 1), ("client_seq", 1)], unique=True, name=CLIENT_SEQ_INDEX
    ),
    IndexSpec("messages", [("thread_id", 1), ("pinned", 1)]),
    IndexSpec("drafts", [("expires_at", 1)], expire_after_seconds=0),
    IndexSpec("read_cursors", [("thread_id", 1)]),
    IndexSpec("task_digests", [("due_at", 1)]),
    IndexSpec("templates", [("firm", 1), ("_id", 1)]),
    IndexSpec("bulk_jobs", [("status", 1), ("created_at", 1)]),
    IndexSpec("bulk_batches", [("job_id", 1), ("page", 1)]),
    IndexSpec("bulk_accounts", [("job_id", 1)]),
    IndexSpec("firm_settings", [("_outbox.created_ms", 1)]),
    IndexSpec("threads", [("_outbox.created_ms", 1)]),
    IndexSpec("messages", [("_outbox.created_ms", 1)]),
    IndexSpec("read_cursors", [("_outbox.created_ms", 1)]),
)
