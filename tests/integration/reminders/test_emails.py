"""Client e-mails on real servers (N1, K7, M3): who gets mail, what it shows, coalescing, and
an SMTP outage that delays each mail and then delivers it exactly once."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

import pytest

from ..conftest import ServiceFactory, eventually
from .conftest import ANN, BEN, Firm, SmtpSink, body_text, is_reminder, start_firm

pytestmark = pytest.mark.integration


async def client_mails(
    smtp: SmtpSink, thread: str, count: int, to: str = ANN
) -> list[EmailMessage]:
    """Wait for ``count`` message e-mails (not reminders) to ``to`` about ``thread``."""

    async def found() -> list[EmailMessage]:
        return [m for m in smtp.mails(to, thread=thread) if not is_reminder(m)]

    return await eventually(found, until=lambda mails: len(mails) >= count, within=120)


async def show_context(firm: Firm) -> None:
    enabled = await firm.call(
        "owner",
        "PATCH",
        "/v1/firm/chat-settings",
        json={"show_message_context_in_notifications": True},
    )
    assert enabled.status_code == 200, enabled.text
    await eventually(
        lambda: firm.on_reminders("owner", "GET", "/v1/firm/notification-settings"),
        until=lambda r: r.json()["show_message_context_in_notifications"] is True,
        within=120,
    )


async def test_n1_ann_with_notify_on_gets_the_mail_and_ben_with_notify_off_does_not(
    firm: Firm, smtp: SmtpSink
) -> None:
    thread = await firm.new_thread(subject="Your <b>2025</b> return")
    assert set(thread["to_contact_ids"]) == {"ct_ann_lee", "ct_ben_lee"}
    [mail] = await client_mails(smtp, thread["id"], 1)
    assert mail["X-RcptTo"] == ANN
    assert "Mia Chen" in str(mail["Subject"]) and "Your <b>2025</b> return" in str(mail["Subject"])
    html_part = mail.get_body(("html",))
    assert html_part is not None
    html = str(html_part.get_content())
    assert "&lt;b&gt;2025&lt;/b&gt;" in html and "<b>2025</b>" not in html
    assert mail.get_body(("plain",)) is not None and mail.is_multipart()
    await asyncio.sleep(1.5)  # Ben's mail, were it queued, would have been due by now
    assert smtp.mails(BEN, thread=thread["id"]) == []
    assert [str(m["X-RcptTo"]) for m in smtp.mails(thread=thread["id"])] == [ANN]


async def test_k7_content_hidden_by_default_then_shown_once_the_owner_enables_it(
    firm: Firm, smtp: SmtpSink
) -> None:
    thread = await firm.new_thread(message={"html": "<p>Secret figure 4711</p>"})
    [hidden] = await client_mails(smtp, thread["id"], 1)
    assert "4711" not in body_text(hidden) and "Mia Chen" in body_text(hidden)
    await show_context(firm)
    await firm.publish(firm.tasks_event(thread["id"], done=[True, False]))
    await eventually(
        lambda: firm.reminders_app.state.threads.get(firm.firm, thread["id"]),
        until=lambda t: t is not None and t["tasks"]["total"] == 2,
        within=120,
    )
    await firm.post("assigned member", thread["id"], html="<p>Now visible 0815</p>")

    async def mails_showing_the_post() -> list[str]:
        texts = [body_text(mail) for mail in await client_mails(smtp, thread["id"], 2)]
        return [text for text in texts if "Now visible 0815" in text]

    # the task-list message messaging posts for the event may arrive as its own mail first
    [shown] = await eventually(mails_showing_the_post, until=bool, within=120)
    assert "4711" not in shown
    assert "[x] Task <0>" in shown and "[ ] Task <1>" in shown


async def test_m3_internal_messages_never_create_client_mail(firm: Firm, smtp: SmtpSink) -> None:
    await show_context(firm)
    thread = await firm.new_thread(message={"html": "<p>first</p>"})
    await client_mails(smtp, thread["id"], 1)
    await firm.post("assigned member", thread["id"], html="<p>internal 9999</p>", internal=True)
    await firm.post("assigned member", thread["id"], html="<p>public 1234</p>")
    await client_mails(smtp, thread["id"], 2)
    await asyncio.sleep(1.5)
    texts = [body_text(m) for m in smtp.mails(thread=thread["id"])]
    assert len(texts) == 2 and "public 1234" in texts[1]
    assert not any("9999" in text for text in texts)


async def test_n1_messages_within_the_window_coalesce_into_one_mail(
    start_service: ServiceFactory, run_id: str, smtp: SmtpSink
) -> None:
    firm = await start_firm(start_service, run_id, smtp, coalesce_window_seconds=3.0)
    thread = await firm.new_thread(message={"html": "<p>one</p>"})
    await firm.post("assigned member", thread["id"], html="<p>two</p>")
    await firm.post("member with view-all", thread["id"], html="<p>three</p>")
    [mail] = await client_mails(smtp, thread["id"], 1)
    assert "3 new messages" in str(mail["Subject"])
    await asyncio.sleep(1.5)
    assert len(smtp.mails(thread=thread["id"])) == 1


async def test_n1_smtp_outage_delays_then_delivers_each_mail_exactly_once(
    firm: Firm, smtp: SmtpSink
) -> None:
    await smtp.stop()
    first = await firm.new_thread(subject="during outage one")
    second = await firm.new_thread(subject="during outage two")
    mails = firm.reminders_app.state.mails

    async def attempts() -> list[int]:
        queued = [
            *await mails.sent_to(firm.firm, first["id"]),
            *await mails.sent_to(firm.firm, second["id"]),
        ]
        return [int(mail.get("attempts", 0)) for mail in queued]

    await eventually(
        attempts, until=lambda counts: len(counts) == 2 and min(counts) >= 2, within=120
    )
    assert smtp.mails(thread=first["id"]) == [] and smtp.mails(thread=second["id"]) == []
    await smtp.start()
    await client_mails(smtp, first["id"], 1)
    await client_mails(smtp, second["id"], 1)
    await asyncio.sleep(2.0)  # anything sent twice would have arrived by now
    assert len(smtp.mails(thread=first["id"])) == 1
    assert len(smtp.mails(thread=second["id"])) == 1
    states = [m["status"] for t in (first, second) for m in await mails.sent_to(firm.firm, t["id"])]
    assert states == ["sent", "sent"]
