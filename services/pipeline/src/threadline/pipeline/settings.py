"""Pipeline settings: env prefix ``PIPELINE_``, falling back to ``THREADLINE_``."""

from pydantic_settings import SettingsConfigDict

from threadline.kit.settings import ServiceSettings

__all__ = ["Settings"]


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PIPELINE_", extra="ignore")

    service_name: str = "pipeline"
