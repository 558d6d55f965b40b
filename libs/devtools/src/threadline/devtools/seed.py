"""Publish the demo directory to Kafka: ``threadline-seed``.

One firm (with its display name) with an owner, an admin and two team members, and several
client accounts with contacts in every state that matters (portal activated or not, Notify
on or off). Events have deterministic content but fresh ids, and the projections are
idempotent upserts, so seeding twice is harmless.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Sequence
from typing import Any

from threadline.contracts import Envelope, new_event
from threadline.contracts.events.directory import (
    AccountUpserted,
    Contact,
    FirmUpserted,
    StaffMemberUpserted,
)
from threadline.kit.kafka import KafkaRecordPublisher, make_broker

__all__ = ["DEMO_FIRM_NAME", "demo_directory", "main", "publish"]

PRODUCER = "directory-seed"


DEMO_FIRM_NAME = "Chen & Berg CPAs"


def demo_directory(firm: str = "firm_demo") -> list[Envelope[Any]]:
    staff = [
        StaffMemberUpserted(
            user_id="st_olivia", name="Olivia Owner", email="olivia@firm.example", role="owner"
        ),
        StaffMemberUpserted(
            user_id="st_adam", name="Adam Admin", email="adam@firm.example", role="admin"
        ),
        StaffMemberUpserted(
            user_id="st_mia",
            name="Mia Chen",
            email="mia@firm.example",
            role="member",
            permissions=["manage_documents"],
        ),
        StaffMemberUpserted(
            user_id="st_noah",
            name="Noah Berg",
            email="noah@firm.example",
            role="member",
            permissions=["view_all_accounts"],
        ),
    ]
    accounts = [
        AccountUpserted(
            account_id="acc_lee_family",
            name="Lee Family",
            assigned_staff=["st_mia"],
            contacts=[
                Contact(
                    contact_id="ct_ann_lee",
                    name="Ann Lee",
                    email="ann@lee.example",
                    portal_activated=True,
                    notify=True,
                ),
                Contact(
                    contact_id="ct_ben_lee",
                    name="Ben Lee",
                    email="ben@lee.example",
                    portal_activated=True,
                    notify=False,
                ),
            ],
        ),
        AccountUpserted(
            account_id="acc_north_bakery",
            name="North Bakery Ltd",
            assigned_staff=["st_mia", "st_noah"],
            contacts=[
                Contact(
                    contact_id="ct_cara_north",
                    name="Cara North",
                    email="cara@northbakery.example",
                    portal_activated=True,
                    notify=True,
                ),
            ],
        ),
        AccountUpserted(
            account_id="acc_patel_llc",
            name="Patel Consulting LLC",
            assigned_staff=["st_noah"],
            contacts=[
                Contact(
                    contact_id="ct_raj_patel",
                    name="Raj Patel",
                    email="raj@patel.example",
                    portal_activated=True,
                    notify=True,
                ),
                Contact(
                    contact_id="ct_priya_patel",
                    name="Priya Patel",
                    email="priya@patel.example",
                    portal_activated=False,
                    notify=True,
                ),
            ],
        ),
        AccountUpserted(
            account_id="acc_dormant_co",
            name="Dormant Co",
            assigned_staff=[],
            contacts=[
                Contact(
                    contact_id="ct_dan_dormant",
                    name="Dan Dormant",
                    email="dan@dormant.example",
                    portal_activated=False,
                    notify=False,
                ),
            ],
        ),
    ]
    # The firm first: it shares the firm-keyed partition with the staff events, so once a
    # projection holds the staff it holds the firm's name too.
    events: list[Envelope[Any]] = [
        new_event(FirmUpserted(name=DEMO_FIRM_NAME), firm=firm, key=firm, producer=PRODUCER)
    ]
    events += [new_event(member, firm=firm, key=firm, producer=PRODUCER) for member in staff]
    events += [
        new_event(account, firm=firm, key=account.account_id, producer=PRODUCER)
        for account in accounts
    ]
    return events


async def publish(bootstrap_servers: str, events: Sequence[Envelope[Any]]) -> None:
    """Publish ``events`` (to topics under ``THREADLINE_KAFKA_TOPIC_PREFIX``, as the
    services read them)."""
    broker = make_broker(bootstrap_servers, client_id="threadline-seed")
    await broker.connect()
    try:
        prefix = os.environ.get("THREADLINE_KAFKA_TOPIC_PREFIX", "")
        publisher = KafkaRecordPublisher(broker, topic_prefix=prefix)
        for event in events:
            await publisher.publish_envelope(event)
    finally:
        await broker.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Publish the demo directory to Kafka.")
    parser.add_argument("--firm", default="firm_demo")
    parser.add_argument(
        "--bootstrap-servers",
        default=os.environ.get("THREADLINE_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
    )
    args = parser.parse_args(argv)
    events = demo_directory(args.firm)
    asyncio.run(publish(args.bootstrap_servers, events))
    print(f"published {len(events)} directory events for {args.firm}")
