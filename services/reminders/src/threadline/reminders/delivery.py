"""Delivering queued e-mails: claim, render, send, then mark sent — each mail once.

A mail is claimed with a lease before any SMTP traffic and marked sent (by the claim's
holder only) by its id right after the relay accepted it (mails go out in groups of
``concurrency``, one per kept-open connection, and are marked as their group ends). A transient
failure (relay down, 4xx) puts the mail back with exponential backoff for up to
``retry_for``; a permanent one (5xx, or a mail that cannot be rendered) gives it up,
logged with its reason. Message-ID is derived from the mail id, so even the one
unavoidable window (accepted by the relay, then a crash before the mark) yields a
duplicate the receiving side can recognise. Storage going away in that window is not a
crash: the marks are retried until it answers (``MARK_SENT_RETRY_SECONDS``), since a claim
left to lapse would be claimed and the mail sent again (the chaos run's kill -9 of Kafka
and MongoDB sent three mails twice).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Protocol

import structlog
from pymongo.errors import ConnectionFailure

from threadline.kit.ids import Document, new_id
from threadline.reminders.domain import Schedule, retry_delay
from threadline.reminders.mail import (
    MailTemplates,
    PermanentMailError,
    TransientMailError,
    render,
)
from threadline.reminders.store import MongoFirmSettingsProjection, MongoMailQueue, MongoThreadStore

__all__ = ["MailDelivery", "Mailer"]

_log = structlog.get_logger(__name__)


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


NotificationSent = Callable[[str, str, Collection[str], datetime], Awaitable[None]]

MARK_SENT_RETRY_SECONDS = 300.0
"""How long marking a delivered mail sent is retried while storage is unreachable."""


class MailDelivery:
    def __init__(
        self,
        *,
        mails: MongoMailQueue,
        mailer: Mailer,
        templates: MailTemplates,
        firm_settings: MongoFirmSettingsProjection,
        threads: MongoThreadStore,
        notification_sent: NotificationSent,
        lease: timedelta,
        retry_for: timedelta,
        backoff_max_seconds: float,
        batch_size: int,
        concurrency: int,
        claim_token: str,
        clock: Callable[[], datetime],
    ) -> None:
        self._mails = mails
        self._mailer = mailer
        self._templates = templates
        self._firm_settings = firm_settings
        self._threads = threads
        self._notification_sent = notification_sent
        self._lease = lease
        self._retry_for = retry_for
        self._backoff_max = backoff_max_seconds
        self._batch = batch_size
        self._concurrency = concurrency
        self._token = claim_token
        self._clock = clock

    async def run_due(self) -> int:
        """Claim the due mails as one batch, then send them a few at a time; returns how
        many were sent."""
        now = self._clock()
        claimed = await self._mails.claim_due(
            now, limit=self._batch, lease=self._lease, token=f"{self._token}:{new_id()}"
        )
        if not claimed:
            return 0
        firms = sorted({str(mail["firm"]) for mail in claimed})
        show_context = await self._firm_settings.show_context(firms)
        threads = await self._threads.for_mails(
            sorted(
                {self._threads.key(str(m["firm"]), str(m["thread"]["thread_id"])) for m in claimed}
            )
        )
        sent = 0
        for start in range(0, len(claimed), self._concurrency):
            group = claimed[start : start + self._concurrency]
            results = await asyncio.gather(
                *(
                    self._send_one(mail, show_context=show_context, threads=threads)
                    for mail in group
                )
            )
            delivered = [mail for mail, ok in zip(group, results, strict=True) if ok]
            sent += await self._record_sent(delivered, threads=threads)
        return sent

    async def _send_one(
        self, mail: Document, *, show_context: dict[str, bool], threads: dict[str, Document]
    ) -> bool:
        """Send one claimed mail; on failure re-queue or give it up. True when sent."""
        firm, thread_id = str(mail["firm"]), str(mail["thread"]["thread_id"])
        try:
            message = render(
                mail,
                templates=self._templates,
                show_context=show_context.get(firm, False),
                tasks=(threads.get(self._threads.key(firm, thread_id), {}).get("tasks") or {}).get(
                    "items", []
                ),
            )
            await self._mailer.send(message)
        except TransientMailError as exc:
            await self._retry_or_give_up(mail, str(exc))
            return False
        except (PermanentMailError, ValueError, KeyError, TypeError) as exc:
            # refused for good, or a mail that cannot be rendered: retrying cannot help
            _log.error("e-mail given up", mail_id=mail["_id"], error=str(exc)[:300])
            await self._mails.give_up(
                mail["_id"], token=str(mail["claim"]), error=str(exc), now=self._clock()
            )
            return False
        return True

    async def _record_sent(self, delivered: list[Document], *, threads: dict[str, Document]) -> int:
        """Mark the mails of one group (sent in parallel) sent, each by its id, then let
        reminders count from their notification (Q2). A crash before the marks re-sends at
        most the group — the mails that were in flight anyway."""
        if not delivered:
            return 0
        sent_at = self._clock()
        marks = await asyncio.gather(*(self._mark_sent(mail, sent_at) for mail in delivered))
        marked = sum(marks)
        if marked != len(delivered):
            _log.warning("e-mails sent after their claim lapsed", count=len(delivered) - marked)
        for mail in delivered:
            key = self._threads.key(str(mail["firm"]), str(mail["thread"]["thread_id"]))
            schedule = Schedule.from_document(threads.get(key, {}).get("schedule"))
            if (
                mail["kind"] == "client_message"
                and schedule is not None
                and schedule.number == 1
                and schedule.message_id in (mail.get("message_ids") or [])
            ):  # the first reminder about this message counts from now (Q2)
                await self._notification_sent(
                    str(mail["firm"]),
                    str(mail["thread"]["thread_id"]),
                    list(mail.get("message_ids") or []),
                    sent_at,
                )
        return len(delivered)

    async def _mark_sent(self, mail: Document, sent_at: datetime) -> bool:
        """Mark a mail the relay accepted sent, retrying while storage is unreachable (up to
        ``MARK_SENT_RETRY_SECONDS``): this batch's claims are this job's until then, since
        the job runs again only after this pass, and another replica can claim nothing
        while storage is down. False when the claim was lost."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + MARK_SENT_RETRY_SECONDS
        delay = 0.25
        while True:
            try:
                return await self._mails.mark_sent(
                    str(mail["_id"]), token=str(mail["claim"]), now=sent_at
                )
            except ConnectionFailure:
                if loop.time() + delay > deadline:
                    raise
                _log.warning("marking a sent e-mail failed; retrying", mail_id=mail["_id"])
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _retry_or_give_up(self, mail: Document, error: str) -> None:
        now = self._clock()
        first_failure: datetime = mail.get("first_failure_at") or now
        if now - first_failure >= self._retry_for:
            _log.error("e-mail given up after retrying", mail_id=mail["_id"], error=error[:300])
            await self._mails.give_up(mail["_id"], token=mail["claim"], error=error, now=now)
            return
        delay = retry_delay(int(mail.get("attempts", 0)) + 1, max_seconds=self._backoff_max)
        _log.warning("e-mail delayed", mail_id=mail["_id"], retry_in=delay, error=error[:300])
        await self._mails.retry_later(
            mail["_id"],
            token=mail["claim"],
            due_at=now + timedelta(seconds=delay),
            error=error,
            first_failure=first_failure,
        )
