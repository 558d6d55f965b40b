"""Reminder schedule and stop rules (Q1-Q4), recipients (N1, N2, K5) and e-mail rendering
(K7), as pure functions walked with a fake clock."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest

from threadline.contracts.events.reminders import StopReason
from threadline.reminders.domain import (
    InboxItemType,
    ReminderPolicy,
    Schedule,
    ThreadState,
    client_mail_recipients,
    message_inbox_recipients,
    retry_delay,
    stop_reason,
)
from threadline.reminders.mail import MailTemplates, render

DAY = 86_400.0


@dataclass
class FakeClock:
    now: datetime = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


ARMED = ThreadState(
    policy=ReminderPolicy(enabled=True, days_between=3, max_reminders=3), last_firm_seq=5
)


def test_q1_defaults_are_three_days_and_one_reminder() -> None:
    policy = ReminderPolicy()
    assert (policy.days_between, policy.max_reminders) == (3, 1)
    assert policy.interval(DAY) == timedelta(days=3)


def test_q2_first_reminder_is_days_after_the_notification_then_same_interval() -> None:
    clock = FakeClock()
    policy = ReminderPolicy(enabled=True, days_between=3, max_reminders=3)
    notified = clock.now
    first = Schedule.starting("msg_1", number=1, from_at=notified, policy=policy, day_seconds=DAY)
    assert first.due_at == notified + timedelta(days=3)
    sent_at = clock.advance(days=3, minutes=1)
    second = Schedule.starting("msg_1", number=2, from_at=sent_at, policy=policy, day_seconds=DAY)
    assert second.due_at - sent_at == timedelta(days=3)


def test_q1_a_shortened_day_shortens_the_schedule() -> None:
    policy = ReminderPolicy(enabled=True, days_between=2)
    start = FakeClock().now
    schedule = Schedule.starting("m", number=1, from_at=start, policy=policy, day_seconds=0.5)
    assert schedule.due_at == start + timedelta(seconds=1)


def test_schedule_round_trips_through_its_document() -> None:
    start = FakeClock().now
    schedule = Schedule.starting(
        "m", number=2, from_at=start, policy=ReminderPolicy(), day_seconds=DAY
    )
    assert Schedule.from_document(schedule.to_document()) == schedule
    assert Schedule.from_document(None) is None


def test_q3_an_armed_thread_with_nothing_happening_keeps_going() -> None:
    assert stop_reason(ARMED) is None


def test_q3_without_tasks_a_client_reply_after_the_last_message_stops() -> None:
    assert stop_reason(replace(ARMED, last_client_seq=4)) is None  # replied before it
    assert stop_reason(replace(ARMED, last_client_seq=6)) == StopReason.CLIENT_REPLIED


def test_q3_without_tasks_reading_alone_does_not_stop() -> None:
    assert stop_reason(replace(ARMED, client_read_seq=5)) is None


def test_q3_with_incomplete_tasks_a_reply_or_a_read_does_not_stop() -> None:
    state = replace(ARMED, tasks_total=2, tasks_done=1)
    assert stop_reason(replace(state, last_client_seq=9, client_read_seq=9)) is None


def test_q3_with_incomplete_tasks_completion_alone_does_not_stop_until_all_read() -> None:
    state = replace(ARMED, tasks_total=2, tasks_done=2, client_read_seq=4)
    assert stop_reason(state) is None
    assert stop_reason(replace(state, client_read_seq=5)) == (
        StopReason.ALL_TASKS_COMPLETED_AND_READ
    )


def test_q3_with_tasks_complete_when_armed_reading_everything_stops_as_all_read() -> None:
    state = replace(
        ARMED, tasks_total=2, tasks_done=2, tasks_complete_when_armed=True, client_read_seq=5
    )
    assert stop_reason(state) == StopReason.ALL_READ


def test_q3_always_archived_turned_off_and_limit() -> None:
    assert stop_reason(replace(ARMED, archived=True)) == StopReason.THREAD_ARCHIVED
    off = replace(ARMED, policy=replace(ARMED.policy, enabled=False))
    assert stop_reason(off) == StopReason.TURNED_OFF
    assert stop_reason(replace(ARMED, reminders_sent=2)) is None
    assert stop_reason(replace(ARMED, reminders_sent=3)) == StopReason.LIMIT_REACHED


def test_q3_archived_wins_over_every_other_rule() -> None:
    state = replace(ARMED, archived=True, last_client_seq=9, reminders_sent=3)
    assert stop_reason(state) == StopReason.THREAD_ARCHIVED


def test_q2_q4_a_new_message_or_reopen_resets_the_count() -> None:
    exhausted = replace(ARMED, reminders_sent=3)
    assert stop_reason(exhausted) == StopReason.LIMIT_REACHED
    rearmed = replace(exhausted, reminders_sent=0, last_firm_seq=7)
    assert stop_reason(rearmed) is None


CONTACTS = [
    {
        "contact_id": "ct_ann",
        "name": "Ann",
        "email": "ann@x.example",
        "portal_activated": True,
        "notify": True,
    },
    {
        "contact_id": "ct_ben",
        "name": "Ben",
        "email": "ben@x.example",
        "portal_activated": True,
        "notify": False,
    },
    {
        "contact_id": "ct_cy",
        "name": "Cy",
        "email": "cy@x.example",
        "portal_activated": False,
        "notify": True,
    },
    {
        "contact_id": "ct_mole",
        "name": "Mole",
        "email": "Mia@Firm.example",
        "portal_activated": True,
        "notify": True,
    },
]


def test_n1_only_addressed_contacts_with_notify_on_and_portal_activated() -> None:
    chosen = client_mail_recipients(
        to_contact_ids={"ct_ann", "ct_ben", "ct_cy"}, contacts=CONTACTS, staff_emails=set()
    )
    assert [c["id"] for c in chosen] == ["ct_ann"]


def test_n1_unaddressed_contacts_get_nothing() -> None:
    assert (
        client_mail_recipients(to_contact_ids={"ct_ben"}, contacts=CONTACTS, staff_emails=()) == []
    )


def test_n1_never_a_staff_address_even_on_a_contact() -> None:
    chosen = client_mail_recipients(
        to_contact_ids={"ct_ann", "ct_mole"}, contacts=CONTACTS, staff_emails={"mia@firm.example"}
    )
    assert [c["id"] for c in chosen] == ["ct_ann"]


def _recipients(**changes: Any) -> dict[str, InboxItemType]:
    """``message_inbox_recipients`` for a client's reply in a thread staff member Mia
    created, with ``changes``."""
    message: dict[str, Any] = {
        "author_id": "ct_ann",
        "author_kind": "client",
        "is_first_message": False,
        "carries_documents": False,
        "creator_id": "st_mia",
        "creator_kind": "staff",
        "repliers": (),
        "mentions": (),
        "assigned_staff": (),
    }
    return message_inbox_recipients(**(message | changes))


def test_n2_client_reply_goes_to_creator_and_staff_who_replied_not_the_rest() -> None:
    recipients = _recipients(repliers={"st_noah"}, assigned_staff={"st_olivia"})
    assert recipients == {
        "st_mia": InboxItemType.CLIENT_REPLY,
        "st_noah": InboxItemType.CLIENT_REPLY,
    }


def test_n2_a_new_client_thread_reaches_the_assigned_staff() -> None:
    recipients = _recipients(
        is_first_message=True, creator_id="ct_ann", creator_kind="client", assigned_staff={"st_mia"}
    )
    assert recipients == {"st_mia": InboxItemType.CLIENT_NEW_THREAD}


def test_n2_staff_reply_goes_to_other_staff_and_never_to_oneself() -> None:
    recipients = _recipients(
        author_id="st_noah",
        author_kind="staff",
        repliers={"st_noah"},
        mentions=("st_noah", "st_leo"),
    )
    assert recipients == {"st_mia": InboxItemType.STAFF_REPLY, "st_leo": InboxItemType.MENTION}


def test_m2_mention_wins_over_reply_for_the_same_member() -> None:
    recipients = _recipients(
        author_id="st_mia", author_kind="staff", repliers={"st_noah"}, mentions=("st_noah",)
    )
    assert recipients == {"st_noah": InboxItemType.MENTION}


def test_smtp_retry_backoff_grows_and_is_capped() -> None:
    assert [retry_delay(n, max_seconds=60) for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert retry_delay(30, max_seconds=60) == 60


TEMPLATES = MailTemplates(
    mail_from="Firm <n@firm.example>",
    portal_base_url="https://portal.example/p/",
    staff_app_base_url="https://app.example",
)


def _mail(kind: str = "client_message", subject: str = "2025 <b>taxes</b>") -> dict[str, object]:
    return {
        "_id": "client:firm:th/1:ct_ann:msg_1",
        "kind": kind,
        "to": {"id": "ct_ann", "name": "Ann <Lee>", "email": "ann@x.example"},
        "thread": {"thread_id": "th/1", "account_id": "acc", "subject": subject},
        "messages": [
            {
                "message_id": "msg_1",
                "author_name": "Mia <script>",
                "text": "Secret <i>W-2</i> text",
            },
            {"message_id": "msg_2", "author_name": "Mia <script>", "text": "second"},
        ],
        "created_at": datetime(2026, 3, 2, tzinfo=UTC),
    }


def _parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    markup = message.get_body(("html",))
    assert text is not None and markup is not None
    return str(text.get_content()), str(markup.get_content())


def test_k7_context_hidden_says_who_wrote_where_and_links_only() -> None:
    tasks = [{"text": "Upload W-2", "done": False}]
    message = render(_mail(), templates=TEMPLATES, show_context=False, tasks=tasks)
    text, markup = _parts(message)
    assert "Secret" not in text + markup and "Upload W-2" not in text + markup
    assert "2 new messages" in str(message["Subject"])
    assert "https://portal.example/p/threads/th%2F1" in text
    assert message.is_multipart() and message["Message-ID"].endswith("@threadline>")


def test_k7_context_shown_includes_text_and_tasks_as_checklist_escaped() -> None:
    tasks = [{"text": "Upload <W-2>", "done": True}, {"text": "Sign", "done": False}]
    text, markup = _parts(render(_mail(), templates=TEMPLATES, show_context=True, tasks=tasks))
    assert "Secret <i>W-2</i> text" in text
    assert "[x] Upload <W-2>" in text and "[ ] Sign" in text
    assert "Secret &lt;i&gt;W-2&lt;/i&gt; text" in markup
    assert "Upload &lt;W-2&gt;" in markup and "<script>" not in markup and "<b>taxes" not in markup


def test_headers_never_carry_line_breaks_from_user_strings() -> None:
    message = render(
        _mail(subject="Hi\r\nBcc: evil@x.example"),
        templates=TEMPLATES,
        show_context=False,
        tasks=[],
    )
    assert "\n" not in str(message["Subject"]) and message["Bcc"] is None


@pytest.mark.parametrize("kind", ["reminder", "staff_mention", "staff_message"])
def test_every_mail_kind_renders_a_subject_and_a_link(kind: str) -> None:
    message = render(_mail(kind), templates=TEMPLATES, show_context=False, tasks=[])
    text, _ = _parts(message)
    assert "threads/th%2F1" in text and str(message["Subject"])
    if kind.startswith("staff_"):
        assert "https://app.example/threads/" in text and "Secret" in text


def test_n2_a_clients_upload_posted_as_a_message_adds_no_second_item() -> None:
    recipients = _recipients(carries_documents=True)
    assert recipients == {}
