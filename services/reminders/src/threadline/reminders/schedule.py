"""Reminder use cases (Q1-Q4): keep each thread's state, arm, re-arm, stop and send.

Events update the thread; whenever a thread has a running schedule and a stop rule of
``domain.stop_reason`` holds, the schedule stops with ``reminders.stopped``. The due run
claims armed schedules with a lease, so with several replicas each reminder is sent once,
and a crashed claimer's reminder is taken over when the lease passes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from threadline.contracts import Envelope, new_event
from threadline.contracts.events.messaging import MessagePosted, ThreadCreated
from threadline.contracts.events.reminders import ReminderSent, RemindersStopped, StopReason
from threadline.contracts.events.tasks import TaskListAllCompleted, TaskListChanged
from threadline.kit.directory import MongoDirectory
from threadline.kit.ids import Document
from threadline.reminders.domain import (
    ReminderPolicy,
    Schedule,
    ThreadState,
    client_mail_recipients,
    stop_reason,
)
from threadline.reminders.store import MongoArmedSchedules, MongoMailQueue, MongoThreadStore
from threadline.reminders.store.directory import MongoStaffEmails

__all__ = ["MAX_STORED_TEXT", "ReminderService", "policy_of", "state_of"]

PRODUCER = "reminders"
MAX_STORED_TEXT = 10_000
"""Characters of a message kept for reminder e-mails (they show an excerpt at most)."""


def policy_of(thread: Mapping[str, Any]) -> ReminderPolicy:
    settings = thread.get("settings") or {}
    return ReminderPolicy(
        enabled=bool(settings.get("enabled", False)),
        days_between=int(settings.get("days_between", 3)),
        max_reminders=int(settings.get("max_reminders", 1)),
    )


def state_of(thread: Mapping[str, Any]) -> ThreadState:
    tasks = thread.get("tasks") or {}
    last_firm = thread.get("last_firm") or {}
    return ThreadState(
        archived=bool(thread.get("archived")),
        policy=policy_of(thread),
        tasks_total=int(tasks.get("total", 0)),
        tasks_done=int(tasks.get("done", 0)),
        last_firm_seq=last_firm.get("seq"),
        last_client_seq=int(thread.get("last_client_seq", 0)),
        client_read_seq=int(thread.get("client_read_seq", 0)),
        reminders_sent=int(thread.get("reminders_sent", 0)),
        tasks_complete_when_armed=bool(thread.get("tasks_complete_when_armed")),
    )


def _same_schedule(schedule: Schedule) -> Document:
    return {"schedule.message_id": schedule.message_id, "schedule.number": schedule.number}


class ReminderService:
    def __init__(
        self,
        *,
        threads: MongoThreadStore,
        armed: MongoArmedSchedules,
        mails: MongoMailQueue,
        directory: MongoDirectory,
        staff_emails: MongoStaffEmails,
        day_seconds: float,
        notification_delay: timedelta,
        lease: timedelta,
        batch_size: int,
        claim_token: str,
        clock: Callable[[], datetime],
    ) -> None:
        self._threads = threads
        self._armed = armed
        self._mails = mails
        self._directory = directory
        self._staff_emails = staff_emails
        self._day = day_seconds
        self._notification_delay = notification_delay
        self._lease = lease
        self._batch = batch_size
        self._token = claim_token
        self._clock = clock

    # -- thread facts from events ------------------------------------------------------

    async def thread_created(self, event: Envelope[ThreadCreated]) -> Document:
        data = event.data
        thread = await self._threads.upsert(
            event.firm,
            data.thread_id,
            {
                "$set": {
                    "account_id": data.account_id,
                    "subject": data.subject,
                    "created_by": data.created_by.model_dump(),
                    "to_contact_ids": list(data.to_contact_ids),
                    "first_message_id": data.first_message_id,
                }
            },
        )
        # the settings chosen at creation (Q1) apply once: a redelivered creation must not
        # undo a change staff made since (they can only change a known thread)
        known = await self._threads.update_if(
            event.firm,
            data.thread_id,
            {"known": False},
            {"$set": {"settings": data.reminders.model_dump(), "known": True}},
        )
        return known or thread

    async def message_posted(self, event: Envelope[MessagePosted]) -> Document:
        """Record the message; a firm message re-arms reminders about itself (Q2)."""
        data = event.data
        update: Document = {"$set": {"account_id": data.account_id}}
        to_add: Document = {}
        if data.author.kind == "client":
            update["$max"] = {"last_client_seq": data.seq}
        else:
            to_add["repliers"] = data.author.user_id
        if to_add:
            update["$addToSet"] = to_add
        thread = await self._threads.upsert(event.firm, data.thread_id, update)
        last_seq = (thread.get("last_firm") or {}).get("seq") or 0
        if data.author.kind == "staff" and not data.internal and data.seq > last_seq:
            last_firm = {
                "message_id": data.message_id,
                "seq": data.seq,
                "author_name": data.author.name,
                "text": data.text[:MAX_STORED_TEXT],
                "posted_at": data.posted_at,
            }
            armed = await self._arm(
                thread,
                message_id=data.message_id,
                number=1,
                from_at=data.posted_at + self._notification_delay,
                extra={"last_firm": last_firm, "reminders_sent": 0},
                conditions={"last_firm.seq": (thread.get("last_firm") or {}).get("seq")},
            )
            return armed or thread
        await self.reevaluate(thread)
        return thread

    async def message_edited(self, firm: str, thread_id: str, message_id: str, text: str) -> None:
        """Reminders quote the edited text of the message they are about."""
        await self._threads.update_if(
            firm,
            thread_id,
            {"last_firm.message_id": message_id},
            {"$set": {"last_firm.text": text[:MAX_STORED_TEXT]}},
        )

    async def client_read(self, firm: str, thread_id: str, up_to_seq: int) -> None:
        thread = await self._threads.upsert(
            firm, thread_id, {"$max": {"client_read_seq": up_to_seq}}
        )
        await self.reevaluate(thread)

    async def archived(self, firm: str, thread_id: str) -> None:
        thread = await self._threads.upsert(firm, thread_id, {"$set": {"archived": True}})
        await self.reevaluate(thread)

    async def reopened(self, firm: str, thread_id: str) -> None:
        """Q4: reopening re-arms reminders about the last firm message as if it were new."""
        thread = await self._threads.upsert(firm, thread_id, {"$set": {"archived": False}})
        last_firm = thread.get("last_firm")
        if last_firm:
            await self._arm(
                thread,
                message_id=str(last_firm["message_id"]),
                number=1,
                from_at=self._clock(),
                extra={"reminders_sent": 0},
                conditions={"last_firm.message_id": last_firm["message_id"]},
            )

    async def tasks_changed(self, event: Envelope[TaskListChanged]) -> None:
        data = event.data
        snapshot = {
            "total": data.progress.total,
            "done": data.progress.done,
            "items": [
                {"task_id": task.task_id, "text": task.text[:1000], "done": task.done}
                for task in data.tasks
            ],
            "as_of": event.occurred_at,
        }
        thread = await self._threads.apply_tasks(
            event.firm, data.thread_id, data.account_id, snapshot, inclusive=True
        )
        if thread is not None:
            await self.reevaluate(thread)

    async def tasks_all_completed(self, event: Envelope[TaskListAllCompleted]) -> None:
        data = event.data
        thread = await self._threads.get(event.firm, data.thread_id)
        items = [
            {**item, "done": True} for item in ((thread or {}).get("tasks") or {}).get("items", [])
        ]
        snapshot = {
            "total": data.total,
            "done": data.total,
            "items": items,
            "as_of": event.occurred_at,
        }
        thread = await self._threads.apply_tasks(
            event.firm, data.thread_id, data.account_id, snapshot, inclusive=False
        )
        if thread is not None:
            await self.reevaluate(thread)

    # -- settings (Q1) --------------------------------------------------------------------

    async def change_settings(self, thread: Document, policy: ReminderPolicy) -> Document:
        firm, thread_id = str(thread["firm"]), str(thread["thread_id"])
        updated = await self._threads.update_if(
            firm, thread_id, {}, {"$set": {"settings": asdict(policy)}}
        )
        assert updated is not None  # threads are never deleted
        schedule = Schedule.from_document(updated.get("schedule"))
        if schedule is not None:
            if policy.enabled and stop_reason(state_of(updated)) is None:
                moved = Schedule.starting(
                    schedule.message_id,
                    number=schedule.number,
                    from_at=schedule.from_at,
                    policy=policy,
                    day_seconds=self._day,
                )
                await self._armed.put(firm, thread_id, moved)
                return (
                    await self._threads.update_if(
                        firm,
                        thread_id,
                        _same_schedule(schedule),
                        {"$set": {"schedule": moved.to_document()}},
                    )
                    or updated
                )
            return await self.reevaluate(updated)
        last_firm = updated.get("last_firm")
        state = state_of(updated)
        if last_firm and policy.enabled and stop_reason(state) is None:
            return (
                await self._arm(
                    updated,
                    message_id=str(last_firm["message_id"]),
                    number=state.reminders_sent + 1,
                    from_at=self._clock(),
                    extra={},
                    conditions={"last_firm.message_id": last_firm["message_id"], "schedule": None},
                )
                or updated
            )
        return updated

    # -- arming and stopping --------------------------------------------------------------

    async def _arm(
        self,
        thread: Document,
        *,
        message_id: str,
        number: int,
        from_at: datetime,
        extra: Document,
        conditions: Document,
    ) -> Document | None:
        """Start the schedule (armed entry first, then the thread), or record that there is
        none when reminders are off or the thread archived; then apply the stop rules."""
        firm, thread_id = str(thread["firm"]), str(thread["thread_id"])
        policy = policy_of(thread)
        schedule: Schedule | None = None
        if policy.enabled and not thread.get("archived"):
            schedule = Schedule.starting(
                message_id, number=number, from_at=from_at, policy=policy, day_seconds=self._day
            )
            await self._armed.put(firm, thread_id, schedule)
        tasks = thread.get("tasks") or {}
        updated = await self._threads.update_if(
            firm,
            thread_id,
            conditions,
            {
                "$set": {
                    **extra,
                    "schedule": schedule.to_document() if schedule else None,
                    "stopped": None,
                    "tasks_complete_when_armed": tasks.get("total", 0) > 0
                    and tasks.get("done", 0) >= tasks.get("total", 0),
                }
            },
        )
        if updated is None:
            return None  # a newer message or change won; its own write armed what it needed
        return await self.reevaluate(updated)

    async def reevaluate(self, thread: Document) -> Document:
        """Stop a running schedule whose stop rule holds now (Q3)."""
        schedule = Schedule.from_document(thread.get("schedule"))
        if schedule is None:
            return thread
        reason = stop_reason(state_of(thread))
        if reason is None:
            return thread
        return await self._stop(thread, schedule, reason) or thread

    async def _stop(
        self, thread: Document, schedule: Schedule, reason: StopReason
    ) -> Document | None:
        firm, thread_id = str(thread["firm"]), str(thread["thread_id"])
        stopped = RemindersStopped(
            thread_id=thread_id,
            account_id=str(thread["account_id"]),
            reason=reason,
            reminders_sent=int(thread.get("reminders_sent", 0)),
        )
        updated = await self._threads.update_if(
            firm,
            thread_id,
            _same_schedule(schedule),
            {"$set": {"schedule": None, "stopped": reason.value}},
            events=[new_event(stopped, firm=firm, producer=PRODUCER)],
        )
        if updated is not None:
            await self._armed.remove(firm, thread_id)
        return updated

    async def notification_sent(
        self, firm: str, thread_id: str, message_ids: Collection[str], sent_at: datetime
    ) -> None:
        """Q2: the first reminder counts from when the message's e-mail actually went out."""
        thread = await self._threads.get(firm, thread_id)
        schedule = Schedule.from_document((thread or {}).get("schedule"))
        if (
            thread is None
            or schedule is None
            or schedule.number != 1
            or schedule.message_id not in message_ids
            or sent_at <= schedule.from_at
        ):
            return
        moved = Schedule.starting(
            schedule.message_id,
            number=1,
            from_at=sent_at,
            policy=policy_of(thread),
            day_seconds=self._day,
        )
        await self._armed.put(firm, thread_id, moved)
        await self._threads.update_if(
            firm, thread_id, _same_schedule(schedule), {"$set": {"schedule": moved.to_document()}}
        )

    # -- sending due reminders ------------------------------------------------------------

    async def run_due(self) -> int:
        """Claim and send every due reminder; returns how many were sent."""
        now = self._clock()
        sent = 0
        for entry in await self._armed.due(now, limit=self._batch):
            if await self._armed.claim(entry, now=now, lease=self._lease, token=self._token):
                sent += await self._fire(entry, now)
        return sent

    async def _fire(self, entry: Document, now: datetime) -> int:
        firm, thread_id = str(entry["firm"]), str(entry["thread_id"])
        thread = await self._threads.get(firm, thread_id)
        schedule = Schedule.from_document((thread or {}).get("schedule"))
        if thread is None or schedule is None:
            await self._armed.remove(firm, thread_id, claimed_by=self._token)  # stale entry
            return 0
        if (schedule.message_id, schedule.number) != (entry["message_id"], entry["number"]) or (
            schedule.due_at > now
        ):
            await self._armed.put(firm, thread_id, schedule)  # stale: follow the thread
            return 0
        reason = stop_reason(state_of(thread))
        if reason is not None:
            await self._stop(thread, schedule, reason)
            return 0
        recipients = await self._recipients(thread)
        last_firm = thread["last_firm"]
        for recipient in recipients:
            await self._mails.enqueue(
                {
                    "_id": f"reminder:{firm}:{thread_id}:{schedule.message_id}:"
                    f"{schedule.number}:{recipient['id']}",
                    "firm": firm,
                    "kind": "reminder",
                    "coalesce_key": None,
                    "to": recipient,
                    "thread": _thread_card(thread),
                    "messages": [
                        {
                            "message_id": last_firm["message_id"],
                            "author_name": last_firm.get("author_name", ""),
                            "author_kind": "staff",
                            "text": last_firm.get("text", ""),
                        }
                    ],
                    "message_ids": [last_firm["message_id"]],
                    "reminder_number": schedule.number,
                },
                due_at=now,
                now=now,
            )
        return await self._record_sent(thread, schedule, [r["id"] for r in recipients], now)

    async def _record_sent(
        self, thread: Document, schedule: Schedule, sent_to: list[str], now: datetime
    ) -> int:
        firm, thread_id = str(thread["firm"]), str(thread["thread_id"])
        policy = policy_of(thread)
        account_id = str(thread["account_id"])
        events: list[Envelope[Any]] = [
            new_event(
                ReminderSent(
                    thread_id=thread_id,
                    account_id=account_id,
                    message_id=schedule.message_id,
                    reminder_number=schedule.number,
                    sent_to=sent_to,
                    sent_at=now,
                ),
                firm=firm,
                producer=PRODUCER,
            )
        ]
        following: Schedule | None = None
        if schedule.number < policy.max_reminders:
            following = Schedule.starting(
                schedule.message_id,
                number=schedule.number + 1,
                from_at=now,
                policy=policy,
                day_seconds=self._day,
            )
            await self._armed.put(firm, thread_id, following)
        else:
            stopped = RemindersStopped(
                thread_id=thread_id,
                account_id=account_id,
                reason=StopReason.LIMIT_REACHED,
                reminders_sent=schedule.number,
            )
            events.append(new_event(stopped, firm=firm, producer=PRODUCER))
        updated = await self._threads.update_if(
            firm,
            thread_id,
            _same_schedule(schedule),
            {
                "$set": {
                    "reminders_sent": schedule.number,
                    "schedule": following.to_document() if following else None,
                    "stopped": None if following else StopReason.LIMIT_REACHED.value,
                }
            },
            events=events,
        )
        if updated is None:
            return 0
        if following is None:
            await self._armed.remove(firm, thread_id, claimed_by=self._token)
        return 1

    async def _recipients(self, thread: Document) -> list[dict[str, str]]:
        firm = str(thread["firm"])
        account = await self._directory.account(firm, str(thread["account_id"]))
        if account is None:
            return []
        return client_mail_recipients(
            to_contact_ids=thread.get("to_contact_ids") or [],
            contacts=account.get("contacts") or [],
            staff_emails=await self._staff_emails.of_firm(firm),
        )

    async def recipients(self, thread: Document) -> list[dict[str, str]]:
        """N1: who gets client e-mails about this thread."""
        return await self._recipients(thread)


def _thread_card(thread: Mapping[str, Any]) -> Document:
    return {
        "thread_id": thread["thread_id"],
        "account_id": thread.get("account_id", ""),
        "subject": thread.get("subject", ""),
    }
