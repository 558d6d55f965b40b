"""Reminders settings: env prefix ``REMINDERS_``, falling back to ``THREADLINE_``."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from threadline.kit.settings import ServiceSettings

__all__ = ["Settings"]


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REMINDERS_", extra="ignore")

    service_name: str = "reminders"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    smtp_connections: int = Field(
        default=4, ge=1, le=32, description="SMTP connections the mail sender keeps open."
    )
    mail_from: str = Field(
        default="Threadline <notifications@threadline.localhost>",
        description="From header and envelope sender of every e-mail.",
    )
    portal_base_url: str = Field(
        default="http://localhost:8080/portal",
        description="Client portal base URL; e-mail links are `<base>/threads/<thread id>`.",
    )
    staff_app_base_url: str = Field(
        default="http://localhost:8080/app",
        description="Staff app base URL for staff e-mails and inbox links.",
    )
    coalesce_window_seconds: float = Field(
        default=120.0,
        ge=0,
        description="Messages to one recipient in one thread within this window share one e-mail.",
    )
    day_seconds: float = Field(
        default=86_400.0,
        gt=0,
        description="Length of a reminder 'day' (Q1); shortened in tests and demos.",
    )
    scan_interval_seconds: float = Field(
        default=1.0, gt=0, description="How often due reminders and due e-mails are looked for."
    )
    claim_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A claimed reminder or e-mail is taken over by another replica after this.",
    )
    mail_retry_for_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="Transient SMTP failures are retried (with backoff) for this long.",
    )
    mail_backoff_max_seconds: float = Field(default=60.0, gt=0)
    batch_size: int = Field(default=200, ge=1, le=5000, description="Due items per scan.")
