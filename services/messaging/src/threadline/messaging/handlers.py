"""Messaging's Kafka subscriptions: contract event in → one store or service call.

Documents' events are handled in ``attachments``, the tasks service's in ``tasklists``.
"""

from __future__ import annotations

from threadline.kit.consumer import EventRouter
from threadline.kit.directory import MongoDirectory, subscribe_directory

__all__ = ["subscribe"]


def subscribe(events: EventRouter, *, directory: MongoDirectory) -> None:
    subscribe_directory(events, directory)
