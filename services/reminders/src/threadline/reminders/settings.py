"""Reminders settings: env prefix ``REMINDERS_``, falling back to ``THREADLINE_``."""

from pydantic_settings import SettingsConfigDict

from threadline.kit.settings import ServiceSettings

__all__ = ["Settings"]


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REMINDERS_", extra="ignore")

    service_name: str = "reminders"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
