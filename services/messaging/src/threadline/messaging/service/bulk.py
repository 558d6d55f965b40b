"""Mass messaging (P2): one thread per selected account, created by a background job.

``BulkService.start`` stores the job (the content rendered later is fixed now: a template
is copied into the job, so editing or deleting it meanwhile changes nothing) and answers at
once. ``BulkWorker.run`` — one per replica — claims jobs by lease (``kit.leases``) and
works through them in batches: the accounts read from the directory (the firm's whole
directory once for a large job, else by ``_id`` a batch ahead), every thread rendered with
the same function as a single thread creation, then one unordered insert of the first
messages and one of the threads; behind them (``_Recorder``), the batch's
``thread.created`` and ``message.posted`` events published, one document per batch with
its per-account results, and the job's progress.

Exactly once in effect: a thread's id (and its first message's) is derived from job and
account, so a batch redone after a crash or by the replica that took over inserts nothing
twice. The job's progress is its outbox: its ``cursor`` passes a batch only once the
batch's events were acknowledged by Kafka and its results stored, and a batch the cursor
has not passed is redone, which builds its events again with the same ids (derived from
job, account and kind: ``kit.ids.derived_event_id``); consumers deduplicate. So no event
is stored: the kit's outbox would write every event into MongoDB and update it again once
published, which in the benchmark cost the storage server more than the threads and
messages themselves (29 % against 54 % of the raw baseline's throughput). While Kafka is
down the job waits (its pass fails and is retried) instead of writing threads whose
events would queue up.

Cancelling (``BulkService.cancel``) marks the job ``cancelling``; the worker holding it,
on any replica, looks before its next batch (at most every ``cancel_check_seconds``) and
stops, marking it ``cancelled``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol
from uuid import UUID

import structlog

from threadline.contracts import Envelope
from threadline.contracts.events.messaging import Author, ReminderSettings
from threadline.kit.auth import Principal
from threadline.kit.directory import MongoDirectory
from threadline.kit.errors import Conflict, NotFound
from threadline.kit.ids import Document, derived_event_id, new_id, utc_now
from threadline.kit.kafka import RecordPublisher, publish_in_key_order
from threadline.kit.leases import Leases
from threadline.kit.pacing import InteractiveLoad, Pace, PaceSettings
from threadline.kit.policy import can_access_account
from threadline.messaging.domain import ActionForbidden, InvalidMessage, MessagingError
from threadline.messaging.service.compose import (
    message_document,
    posted_event,
    preview,
)
from threadline.messaging.service.idempotency import IdempotencyConflict, derived_id
from threadline.messaging.service.templates import (
    Content,
    Sender,
    TemplateService,
    addressed_contacts,
    check_shortcodes,
    check_staff,
    content_of,
    render,
)
from threadline.messaging.service.threads import new_thread_document, thread_created_event
from threadline.messaging.store import MongoMessageStore, MongoThreadStore
from threadline.messaging.store.bulk import BatchRecord, MongoBulkStore, page_end

__all__ = [
    "MAX_BULK_ACCOUNTS",
    "BulkJobNotFound",
    "BulkService",
    "BulkWorker",
    "JobFinished",
    "WorkerSettings",
]

_log = structlog.get_logger(__name__)
MAX_BULK_ACCOUNTS = 10_000
BULK_EVENTS = UUID("6f1d3c8e-2b4a-4e57-9d0c-8a1b7e5f3c21")
"""Namespace of the event ids bulk jobs derive (never to change)."""


class BulkJobNotFound(MessagingError, NotFound):
    pass


class JobFinished(MessagingError, Conflict):
    pass


def thread_id_for(job_id: str, account_id: str) -> str:
    return derived_id("thread", job_id, account_id)


def _principal_document(principal: Principal) -> Document:
    return {
        "sub": principal.sub,
        "firm": principal.firm,
        "kind": principal.kind,
        "role": principal.role,
        "perms": sorted(principal.perms),
        "accounts": sorted(principal.accounts),
        "name": principal.name,
    }


def _content_document(content: Content) -> Document:
    return {
        "subject": content.subject,
        "html": content.html,
        "client_tasks": list(content.client_tasks),
        "reminders": content.reminders.model_dump(),
    }


class BulkService:
    def __init__(
        self, *, store: MongoBulkStore, templates: TemplateService, wake: asyncio.Event
    ) -> None:
        self._store = store
        self._templates = templates
        self._wake = wake

    async def start(
        self,
        principal: Principal,
        *,
        account_ids: list[str],
        template_id: str | None,
        content: Content | None,
        idempotency_key: str | None,
    ) -> Document:
        """Store a job for ``account_ids`` (duplicates dropped) and wake a worker.

        With an ``idempotency_key`` the same caller sending the same request again gets
        the same job; a different request under the same key is a 409.
        """
        check_staff(principal)
        accounts = list(dict.fromkeys(account_ids))
        if not accounts:
            raise InvalidMessage("Select at least one account.")
        if len(accounts) > MAX_BULK_ACCOUNTS:
            raise InvalidMessage(f"A bulk message goes to at most {MAX_BULK_ACCOUNTS} accounts.")
        if template_id is not None:
            content = content_of(await self._templates.get(principal, template_id))
        assert content is not None
        check_shortcodes(content)
        request_hash = hashlib.sha256(
            json.dumps([accounts, template_id, _content_document(content)], sort_keys=True).encode()
        ).hexdigest()
        job_id = (
            derived_id("job", principal.firm, principal.sub, idempotency_key)
            if idempotency_key is not None
            else new_id()
        )
        now = utc_now()
        sender = await self._templates.sender(principal)
        job: Document = {
            "_id": job_id,
            "firm": principal.firm,
            "created_by": _principal_document(principal),
            "request_hash": request_hash,
            "template_id": template_id,
            "content": _content_document(content),
            "sender": {"firm_name": sender.firm_name, "sender_name": sender.sender_name},
            "today": now.date().isoformat(),
            "account_ids": accounts,
            "total": len(accounts),
            "cursor": 0,
            "created": 0,
            "skipped": 0,
            "failed": 0,
            "cancelled": 0,
            "status": "running",
            "created_at": now,
            "finished_at": None,
        }
        if await self._store.insert(job):
            self._wake.set()
            return {key: value for key, value in job.items() if key != "account_ids"}
        existing = await self._store.summary(principal.firm, job_id)
        if existing is None:
            raise IdempotencyConflict("This Idempotency-Key is in use; choose another.")
        if existing["request_hash"] != request_hash:
            raise IdempotencyConflict(
                "This Idempotency-Key was already used for a different bulk request."
            )
        return existing

    async def get(
        self, principal: Principal, job_id: str, *, after: int, limit: int
    ) -> tuple[Document, list[Document], int | None]:
        """The job, a page of its per-account results and the next page's cursor. Seen by
        its sender, and by the firm's owners and admins. In a cancelled job, the accounts
        from its ``cursor`` on are ``cancelled``."""
        job = await self._visible(principal, job_id)
        results = await self._store.results(job_id, after=after, limit=limit)
        if job["status"] == "cancelled" and len(results) <= limit:
            first = max(after + 1, int(job["cursor"]), results[-1]["index"] + 1 if results else 0)
            if first < job["total"]:
                accounts = await self._store.account_ids(job_id)
                results += [
                    {
                        "index": index,
                        "account_id": accounts[index],
                        "outcome": "cancelled",
                        "thread_id": None,
                        "reason": CANCELLED,
                    }
                    for index in range(first, min(job["total"], first + limit + 1 - len(results)))
                ]
        page = results[:limit]
        return job, page, (page[-1]["index"] if len(results) > limit else None)

    async def cancel(self, principal: Principal, job_id: str) -> Document:
        """Ask the job's worker to stop after its current batch (on whichever replica holds
        it). Idempotent; a finished job is a 409."""
        job = await self._visible(principal, job_id)
        if job["status"] == "running":
            await self._store.request_cancel(principal.firm, job_id, by=principal.sub, at=utc_now())
            self._wake.set()
            job = await self._visible(principal, job_id)
        if job["status"] == "done":
            raise JobFinished(f"Bulk message {job_id} has finished; there is nothing to cancel.")
        return job

    async def _visible(self, principal: Principal, job_id: str) -> Document:
        check_staff(principal)
        job = await self._store.summary(principal.firm, job_id)
        if job is None or not (
            principal.is_owner_or_admin or job["created_by"]["sub"] == principal.sub
        ):
            raise BulkJobNotFound(f"Bulk message {job_id} does not exist.")
        return job


@dataclass(frozen=True)
class WorkerSettings:
    pace: PaceSettings = field(default_factory=PaceSettings)
    """Batch sizes (``max_batch`` is the largest) and how the job yields to requests."""
    pause_seconds: float = 0.0
    lease_seconds: float = 30.0
    poll_seconds: float = 1.0
    max_body_bytes: int = 64 * 1024
    firm_read_min_accounts: int = 1000
    """A job with at least this many accounts still to do reads the firm's directory once
    (``MongoDirectory.accounts_of_firm``, streamed) instead of one lookup per account: in
    the 10,000-account benchmark the lookups by ``_id`` took 20.8 s of the 53 s job."""
    cancel_check_seconds: float = 0.5
    """How long a cancel may wait for the worker to notice it (a read of the job's status,
    not one per batch)."""
    progress_seconds: float = 0.5
    """How often the job's progress is written (an update of the job document, not one per
    batch); a crash redoes at most the batches since, which inserts nothing twice."""
    publish_timeout_seconds: float = 30.0
    """How long a batch's events may wait for Kafka's acknowledgement before the job's
    pass fails (and is retried)."""


class _LeaseLost(Exception):
    """Another replica holds the job now; stop working on it."""


class BulkWorker:
    """Works through bulk jobs, one at a time, holding each job's lease while it does."""

    def __init__(
        self,
        *,
        store: MongoBulkStore,
        threads: MongoThreadStore,
        messages: MongoMessageStore,
        directory: MongoDirectory,
        publisher: RecordPublisher,
        leases: Leases,
        wake: asyncio.Event,
        settings: WorkerSettings,
        load: InteractiveLoad | None = None,
    ) -> None:
        self._load = load or InteractiveLoad()
        self._publisher = publisher
        self._store = store
        self._threads = threads
        self._messages = messages
        self._directory = directory
        self._leases = leases
        self._wake = wake
        self._settings = settings

    async def run(self) -> None:
        """Claim and work jobs for the app's lifetime (a storage failure is retried)."""
        while True:
            try:
                worked = await self.work_once()
            except Exception:  # storage hiccup: the job keeps its lease and is retried
                _log.warning("bulk job pass failed", exc_info=True)
                worked = False
            if not worked:
                self._wake.clear()
                # Not wait_for: in Python 3.11 it can swallow a cancel that comes as the
                # wait ends, and this loop would then never end.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._settings.poll_seconds):
                        await self._wake.wait()

    async def work_once(self) -> bool:
        """Claim one unfinished job nobody holds and work it to the end; False when there
        was none."""
        for job_id in await self._store.unfinished(limit=20):
            lease = f"bulk:{job_id}"
            if not await self._leases.claim(lease, seconds=self._settings.lease_seconds):
                continue
            try:
                job = await self._store.job(job_id)
                if job is not None:
                    await self._work(job, lease)
            except _LeaseLost:
                _log.info("bulk job taken over by another replica", job_id=job_id)
                return True
            await self._leases.release(lease)
            return True
        return False

    async def _work(self, document: Document, lease: str) -> None:
        job = _Job.of(document)
        cursor = int(document["cursor"])
        _log.info("bulk job working", job_id=job.id, cursor=cursor, total=job.total)
        pace = Pace(self._load, self._settings.pace)
        lookahead = _directory_reads(
            self._directory,
            job,
            cursor,
            firm_read_min_accounts=self._settings.firm_read_min_accounts,
        )
        try:
            if document["status"] == "cancelling":
                # The replica that worked the job died, perhaps with threads written beyond
                # its cursor: finish up to the last of them (so they get their events and
                # results), then stop.
                last_written = await self._last_written(job, cursor)
                while cursor <= last_written:
                    cursor = await self._step(job, cursor, lookahead, pace)
                await self._cancelled(job, cursor)
                return
            with self._load.background():
                if not await self._batches(job, cursor, lease, lookahead, pace):
                    return
        finally:
            lookahead.close()
        await self._store.finish(job.id, at=utc_now())
        _log.info("bulk job done", job_id=job.id, total=job.total,
                  yielded_seconds=round(pace.waited_seconds, 3),
                  held_seconds=round(pace.held_seconds, 3))  # fmt: skip

    async def _batches(
        self, job: _Job, cursor: int, lease: str, lookahead: _DirectoryReads, pace: Pace
    ) -> bool:
        """Work the batches from ``cursor`` on; False when the job was cancelled meanwhile.

        Before each batch the job waits while interactive requests need the server
        (``pace.wait``), and each batch's size follows the time its writes took. The next
        batch is built (directory, rendering: the service's CPU) while this one is written
        (the storage server's), so the two overlap instead of taking turns; and a batch's
        threads are inserted while the next batch's messages are (``_write``).

        Events, results and progress are recorded behind the job by a ``_Recorder`` while
        the next batches are built and written.
        """
        renewed = time.monotonic()
        checked = float("-inf")
        upcoming: asyncio.Task[_Prepared] | None = None
        async with self._recorder(job, pace) as recorder:
            try:
                while cursor < job.total:
                    if time.monotonic() - checked >= self._settings.cancel_check_seconds:
                        checked = time.monotonic()
                        if await self._store.status(job.id) == "cancelling":  # asked anywhere
                            await recorder.flush()
                            await self._cancelled(job, cursor)
                            return False
                    renewed = await self._renew_when_due(lease, renewed)
                    await pace.wait()
                    prepared = await (upcoming or self._prepare_soon(job, cursor, lookahead, pace))
                    upcoming = None
                    if prepared.end < job.total:
                        upcoming = self._prepare_soon(job, prepared.end, lookahead, pace)
                    await recorder.writing(await self._write(job, prepared, pace))
                    cursor = prepared.end
                    if cursor < job.total:
                        await asyncio.sleep(self._settings.pause_seconds)  # let requests in
            finally:
                if upcoming is not None:
                    upcoming.cancel()
            await recorder.flush()
        return True

    async def _renew_when_due(self, lease: str, renewed: float) -> float:
        """Renew the job's lease every third of its term, not every batch (a write less per
        batch); returns when it was last renewed. A replica that took over meanwhile redoes
        what was not recorded yet, which inserts nothing twice."""
        if time.monotonic() - renewed < self._settings.lease_seconds / 3:
            return renewed
        if not await self._leases.renew(lease, seconds=self._settings.lease_seconds):
            raise _LeaseLost
        return time.monotonic()

    def _prepare_soon(
        self, job: _Job, start: int, lookahead: _DirectoryReads, pace: Pace
    ) -> asyncio.Task[_Prepared]:
        """Start building the batch from ``start`` in the background."""
        return asyncio.create_task(self._prepare(job, start, lookahead, pace.batch_size))

    async def _step(self, job: _Job, cursor: int, lookahead: _DirectoryReads, pace: Pace) -> int:
        """Work the batch starting at ``cursor`` and record it; returns the next cursor."""
        prepared = await self._prepare(job, cursor, lookahead, pace.batch_size)
        async with self._recorder(job, pace) as recorder:
            await recorder.writing(await self._write(job, prepared, pace))
            await recorder.flush()
        return prepared.end

    async def _last_written(self, job: _Job, cursor: int) -> int:
        """The index of the job's last account from ``cursor`` on with a thread written
        (-1 if none): what a worker that died may have written beyond its progress."""
        indexes = {
            thread_id_for(job.id, account_id): index
            for index, account_id in enumerate(job.account_ids[cursor:], start=cursor)
        }
        written = await self._threads.ids_of_bulk_job(job.id)
        return max((indexes[thread_id] for thread_id in written if thread_id in indexes),
                   default=-1)  # fmt: skip

    def _recorder(self, job: _Job, pace: Pace) -> _Recorder:
        return _Recorder(
            self._store,
            job,
            hold=pace.hold,
            publisher=self._publisher,
            publish_timeout_seconds=self._settings.publish_timeout_seconds,
            progress_seconds=self._settings.progress_seconds,
        )

    async def _cancelled(self, job: _Job, cursor: int) -> None:
        await self._store.finish_cancelled(job.id, not_processed=job.total - cursor, at=utc_now())
        _log.info("bulk job cancelled", job_id=job.id, processed=cursor, total=job.total)

    async def _prepare(
        self, job: _Job, start: int, lookahead: _DirectoryReads, size: int
    ) -> _Prepared:
        """Build the batch of ``size`` accounts from ``start`` (fewer where a page of
        results ends: ``page_end``): its threads, first messages, events, and the
        per-account results; nothing is written yet. The directory reads ahead as far
        again."""
        end = min(start + size, job.total, page_end(start))
        account_ids = job.account_ids[start:end]
        clock = _Stopwatch()
        accounts = await lookahead.accounts(start, end, following=size)
        clock.lap("directory_seconds")
        now = utc_now()
        results: list[Document] = []
        threads: list[Document] = []
        messages: list[Document] = []
        events: list[Envelope[Any]] = []
        for offset, account_id in enumerate(account_ids):
            if offset % 10 == 9:
                await asyncio.sleep(0)  # rendering is CPU work: yield to requests
            index = start + offset
            result: Document = {
                "index": index,
                "account_id": account_id,
                "thread_id": None,
                "reason": None,
            }
            account = accounts.get(account_id)
            if account is None or not can_access_account(
                job.principal, firm=job.principal.firm, account_id=account_id
            ):
                outcome, result["reason"] = "skipped", SKIPPED_NO_ACCOUNT
            elif not any(contact["portal_activated"] for contact in account["contacts"]):
                outcome, result["reason"] = "skipped", SKIPPED_NO_PORTAL_CONTACT
            else:
                try:
                    thread, message, thread_events = self._build(job, index, account, now)
                except (InvalidMessage, ActionForbidden) as exc:
                    outcome, result["reason"] = "failed", exc.detail
                else:
                    threads.append(thread)
                    messages.append(message)
                    events += thread_events
                    outcome, result["thread_id"] = "created", thread["_id"]
            result["outcome"] = outcome
            results.append(result)
        clock.lap("build_seconds")
        return _Prepared(
            threads=threads,
            messages=messages,
            record=BatchRecord(start=start, end=end, at=now, results=results, events=events),
            laps=clock.laps,
        )

    async def _write(self, job: _Job, batch: _Prepared, pace: Pace) -> asyncio.Task[BatchRecord]:
        """Write a built batch's messages, then start inserting its threads: returns that
        insert (with what remains to record), which runs on while the next batch's messages
        are written. Messages first: a message without its thread is invisible, a thread
        without its message would be an empty thread. The time of the two writes sizes the
        next batch."""
        clock = _Stopwatch()
        await pace.hold()
        await self._messages.insert_many_new(batch.messages)
        clock.lap("messages_seconds")

        async def threads() -> BatchRecord:
            await pace.hold()
            await self._threads.insert_new(batch.threads)
            clock.lap("threads_seconds")
            pace.written(sum(clock.laps.values()))
            _log.info("bulk batch written", job_id=job.id, start=batch.start, end=batch.end,
                      next_batch=pace.batch_size, **batch.laps, **clock.laps)  # fmt: skip
            return batch.record

        return asyncio.create_task(threads())

    def _build(
        self, job: _Job, index: int, account: Document, now: datetime
    ) -> tuple[Document, Document, list[Envelope[Any]]]:
        """The account's thread, first message and their two events (ids derived from job,
        account and kind, in account order: see ``derived_event_id``)."""
        account_id = account["account_id"]
        contacts = addressed_contacts(account, account_id, ())
        rendered = render(
            job.content,
            sender=job.sender,
            account=account,
            contact_ids=contacts,
            today=job.today,
            max_body_bytes=self._settings.max_body_bytes,
        )
        thread = new_thread_document(
            thread_id=thread_id_for(job.id, account_id),
            principal=job.principal,
            account_id=account_id,
            subject=rendered.subject,
            to_contacts=contacts,
            job_ids=[],
            reminders=rendered.reminders,
            template_id=job.template_id,
            now=now,
        )
        message = message_document(
            message_id=derived_id("message", job.id, account_id),
            thread=thread,
            author=job.author,
            internal=False,
            body=rendered.body,
            mentions=[],
            reply_to=None,
            embeds=[],
            at=now,
        ) | {"seq": 1, "client_seq": 1}
        last = preview(message)
        thread |= {
            "seq": 1,
            "client_seq": 1,
            "last_message": last,
            "last_client_message": last,
            "bulk_job_id": job.id,
        }
        events: list[Envelope[Any]] = [
            thread_created_event(
                thread,
                first_message_id=message["_id"],
                client_tasks=rendered.client_tasks,
                event_id=job.event_id(2 * index, "thread.created", account_id),
            ),
            posted_event(
                message,
                firm=job.principal.firm,
                event_id=job.event_id(2 * index + 1, "message.posted", account_id),
            ),
        ]
        return thread, message, events


class _Recorder:
    """Records written batches behind the job (each once its thread insert, handed over
    by ``writing``, is done), one recording in flight: each publishes
    the events of the batches written since the last one and waits for Kafka's
    acknowledgement, stores their results in one insert, then, at most every
    ``progress_seconds``, moves the job's progress past them. The slower Kafka or the
    storage server, the more batches each recording takes, and it never stalls the job; a
    failed recording surfaces at the next ``writing`` or at ``flush``."""

    def __init__(
        self,
        store: MongoBulkStore,
        job: _Job,
        *,
        hold: Callable[[], Awaitable[None]],
        publisher: RecordPublisher,
        publish_timeout_seconds: float,
        progress_seconds: float,
    ) -> None:
        self._hold = hold
        self._store = store
        self._job = job
        self._publisher = publisher
        self._publish_timeout_seconds = publish_timeout_seconds
        self._progress_seconds = progress_seconds
        self._unstored: list[BatchRecord] = []
        self._unprogressed: list[BatchRecord] = []
        self._threads: asyncio.Task[BatchRecord] | None = None
        self._progressed = float("-inf")
        self._task: asyncio.Task[None] | None = None

    async def writing(self, threads: asyncio.Task[BatchRecord]) -> None:
        """A batch's thread insert started: record the previous batch once its own is done."""
        previous, self._threads = self._threads, threads
        if previous is not None:
            await self._written(await previous)

    async def _written(self, batch: BatchRecord) -> None:
        """``batch``'s threads are written: record it with the next recording."""
        self._unstored.append(batch)
        if self._task is None or self._task.done():
            await self._wait()
            self._task = asyncio.create_task(self._record(final=False))

    async def flush(self) -> None:
        """Record everything written so far, progress included."""
        if self._threads is not None:
            threads, self._threads = self._threads, None
            await self._written(await threads)
        await self._wait()
        await self._record(final=True)

    async def _wait(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            await task

    async def _record(self, *, final: bool) -> None:
        clock = _Stopwatch()
        batches, self._unstored = self._unstored, []
        if batches:
            events = [event for batch in batches for event in batch.events]
            await publish_in_key_order(
                self._publisher, events, timeout_seconds=self._publish_timeout_seconds
            )
            clock.lap("publish_seconds")
            await self._hold()
            await self._store.add_batches(self._job.id, batches)
            clock.lap("results_seconds")
            self._unprogressed += batches
        due = time.monotonic() - self._progressed >= self._progress_seconds
        if self._unprogressed and (final or due):
            done, self._unprogressed = self._unprogressed, []
            counts = Counter(result["outcome"] for batch in done for result in batch.results)
            await self._hold()
            await self._store.record_batch(
                self._job.id,
                start=done[0].start,
                end=done[-1].end,
                counts={outcome: counts[outcome] for outcome in ("created", "skipped", "failed")},
            )
            self._progressed = time.monotonic()
            clock.lap("progress_seconds")
            _log.info("bulk progress recorded", job_id=self._job.id, cursor=done[-1].end,
                      **clock.laps)  # fmt: skip

    async def __aenter__(self) -> _Recorder:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            await self._wait()
            return
        for task in (self._task, self._threads):
            if task is not None:
                task.cancel()


@dataclass(frozen=True)
class _Prepared:
    """A batch built and not written yet."""

    threads: list[Document]
    messages: list[Document]
    record: BatchRecord
    """What recording it takes once it is written."""
    laps: dict[str, float]
    """Seconds of its directory read and its building."""

    @property
    def start(self) -> int:
        return self.record.start

    @property
    def end(self) -> int:
        return self.record.end


class _DirectoryReads(Protocol):
    async def accounts(self, start: int, end: int, *, following: int) -> dict[str, Document]:
        """The existing accounts of the job's ``[start, end)`` (perhaps more), by id."""

    def close(self) -> None:
        """Stop reading ahead."""


def _directory_reads(
    directory: MongoDirectory, job: _Job, cursor: int, *, firm_read_min_accounts: int
) -> _DirectoryReads:
    if job.total - cursor >= firm_read_min_accounts:
        return _WholeFirm(directory, job, cursor)
    return _Lookahead(directory, job)


class _WholeFirm:
    """The job's remaining accounts, from one query over the firm's directory, read as the
    job goes: a batch waits only until its own accounts have arrived (or the read has
    ended: those not read by then do not exist), and the read stops ``READ_AHEAD``
    accounts beyond the last batch asked for unless a batch still waits for some.

    Reading all 10,000 accounts first took 2-7 s on the local stack before the first batch;
    reading them all at once beside the first batches made the posts of those seconds
    3-4x slower (the storage server converts every document it returns). Read as the job
    goes, the directory costs the same, spread over the job (when it returns the accounts
    in about the job's order; otherwise batches wait for theirs as before)."""

    READ_AHEAD = 500
    """Accounts read beyond the last batch asked for (a few batches' worth)."""
    PAGE = 200
    """Accounts per round trip to the server."""

    def __init__(self, directory: MongoDirectory, job: _Job, cursor: int) -> None:
        self._wanted = frozenset(job.account_ids[cursor:])
        self._job = job
        self._cursor = cursor
        self._found: dict[str, Document] = {}
        self._horizon = self.READ_AHEAD
        self._waiting = 0
        self._ended = False
        self._failure: Exception | None = None
        self._arrived = asyncio.Condition()
        self._asked = asyncio.Event()
        self._read = asyncio.create_task(self._read_all(directory))

    async def _read_all(self, directory: MongoDirectory) -> None:
        accounts = directory.accounts_of_firm(self._job.principal.firm, batch_size=self.PAGE)
        try:
            async for account in accounts:
                if account["account_id"] not in self._wanted:
                    continue
                self._found[account["account_id"]] = account
                if self._waiting:
                    async with self._arrived:
                        self._arrived.notify_all()
                    await asyncio.sleep(0)  # the batch goes on if it has all it waited for
                while len(self._found) >= self._horizon and not self._waiting:
                    self._asked.clear()
                    await self._asked.wait()
        except Exception as exc:  # the waiting batch raises it (the job's pass is retried)
            self._failure = exc
        finally:
            self._ended = True
            async with self._arrived:
                self._arrived.notify_all()
            await accounts.close()

    async def accounts(self, start: int, end: int, *, following: int) -> dict[str, Document]:
        needed = self._job.account_ids[start:end]

        def ready() -> bool:
            return self._ended or all(account_id in self._found for account_id in needed)

        self._horizon = max(self._horizon, end - self._cursor + self.READ_AHEAD)
        missing = not ready()
        self._waiting += missing
        self._asked.set()
        if missing:
            try:
                async with self._arrived:
                    await self._arrived.wait_for(ready)
            finally:
                self._waiting -= 1
        if self._failure is not None:
            raise self._failure
        return {i: self._found[i] for i in needed if i in self._found}

    def close(self) -> None:
        self._read.cancel()


class _Lookahead:
    """The directory lookups of a job's next batch run while the current batch is written:
    reads never wait for the storage server's write lock, so their latency hides behind
    the writes instead of adding to every batch. Batch sizes change (``Pace``): a smaller
    batch uses part of what was fetched, a larger one fetches the rest."""

    def __init__(self, directory: MongoDirectory, job: _Job) -> None:
        self._directory = directory
        self._job = job
        self._next: tuple[int, int, asyncio.Task[dict[str, Document]]] | None = None

    async def accounts(self, start: int, end: int, *, following: int) -> dict[str, Document]:
        """The existing accounts of ``[start, end)`` (perhaps a few more); starts fetching
        the ``following`` accounts after it."""
        fetches: list[asyncio.Task[dict[str, Document]]]
        if self._next is not None and self._next[0] == start:
            fetched_end, task = self._next[1], self._next[2]
            fetches = [task] if fetched_end >= end else [task, self._fetch(fetched_end, end)]
            self._next = None
        else:
            self.close()
            fetches = [self._fetch(start, end)]
        after = min(end + following, self._job.total)
        self._next = (end, after, self._fetch(end, after)) if after > end else None
        accounts: dict[str, Document] = {}
        for fetch in fetches:
            accounts |= await fetch
        return accounts

    def _fetch(self, start: int, end: int) -> asyncio.Task[dict[str, Document]]:
        return asyncio.create_task(
            self._directory.accounts(self._job.principal.firm, self._job.account_ids[start:end])
        )

    def close(self) -> None:
        if self._next is not None:
            self._next[2].cancel()
            self._next = None


class _Stopwatch:
    """Seconds spent in each step of a batch, for its log line."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 3)
        self._last = now


CANCELLED = "The bulk message was cancelled before this account was reached."
SKIPPED_NO_ACCOUNT = "The account does not exist or you have no access to it."
SKIPPED_NO_PORTAL_CONTACT = "No contact of the account has portal access activated."


@dataclass(frozen=True)
class _Job:
    """A claimed job, decoded once."""

    id: str
    total: int
    account_ids: list[str]
    principal: Principal
    author: Author
    content: Content
    sender: Sender
    template_id: str | None
    today: date
    created_at: datetime

    def event_id(self, sequence: int, kind: str, account_id: str) -> UUID:
        """The id of the job's event ``kind`` for ``account_id``: the same on every try."""
        return derived_event_id(self.created_at, sequence, BULK_EVENTS, self.id, kind, account_id)

    @classmethod
    def of(cls, job: Document) -> _Job:
        by = job["created_by"]
        principal = Principal(
            sub=by["sub"],
            firm=job["firm"],
            kind=by["kind"],
            role=by["role"],
            perms=frozenset(by["perms"]),
            accounts=frozenset(by["accounts"]),
            name=by["name"],
        )
        sender = Sender(**job["sender"])
        return cls(
            id=job["_id"],
            total=int(job["total"]),
            account_ids=list(job["account_ids"]),
            principal=principal,
            author=Author(
                user_id=principal.sub, kind=principal.kind, name=sender.sender_name or principal.sub
            ),
            content=Content(
                subject=job["content"]["subject"],
                html=job["content"]["html"],
                client_tasks=tuple(job["content"]["client_tasks"]),
                reminders=ReminderSettings(**job["content"]["reminders"]),
            ),
            sender=sender,
            template_id=job["template_id"],
            today=date.fromisoformat(job["today"]),
            created_at=job["created_at"],
        )
