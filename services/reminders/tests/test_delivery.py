"""N1: delivering mails when storage goes away between the relay's acceptance and the mark."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from types import SimpleNamespace
from typing import Any

import pytest
from pymongo.errors import AutoReconnect

from threadline.reminders import delivery
from threadline.reminders.delivery import MailDelivery

NOW = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)


class MailsThatLoseStorage:
    """A queue with one claimed mail, whose first ``mark_sent`` calls meet a dead server."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.marked: list[str] = []

    async def claim_due(self, now: datetime, **_: Any) -> list[dict[str, Any]]:
        mail = {"_id": "m1", "firm": "f", "thread": {"thread_id": "t1"}, "kind": "x"}
        return [mail | {"claim": "token-1"}]

    async def mark_sent(self, mail_id: str, *, token: str, now: datetime) -> bool:
        if self.failures:
            self.failures -= 1
            raise AutoReconnect("127.0.0.1:27017: connection closed")
        self.marked.append(mail_id)
        return True


class RecordingMailer:
    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []

    async def send(self, message: EmailMessage) -> None:
        self.sent.append(message)


def delivery_with(mails: MailsThatLoseStorage, mailer: RecordingMailer) -> MailDelivery:
    async def show_context(firms: list[str]) -> dict[str, bool]:
        return {}

    async def for_mails(keys: list[str]) -> dict[str, Any]:
        return {}

    async def notification_sent(*_: Any) -> None:
        return None

    return MailDelivery(
        mails=mails,  # type: ignore[arg-type]
        mailer=mailer,
        templates=SimpleNamespace(),  # type: ignore[arg-type]
        firm_settings=SimpleNamespace(show_context=show_context),  # type: ignore[arg-type]
        threads=SimpleNamespace(for_mails=for_mails, key=lambda f, t: f"{f}:{t}"),  # type: ignore[arg-type]
        notification_sent=notification_sent,
        lease=timedelta(seconds=10),
        retry_for=timedelta(hours=1),
        backoff_max_seconds=60,
        batch_size=10,
        concurrency=2,
        claim_token="replica",
        clock=lambda: NOW,
    )


@pytest.fixture(autouse=True)
def plain_rendering(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delivery, "render", lambda mail, **_: EmailMessage())


async def test_n1_a_mail_accepted_by_the_relay_is_marked_sent_once_storage_is_back() -> None:
    """Before, the failed mark left the claim to lapse: the mail was claimed and sent again."""
    mails, mailer = MailsThatLoseStorage(failures=3), RecordingMailer()
    assert await delivery_with(mails, mailer).run_due() == 1
    assert len(mailer.sent) == 1 and mails.marked == ["m1"]


async def test_n1_storage_gone_for_longer_than_the_retry_window_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(delivery, "MARK_SENT_RETRY_SECONDS", 0.5)
    mails, mailer = MailsThatLoseStorage(failures=100), RecordingMailer()
    with pytest.raises(AutoReconnect):
        await delivery_with(mails, mailer).run_due()
    assert len(mailer.sent) == 1 and mails.marked == []
