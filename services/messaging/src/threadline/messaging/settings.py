"""Messaging settings: env prefix ``MESSAGING_``, falling back to ``THREADLINE_``."""

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from threadline.kit.settings import ServiceSettings

__all__ = ["Settings"]


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MESSAGING_", extra="ignore")

    service_name: str = "messaging"
    max_message_bytes: int = Field(default=64 * 1024, gt=0, description="Largest message body.")
    stream_queue_size: int = Field(
        default=1000, gt=0, description="Frames a slow stream subscriber may lag before it is cut."
    )
    stream_auth_timeout_seconds: float = Field(
        default=10.0, gt=0, description="How long a stream connection may wait to authenticate."
    )
    task_digest_seconds: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description=(
            "K4: ticks within this many seconds of a batch's first tick are posted as one "
            "'completed N of M tasks' message."
        ),
    )
    bulk_batch_size: int = Field(
        default=20,
        ge=1,
        le=100,
        description="P2: most accounts a bulk job handles per batch (small batches keep "
        "a request that arrives during one from waiting long; a batch never crosses a page "
        "of 100 results).",
    )
    bulk_min_batch_size: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="P2: fewest accounts per batch when the job's writes are slow.",
    )
    bulk_target_write_seconds: float = Field(
        default=0.08,
        gt=0,
        le=60,
        description="P2: a batch whose inserts took longer halves the next batch; "
        "a faster one grows it by a tenth of the largest size.",
    )
    bulk_latency_factor: float = Field(
        default=10,
        ge=1,
        le=100,
        description="P2: the job waits between batches while recent request latency is "
        "above this many times the latency measured without a job.",
    )
    bulk_latency_floor_seconds: float = Field(
        default=0.02,
        ge=0,
        le=10,
        description="P2: the idle latency the factor applies to is never taken below this.",
    )
    bulk_max_yield_seconds: float = Field(
        default=0.5,
        ge=0,
        le=60,
        description="P2: longest wait between batches for interactive requests "
        "(0: never wait); bounds how slow a job can get.",
    )
    bulk_max_hold_seconds: float = Field(
        default=0.05,
        ge=0,
        le=10,
        description="P2: longest a bulk job holds one storage write while interactive "
        "requests are in flight (0: never).",
    )
    bulk_pause_seconds: float = Field(
        default=0.0, ge=0, le=10, description="P2: fixed pause between a bulk job's batches."
    )
    bulk_lease_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="P2: how long a replica's claim on a bulk job lasts without renewal "
        "(another replica takes the job over after that).",
    )
    bulk_poll_seconds: float = Field(
        default=1.0, gt=0, le=60, description="P2: how often idle replicas look for bulk jobs."
    )
    bulk_worker: Literal["process", "in-process"] = Field(
        default="process",
        description="P2: where bulk jobs are worked: `process`, a child process of the app at "
        "a lower priority (requests stay fast during a job), or `in-process`, on the app's "
        "own event loop; both are paced by the app's requests.",
    )
    bulk_worker_niceness: int = Field(
        default=10, ge=0, le=19, description="P2: how much lower the bulk worker process runs."
    )
