"""Settings: the shared THREADLINE_ fallback and the refusal of placeholder secrets."""

import os

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from threadline.kit.settings import ServiceSettings

STRONG = "a" * 20 + "-real-production-secret-value"


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_", extra="ignore")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test command exports the local stack's THREADLINE_* variables: hide them here."""
    for name in list(os.environ):
        if name.startswith(("THREADLINE_", "DEMO_")):
            monkeypatch.delenv(name)


def test_service_prefix_overrides_shared_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THREADLINE_ENV", "local")
    monkeypatch.setenv("THREADLINE_KAFKA_BOOTSTRAP_SERVERS", "shared:9092")
    monkeypatch.setenv("THREADLINE_MONGODB_URL", "mongodb://shared")
    monkeypatch.setenv("DEMO_MONGODB_URL", "mongodb://own")
    settings = DemoSettings()
    assert settings.kafka_bootstrap_servers == "shared:9092"
    assert settings.mongodb_url == "mongodb://own"


@pytest.mark.parametrize(
    "secret", ["changeme", "local-dev-secret-not-for-production-use-0000", "short"]
)
def test_production_refuses_placeholder_or_short_jwt_secret(
    monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    monkeypatch.setenv("DEMO_ENV", "production")
    monkeypatch.setenv("DEMO_JWT_SECRET", secret)
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        DemoSettings()


def test_production_requires_some_jwt_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_ENV", "production")
    with pytest.raises(ValidationError, match="no JWT key"):
        DemoSettings()


def test_production_accepts_real_secret_and_local_accepts_dev_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEMO_ENV", "production")
    monkeypatch.setenv("DEMO_JWT_SECRET", STRONG)
    assert DemoSettings().jwt_secret is not None
    monkeypatch.setenv("DEMO_ENV", "local")
    monkeypatch.setenv("DEMO_JWT_SECRET", "changeme")
    assert DemoSettings().env == "local"


def test_topic_prefix_is_read_from_the_shared_variable_and_limited_to_topic_characters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("THREADLINE_ENV", "local")
    monkeypatch.setenv("THREADLINE_KAFKA_TOPIC_PREFIX", "staging.")
    assert DemoSettings().kafka_topic_prefix == "staging."
    monkeypatch.setenv("THREADLINE_KAFKA_TOPIC_PREFIX", "bad prefix/")
    with pytest.raises(ValidationError, match="kafka_topic_prefix"):
        DemoSettings()
