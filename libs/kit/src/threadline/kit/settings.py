"""Settings shared by every service, composed into each service's own ``Settings``.

Each service reads its own env prefix (``MESSAGING_``…) first and falls back to the shared
``THREADLINE_`` prefix, so one set of variables configures the whole local stack while a
single service can still be pointed elsewhere.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

__all__ = ["PLACEHOLDER_SECRETS", "ServiceSettings"]

#: Secrets that are fine on a laptop and fatal anywhere else.
PLACEHOLDER_SECRETS = frozenset(
    {
        "",
        "changeme",
        "change-me",
        "secret",
        "minioadmin",
        "local-dev-secret-not-for-production-use-0000",
        "threadline-local-secret",
    }
)


class ServiceSettings(BaseSettings):
    """Infrastructure settings every service needs. Subclass and set ``env_prefix``."""

    model_config = SettingsConfigDict(extra="ignore", env_prefix="THREADLINE_")

    env: Literal["local", "test", "production"] = Field(
        default="production",
        description="`local`/`test` allow dev secrets; `production` refuses them.",
    )
    service_name: str = "threadline"
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_provision_topics: bool = Field(
        default=True,
        description="Create the catalogue's topics and this service's dead-letter topic at "
        "start-up, and grow any with fewer than `kafka_topic_partitions` partitions.",
    )
    kafka_topic_partitions: int = Field(default=6, ge=1, le=1000)
    kafka_topic_prefix: str = Field(
        default="",
        max_length=100,
        pattern=r"^[A-Za-z0-9._-]*$",
        description="Put before every topic name this service uses (e.g. `staging.`), so "
        "several installations can share one Kafka cluster; every service and consumer of "
        "one installation must use the same prefix.",
    )
    kafka_topic_replication_factor: int | None = Field(
        default=None, ge=1, description="For created topics; default: brokers, at most 3."
    )
    mongodb_url: str = "mongodb://127.0.0.1:27017"
    mongodb_batch_url: str | None = Field(
        default=None,
        description="Where background batch work (bulk message jobs) reaches the same "
        "MongoDB database, when not through `mongodb_url`: the local stack serves this "
        "address's writes at a lower CPU priority than the requests'.",
    )
    mongodb_database: str = ""
    mongodb_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        le=120,
        description=(
            "How long a request waits for MongoDB to be reachable (server selection, "
            "connecting) before it answers 503 with Retry-After."
        ),
    )
    mongodb_socket_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description=(
            "Longest wait for one MongoDB answer on an open connection (a hung server): the "
            "request then answers 503. Above the slowest legitimate query."
        ),
    )
    readiness_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        le=30,
        description="Each `/readyz` check (MongoDB ping, Kafka, …) counts as failed after this.",
    )
    dependency_retry_after_seconds: int = Field(
        default=5,
        ge=1,
        le=3600,
        description="`Retry-After` of the 503 answered while a dependency is unavailable.",
    )
    jwt_secret: SecretStr | None = Field(default=None, description="HS256 key (local use).")
    jwt_public_key: str | None = Field(default=None, description="RS256 PEM public key.")
    jwt_jwks_url: str | None = Field(default=None, description="RS256 JWKS endpoint.")
    jwt_issuer: str = "threadline"
    jwt_audience: str = "threadline"
    consumer_group: str = Field(
        default="", description="Kafka consumer group; empty means `threadline-<service>`."
    )
    outbox_relay_interval_seconds: float = Field(default=2.0, gt=0)
    outbox_relay_grace_seconds: float = Field(
        default=5.0, ge=0, description="Pending events younger than this are left to the writer."
    )
    consumer_start: Literal["earliest", "latest"] = Field(
        default="earliest",
        description=(
            "Where a consumer group without committed offsets starts: `earliest` replays the "
            "topics to build projections (production); `latest` suits throwaway groups (tests)."
        ),
    )
    consumer_max_attempts: int = Field(
        default=5, ge=1, description="Tries of a handler failing for an unknown reason."
    )
    consumer_backoff_seconds: float = Field(default=0.2, ge=0)
    consumer_max_backoff_seconds: float = Field(default=30.0, gt=0)
    consumer_transient_retry_seconds: float = Field(
        default=300.0,
        gt=0,
        description=(
            "How long a transient failure (dependency down) is retried in place before the "
            "record is redelivered (it is never skipped)."
        ),
    )
    thread_projection_wait_seconds: float = Field(
        default=5.0,
        ge=0,
        le=30,
        description=(
            "How long a service projecting threads waits for a thread id it does not know yet "
            "(just created in messaging) before answering 404."
        ),
    )
    processed_events_retention_hours: float = Field(
        default=336.0,
        gt=0,
        description=(
            "How long consumed event ids are kept for deduplication. MUST exceed the Kafka "
            "topics' retention (168 h by default), or a redelivered old event would be "
            "applied again."
        ),
    )
    shutdown_deadline_seconds: float = Field(
        default=10.0,
        gt=0,
        le=120,
        description=(
            "After SIGTERM and the last request: time to stop consuming and drain the outbox. "
            "Give uvicorn `--timeout-graceful-shutdown` for the requests, and the container "
            "manager a stop grace period above both."
        ),
    )
    log_level: str = "INFO"
    max_request_body_bytes: int = Field(
        default=64 * 1024,
        gt=0,
        description=(
            "Body limit of routes that declare none (413 beyond it, before parsing); message "
            "and upload routes declare their own."
        ),
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        shared_env = EnvSettingsSource(settings_cls, env_prefix="THREADLINE_")
        return init_settings, env_settings, shared_env, dotenv_settings, file_secret_settings

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> ServiceSettings:
        if self.env in {"local", "test"}:
            return self
        if self.jwt_secret is None and not (self.jwt_public_key or self.jwt_jwks_url):
            raise ValueError(
                "no JWT key configured: set JWT_PUBLIC_KEY, JWT_JWKS_URL or JWT_SECRET"
            )
        if self.jwt_secret is not None:
            secret = self.jwt_secret.get_secret_value()
            if secret.lower() in PLACEHOLDER_SECRETS or len(secret) < 32:
                raise ValueError(
                    "JWT_SECRET is a placeholder or shorter than 32 characters; "
                    "outside local mode use a real secret or an RS256 key"
                )
        for name, value in self._extra_secrets().items():
            if value.lower() in PLACEHOLDER_SECRETS:
                raise ValueError(
                    f"{name} is a placeholder secret; set a real one outside local mode"
                )
        return self

    def _extra_secrets(self) -> dict[str, str]:
        """Service-specific secrets to check for placeholders (override in subclasses)."""
        return {}

    @property
    def database_name(self) -> str:
        return self.mongodb_database or f"threadline_{self.service_name}"
