"""Messaging's MongoDB stores: the only modules that know its documents.

Every write that causes events carries them in its ``_outbox`` (see ``threadline.kit.outbox``).
"""

from threadline.messaging.store.drafts import MongoDraftStore
from threadline.messaging.store.indexes import MESSAGING_INDEXES
from threadline.messaging.store.messages import MongoMessageStore
from threadline.messaging.store.reads import MongoReadStore
from threadline.messaging.store.settings import MongoFirmSettingsStore
from threadline.messaging.store.threads import MongoThreadStore, ThreadPage

__all__ = [
    "MESSAGING_INDEXES",
    "MongoDraftStore",
    "MongoFirmSettingsStore",
    "MongoMessageStore",
    "MongoReadStore",
    "MongoThreadStore",
    "ThreadPage",
]
