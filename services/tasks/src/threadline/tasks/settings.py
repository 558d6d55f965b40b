"""Tasks settings: env prefix ``TASKS_``, falling back to ``THREADLINE_``."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from threadline.kit.settings import ServiceSettings

__all__ = ["Settings"]


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TASKS_", extra="ignore")

    service_name: str = "tasks"
    thread_wait_seconds: float = Field(
        default=3.0,
        ge=0,
        le=30,
        description=(
            "How long a request naming a thread this service has not heard of yet waits for "
            "messaging's thread.created to arrive before answering 404."
        ),
    )
