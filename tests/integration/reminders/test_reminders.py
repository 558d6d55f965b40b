"""Reminders on real servers with a one-second "day" (Q1-Q4): schedules, every stop rule,
archive and reopen, settings changes, two replicas and a crashed claimer's takeover."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from threadline.contracts.envelope import utc_now
from threadline.reminders.schedule import ReminderService

from ..conftest import ServiceFactory, eventually, keyed_events, seed_directory
from .conftest import ANN, ANN_ACTOR, BEN, FAST, Firm, SmtpSink, is_reminder, start_firm

pytestmark = pytest.mark.integration


def reminders(days: int = 1, count: int = 3) -> dict[str, Any]:
    return {"enabled": True, "days_between": days, "max_reminders": count}


def reminder_mails(smtp: SmtpSink, thread_id: str, to: str = ANN) -> list[Any]:
    return [m for m in smtp.mails(to, thread=thread_id) if is_reminder(m)]


async def reminders_topic_events(firm: Firm, thread_id: str, count: int) -> list[Any]:
    """The events about ``thread_id`` on the reminders topic since the firm was set up, once
    there are at least ``count``."""
    return await keyed_events(
        firm.reminders_from, thread_id, until=lambda found: len(found) >= count, linger=0
    )


async def test_q2_q3_three_reminders_a_day_apart_then_limit_reached(
    firm: Firm, smtp: SmtpSink
) -> None:
    thread = await firm.new_thread(reminders=reminders(days=1, count=3))
    state = await firm.wait_reminder_state(
        thread["id"], until=lambda s: s["stopped_reason"] == "limit_reached", within=120
    )
    assert state["reminders_sent"] == 3 and state["next_reminder_at"] is None
    assert state["about_message_id"] == thread["last_message"]["message_id"]
    await eventually(
        lambda: _value(len(reminder_mails(smtp, thread["id"]))), until=lambda n: n == 3, within=120
    )
    await asyncio.sleep(2.5)  # a fourth would be due by now
    assert len(reminder_mails(smtp, thread["id"])) == 3
    assert reminder_mails(smtp, thread["id"], BEN) == []
    events = await reminders_topic_events(firm, thread["id"], 4)
    assert [e.type for e in events] == ["reminders.reminder.sent"] * 3 + [
        "reminders.reminders.stopped"
    ]
    assert [e.data.reminder_number for e in events[:3]] == [1, 2, 3]
    assert events[0].data.sent_to == ["ct_ann_lee"] and events[3].data.reason == "limit_reached"
    gaps = [events[i + 1].data.sent_at - events[i].data.sent_at for i in range(2)]
    assert all(gap >= timedelta(seconds=0.9) for gap in gaps)


async def _value(value: Any) -> Any:
    return value


async def test_q3_without_tasks_a_client_reply_stops_reminders(firm: Firm, smtp: SmtpSink) -> None:
    thread = await firm.new_thread(reminders=reminders(days=4, count=10))
    await firm.wait_reminder_state(thread["id"], until=lambda s: s["reminders_sent"] >= 1)
    await firm.post("client", thread["id"], html="<p>Done, uploaded.</p>")
    state = await firm.wait_reminder_state(
        thread["id"], until=lambda s: s["stopped_reason"] is not None
    )
    assert state["stopped_reason"] == "client_replied"
    sent = state["reminders_sent"]
    await asyncio.sleep(3.0)
    assert (await firm.reminder_state(thread["id"]))["reminders_sent"] == sent


async def test_q3_with_open_tasks_reply_and_read_do_not_stop_until_tasks_done_and_read(
    firm: Firm,
) -> None:
    thread = await firm.new_thread(reminders=reminders(days=30, count=2))
    await firm.armed_for(thread["id"], thread["last_message"]["message_id"])
    await firm.publish(firm.tasks_event(thread["id"], done=[False, False]))
    await eventually(
        lambda: firm.reminders_app.state.threads.get(firm.firm, thread["id"]),
        until=lambda t: t is not None and t["tasks"]["total"] == 2,
        within=120,
    )
    await firm.post("client", thread["id"], html="<p>Working on it</p>")
    read = await firm.call("client", "POST", f"/v1/threads/{thread['id']}/read", json={})
    assert read.status_code == 200, read.text
    await asyncio.sleep(1.5)
    assert (await firm.reminder_state(thread["id"]))["stopped_reason"] is None
    await firm.publish(
        firm.tasks_event(thread["id"], done=[True, True], change="completed", by=ANN_ACTOR),
        firm.all_completed_event(thread["id"], 2, ANN_ACTOR),
    )
    state = await firm.wait_reminder_state(
        thread["id"], until=lambda s: s["stopped_reason"] is not None
    )
    assert state["stopped_reason"] == "all_tasks_completed_and_read"


async def test_q3_with_tasks_done_a_new_message_stops_once_read(firm: Firm) -> None:
    thread = await firm.new_thread(reminders=reminders(days=30, count=2))
    await firm.publish(firm.tasks_event(thread["id"], done=[True]))
    await eventually(
        lambda: firm.reminders_app.state.threads.get(firm.firm, thread["id"]),
        until=lambda t: t is not None and t["tasks"]["done"] == 1,
        within=120,
    )
    message = await firm.post("assigned member", thread["id"], html="<p>Thanks! One more.</p>")
    await firm.wait_reminder_state(
        thread["id"], until=lambda s: s["about_message_id"] == message["id"]
    )
    assert (await firm.reminder_state(thread["id"]))["stopped_reason"] is None
    await firm.call("client", "POST", f"/v1/threads/{thread['id']}/read", json={})
    state = await firm.wait_reminder_state(
        thread["id"], until=lambda s: s["stopped_reason"] is not None
    )
    assert state["stopped_reason"] == "all_read"


async def test_q3_archive_stops_and_q4_reopen_rearms_as_new(firm: Firm, smtp: SmtpSink) -> None:
    thread = await firm.new_thread(reminders=reminders(days=4, count=1))
    await firm.armed_for(thread["id"], thread["last_message"]["message_id"])
    archived = await firm.call("assigned member", "POST", f"/v1/threads/{thread['id']}/archive")
    assert archived.status_code == 200, archived.text
    state = await firm.wait_reminder_state(
        thread["id"], until=lambda s: s["stopped_reason"] is not None
    )
    assert state["stopped_reason"] == "thread_archived" and state["reminders_sent"] == 0
    await asyncio.sleep(2.5)
    assert reminder_mails(smtp, thread["id"]) == []
    reopened = await firm.call("assigned member", "POST", f"/v1/threads/{thread['id']}/reopen")
    assert reopened.status_code == 200, reopened.text
    state = await firm.wait_reminder_state(
        thread["id"], until=lambda s: s["stopped_reason"] == "limit_reached", within=120
    )
    assert state["reminders_sent"] == 1
    await eventually(
        lambda: _value(len(reminder_mails(smtp, thread["id"]))), until=lambda n: n == 1
    )


async def test_q1_settings_turned_off_stop_and_turned_on_rearm(firm: Firm) -> None:
    thread = await firm.new_thread(reminders=reminders(days=30, count=2))
    state = await firm.armed_for(thread["id"], thread["last_message"]["message_id"])
    assert (state["enabled"], state["days_between"], state["max_reminders"]) == (True, 30, 2)
    off = await firm.on_reminders(
        "assigned member",
        "PUT",
        f"/v1/threads/{thread['id']}/reminders",
        json={"enabled": False, "days_between": 30, "max_reminders": 2},
    )
    assert off.status_code == 200 and off.json()["stopped_reason"] == "turned_off"
    on = await firm.on_reminders(
        "assigned member",
        "PUT",
        f"/v1/threads/{thread['id']}/reminders",
        json={"enabled": True, "days_between": 5, "max_reminders": 2},
    )
    body = on.json()
    assert on.status_code == 200 and body["stopped_reason"] is None
    assert body["next_reminder_at"] is not None and body["days_between"] == 5


async def test_q1_thread_created_with_reminders_off_stays_unarmed(firm: Firm) -> None:
    thread = await firm.new_thread()
    state = await firm.reminder_state(thread["id"])
    assert state["enabled"] is False and state["next_reminder_at"] is None


async def test_q2_a_newer_firm_message_rearms_for_itself(firm: Firm) -> None:
    thread = await firm.new_thread(reminders=reminders(days=1, count=1))
    await firm.wait_reminder_state(
        thread["id"], until=lambda s: s["stopped_reason"] == "limit_reached", within=120
    )
    message = await firm.post("assigned member", thread["id"], html="<p>Follow-up</p>")
    state = await firm.wait_reminder_state(
        thread["id"], until=lambda s: s["about_message_id"] == message["id"]
    )
    assert state["reminders_sent"] in {0, 1}
    state = await firm.wait_reminder_state(
        thread["id"], until=lambda s: s["stopped_reason"] == "limit_reached", within=120
    )
    assert state["about_message_id"] == message["id"] and state["reminders_sent"] == 1


async def test_two_replicas_send_each_reminder_once(
    start_service: ServiceFactory, run_id: str, smtp: SmtpSink
) -> None:
    firm = await start_firm(start_service, run_id, smtp)
    second_app, _ = await start_service("reminders", smtp_port=smtp.port, **FAST)
    await seed_directory([second_app], firm.firm)
    thread = await firm.new_thread(reminders=reminders(days=1, count=3))
    await firm.wait_reminder_state(
        thread["id"], until=lambda s: s["stopped_reason"] == "limit_reached", within=120
    )
    await eventually(
        lambda: _value(len(reminder_mails(smtp, thread["id"]))), until=lambda n: n >= 3
    )
    await asyncio.sleep(2.0)
    assert len(reminder_mails(smtp, thread["id"])) == 3


async def test_a_crashed_claimers_reminder_is_taken_over_after_its_lease(
    start_service: ServiceFactory, run_id: str, smtp: SmtpSink
) -> None:
    """Two replicas driven by hand with their own clocks (the service's own loop is idle):
    A claims the due reminder and dies; B skips it while A's lease holds, then sends it."""
    firm = await start_firm(start_service, run_id, smtp, scan_interval_seconds=3600)
    thread = await firm.new_thread(reminders=reminders(days=1, count=1))
    await firm.armed_for(thread["id"], thread["last_message"]["message_id"])
    live: ReminderService = firm.reminders_app.state.reminders
    clock = [utc_now() + timedelta(seconds=30)]  # well past the one-second "day"

    def replica(token: str) -> ReminderService:
        return ReminderService(
            threads=live._threads,
            armed=live._armed,
            mails=live._mails,
            directory=live._directory,
            staff_emails=live._staff_emails,
            day_seconds=1.0,
            notification_delay=timedelta(0),
            lease=timedelta(seconds=60),
            batch_size=10,
            claim_token=token,
            clock=lambda: clock[0],
        )

    a, b = replica("replica-a"), replica("replica-b")
    [entry] = [
        e for e in await live._armed.due(clock[0], limit=1000) if e["thread_id"] == thread["id"]
    ]
    assert await live._armed.claim(entry, now=clock[0], lease=timedelta(seconds=60), token="a")
    assert (
        await b.run_due() == 0 or (await firm.reminder_state(thread["id"]))["reminders_sent"] == 0
    )
    assert (await firm.reminder_state(thread["id"]))["reminders_sent"] == 0
    clock[0] += timedelta(seconds=61)  # A's lease has passed
    await b.run_due()
    state = await firm.reminder_state(thread["id"])
    assert state["reminders_sent"] == 1 and state["stopped_reason"] == "limit_reached"
    await a.run_due()  # A "comes back": nothing left to send
    queued = [
        m for m in await live._mails.sent_to(firm.firm, thread["id"]) if m["kind"] == "reminder"
    ]
    assert [m["to"]["id"] for m in queued] == ["ct_ann_lee"]
