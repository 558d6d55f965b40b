"""Kafka topic names: one topic per producing service, plus the directory.

Each topic is keyed by the aggregate whose order matters (see ``KEYED_BY``), so every
event about one thread, job or account lands in one partition, in order.
"""

from enum import StrEnum

__all__ = ["KEYED_BY", "Topic", "topic_for"]


class Topic(StrEnum):
    DIRECTORY = "threadline.directory.v1"
    MESSAGING = "threadline.messaging.v1"
    TASKS = "threadline.tasks.v1"
    DOCUMENTS = "threadline.documents.v1"
    PIPELINE = "threadline.pipeline.v1"
    REMINDERS = "threadline.reminders.v1"


KEYED_BY: dict[Topic, str] = {
    Topic.DIRECTORY: "account id (firm id for firm-wide staff events)",
    Topic.MESSAGING: "thread id (firm id for firm settings)",
    Topic.TASKS: "thread id (client requests: request id)",
    Topic.DOCUMENTS: "account id",
    Topic.PIPELINE: "job id",
    Topic.REMINDERS: "thread id",
}

_TOPIC_BY_PREFIX = {topic.name.lower(): topic for topic in Topic}


def topic_for(event_type: str) -> Topic:
    """The topic an event type is published to: its producer prefix (``tasks.changed`` → tasks).

    Raises KeyError for a prefix that names no producer.
    """
    return _TOPIC_BY_PREFIX[event_type.split(".", 1)[0]]
