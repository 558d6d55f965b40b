"""Reminders app factory: ``uvicorn --factory threadline.reminders.main:create_app``."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from threadline.kit.app import ServiceRuntime, Wiring, create_service_app, periodic
from threadline.kit.directory import DIRECTORY_INDEXES, MongoDirectory, subscribe_directory
from threadline.kit.ids import utc_now
from threadline.kit.threads import ThreadProjection, subscribe_threads
from threadline.reminders.api import router
from threadline.reminders.delivery import MailDelivery
from threadline.reminders.handlers import subscribe
from threadline.reminders.mail import MailTemplates, SmtpMailer
from threadline.reminders.notify import Notifier
from threadline.reminders.schedule import ReminderService
from threadline.reminders.settings import Settings
from threadline.reminders.store import (
    STORE_INDEXES,
    MongoArmedSchedules,
    MongoFirmSettingsProjection,
    MongoInbox,
    MongoMailQueue,
    MongoThreadStore,
)
from threadline.reminders.store.directory import MongoStaffEmails

__all__ = ["create_app"]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    def wire(runtime: ServiceRuntime) -> Wiring:
        database = runtime.database
        directory = MongoDirectory(database)
        subscribe_directory(runtime.events, directory)
        firm_settings = MongoFirmSettingsProjection(database)
        thread_projection = ThreadProjection(
            database, wait_seconds=settings.thread_projection_wait_seconds
        )
        subscribe_threads(runtime.events, thread_projection)
        threads = MongoThreadStore(database, outbox=runtime.outbox)
        mails = MongoMailQueue(database)
        inbox = MongoInbox(database)
        staff_emails = MongoStaffEmails(database)
        claim_token = runtime.leases.holder  # per-item claims are this process's too
        lease = timedelta(seconds=settings.claim_lease_seconds)
        window = timedelta(seconds=settings.coalesce_window_seconds)
        reminders = ReminderService(
            threads=threads,
            armed=MongoArmedSchedules(database),
            mails=mails,
            directory=directory,
            staff_emails=staff_emails,
            day_seconds=settings.day_seconds,
            notification_delay=window,
            lease=lease,
            batch_size=settings.batch_size,
            claim_token=claim_token,
            clock=utc_now,
        )
        notifier = Notifier(
            mails=mails,
            inbox=inbox,
            directory=directory,
            staff_emails=staff_emails,
            coalesce_window=window,
            clock=utc_now,
        )
        delivery = MailDelivery(
            mails=mails,
            mailer=SmtpMailer(
                host=settings.smtp_host,
                port=settings.smtp_port,
                timeout=settings.smtp_timeout_seconds,
                connections=settings.smtp_connections,
            ),
            templates=MailTemplates(
                mail_from=settings.mail_from,
                portal_base_url=settings.portal_base_url,
                staff_app_base_url=settings.staff_app_base_url,
            ),
            firm_settings=firm_settings,
            threads=threads,
            notification_sent=reminders.notification_sent,
            lease=lease,
            retry_for=timedelta(seconds=settings.mail_retry_for_seconds),
            backoff_max_seconds=settings.mail_backoff_max_seconds,
            batch_size=settings.batch_size,
            concurrency=settings.smtp_connections,
            claim_token=claim_token,
            clock=utc_now,
        )
        subscribe(
            runtime.events,
            reminders=reminders,
            notifier=notifier,
            threads=threads,
            firm_settings=firm_settings,
        )
        every = settings.scan_interval_seconds
        return Wiring(
            state={
                "firm_settings": firm_settings,
                "reminders": reminders,
                "threads": threads,
                "thread_projection": thread_projection,
                "inbox": inbox,
                "mails": mails,
            },
            background=[
                periodic(reminders.run_due, every_seconds=every, what="reminders sent"),
                periodic(delivery.run_due, every_seconds=every, what="e-mails sent"),
            ],
        )

    return create_service_app(
        settings,
        title="Threadline reminders",
        routers=[router],
        indexes=[*DIRECTORY_INDEXES, *STORE_INDEXES],
        wire=wire,
    )
