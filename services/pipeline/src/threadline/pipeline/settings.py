"""Pipeline settings: env prefix ``PIPELINE_``, falling back to ``THREADLINE_``."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from threadline.kit.settings import ServiceSettings

__all__ = ["Settings"]


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PIPELINE_", extra="ignore")

    service_name: str = "pipeline"
    unknown_thread_wait_seconds: float = Field(
        default=3.0,
        ge=0,
        le=30,
        description="How long linking waits for a thread messaging just created to reach "
        "pipeline's projection before answering 404.",
    )
