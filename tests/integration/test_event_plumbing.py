"""The event plumbing end to end on real Kafka and the MongoDB-protocol server.

Messaging writes firm chat settings through its outbox; reminders keeps a projection of
them (K7: client e-mails show message context only when the firm allows it). Each test
adds a recording handler beside the projection's (the router runs every handler of a type
once per event id), so a lost event shows as a gap and a doubly applied one as a repeat.
"""

import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from threadline.contracts import Envelope, decode
from threadline.contracts.events.messaging import FirmChatSettingsChanged
from threadline.contracts.topics import Topic
from threadline.devtools.seed import demo_directory, publish
from threadline.kit.consumer import dead_letter_topic

from .conftest import (
    ServiceFactory,
    TopicMark,
    eventually,
    find_record,
    mark_topic,
    run_topic,
    token_for,
)

pytestmark = pytest.mark.integration


async def change_settings(
    client: Any, firm: str, *, correlation_id: str | None = None, **fields: bool
) -> dict[str, Any]:
    headers = auth(token_for(firm, role="admin"))
    if correlation_id:
        headers["X-Correlation-ID"] = correlation_id
    response = await client.patch("/v1/firm/chat-settings", json=fields, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["X-Correlation-ID"] == (
        correlation_id or response.headers["X-Correlation-ID"]
    )
    return response.json()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Applied:
    """The settings events reminders applied for one firm, in order (revision, event id)."""

    def __init__(self, reminders_app: Any, firm: str) -> None:
        self.events: list[tuple[int, str]] = []

        async def record(event: Envelope[Any]) -> None:
            if event.firm == firm:
                self.events.append((event.data.revision, str(event.id)))

        reminders_app.state.runtime.events.on(FirmChatSettingsChanged, record)

    async def revisions(self) -> list[int]:
        return [revision for revision, _ in self.events]


async def pending_outbox(messaging_app: Any, firm: str) -> list[Any]:
    database = messaging_app.state.runtime.database
    document = await database["firm_settings"].find_one({"_id": firm})
    return document.get("_outbox", []) if document else []


async def test_outbox_event_reaches_another_service_exactly_once_in_effect(
    start_service: ServiceFactory, run_id: str
) -> None:
    messaging, messaging_http = await start_service("messaging")
    reminders, reminders_http = await start_service("reminders")
    firm = f"firm_{run_id}"
    applied = Applied(reminders, firm)
    published_from = await mark_topic(_bootstrap(messaging), Topic.MESSAGING)

    first = await change_settings(
        messaging_http,
        firm,
        correlation_id=f"corr-{run_id}",
        show_message_context_in_notifications=True,
    )
    assert first["revision"] == 1
    await change_settings(messaging_http, firm, clients_can_create_threads=False)

    await eventually(applied.revisions, until=lambda h: h == [1, 2])
    seen = await reminders_http.get(
        "/v1/firm/notification-settings", headers=auth(token_for(firm, role="member"))
    )
    assert seen.json() == {"show_message_context_in_notifications": True, "revision": 2}
    assert await eventually(lambda: pending_outbox(messaging, firm), until=lambda p: p == []) == []

    processed = reminders.state.runtime.database["processed_events"]
    event_ids = [event_id for _, event_id in applied.events]
    marked = await eventually(  # marked right after the handlers (the recorder is the last)
        lambda: processed.count_documents({"_id": {"$in": event_ids}}), until=lambda n: n == 2
    )
    assert marked == 2

    # A redelivery of an already applied event (same id) is recognised and has no effect.
    router = reminders.state.runtime.events
    duplicates_before = router.stats["duplicates"]
    raw = await _read_event(published_from, event_ids[0])
    assert decode(raw).correlation_id == f"corr-{run_id}", "the request's id travels with its event"
    producer = AIOKafkaProducer(bootstrap_servers=_bootstrap(messaging))
    await producer.start()
    try:
        await producer.send_and_wait(run_topic(Topic.MESSAGING), raw, key=firm.encode())
    finally:
        await producer.stop()

    async def duplicates() -> int:
        return router.stats["duplicates"]

    await eventually(duplicates, until=lambda count: count > duplicates_before)
    assert await applied.revisions() == [1, 2]


@pytest.mark.restarts_servers
async def test_writes_succeed_while_kafka_is_down_and_arrive_after_restart(
    start_service: ServiceFactory, run_id: str, kafka_control: Any
) -> None:
    messaging, messaging_http = await start_service("messaging")
    reminders, _ = await start_service("reminders")
    firm = f"firm_{run_id}"
    applied = Applied(reminders, firm)
    await change_settings(messaging_http, firm, show_message_context_in_notifications=True)
    await eventually(applied.revisions, until=lambda h: h == [1])

    await kafka_control.astop("kafka")
    try:
        for value in (False, True, False):
            await change_settings(messaging_http, firm, clients_can_create_threads=value)
        assert len(await pending_outbox(messaging, firm)) >= 1
    finally:
        await kafka_control.astart("kafka")

    history = await eventually(applied.revisions, until=lambda h: len(h) >= 4, within=120)
    assert history == [1, 2, 3, 4]
    await eventually(lambda: pending_outbox(messaging, firm), until=lambda p: p == [], within=60)
    final = await reminders.state.firm_settings.get(firm)
    assert final["clients_can_create_threads"] is False


async def test_malformed_event_is_dead_lettered_and_the_consumer_carries_on(
    start_service: ServiceFactory, run_id: str
) -> None:
    messaging, messaging_http = await start_service("messaging")
    reminders, _ = await start_service("reminders")
    firm = f"firm_{run_id}"
    applied = Applied(reminders, firm)
    poison = f'{{"type": "messaging.firm_chat_settings.changed", "poison": "{uuid.uuid4()}"}}'
    parked_from = await mark_topic(_bootstrap(messaging), dead_letter_topic("reminders"))

    producer = AIOKafkaProducer(bootstrap_servers=_bootstrap(messaging))
    await producer.start()
    try:
        await producer.send_and_wait(run_topic(Topic.MESSAGING), poison.encode(), key=firm.encode())
    finally:
        await producer.stop()
    await change_settings(messaging_http, firm, show_message_context_in_notifications=True)

    await eventually(applied.revisions, until=lambda h: h == [1])
    parked_record = await find_record(parked_from, lambda record: record.value == poison.encode())
    parked = {key: value.decode() for key, value in parked_record.headers}
    assert parked["dlq-source-topic"] == run_topic(Topic.MESSAGING)
    assert "schema_version" in parked["dlq-reason"]


async def test_seeded_directory_reaches_the_messaging_projection(
    start_service: ServiceFactory, run_id: str
) -> None:
    messaging, _ = await start_service("messaging")
    firm = f"firm_{run_id}"
    await publish(_bootstrap(messaging), demo_directory(firm))
    directory = messaging.state.runtime.database["directory_accounts"]
    accounts = await eventually(
        lambda: directory.find({"firm": firm}).to_list(), until=lambda docs: len(docs) == 4
    )
    lee = next(doc for doc in accounts if doc["account_id"] == "acc_lee_family")
    assert [c["contact_id"] for c in lee["contacts"]] == ["ct_ann_lee", "ct_ben_lee"]
    # Staff events are keyed by firm, accounts by account: other partitions, no order
    # between them.
    staff = messaging.state.runtime.database["directory_staff"]
    members = await eventually(
        lambda: staff.find({"firm": firm}).to_list(), until=lambda docs: len(docs) == 4
    )
    assert sorted(doc["role"] for doc in members) == ["admin", "member", "member", "owner"]


def _bootstrap(app: Any) -> str:
    return app.state.runtime.settings.kafka_bootstrap_servers


async def _read_event(mark: TopicMark, event_id: str) -> bytes:
    """The exact bytes of an event messaging published after ``mark``, re-read from its topic."""
    record = await find_record(
        mark, lambda record: dict(record.headers).get("event-id") == event_id.encode()
    )
    assert record.value is not None and str(decode(record.value).id) == event_id
    return record.value
