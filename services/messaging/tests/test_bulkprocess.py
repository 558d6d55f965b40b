"""The bulk worker process writes through the batch MongoDB URL when one is set (P2)."""

from threadline.messaging.bulkprocess import worker_settings
from threadline.messaging.settings import Settings

REQUESTS = "mongodb://db.example:27017"
BATCH = "mongodb://batch:secret@db.example:27017/?authMechanism=PLAIN"


def settings(batch_url: str | None) -> Settings:
    return Settings(
        env="test", jwt_secret="unit-test-secret", mongodb_url=REQUESTS, mongodb_batch_url=batch_url
    )


def test_the_worker_writes_through_the_batch_url() -> None:
    assert worker_settings(settings(BATCH)).mongodb_url == BATCH


def test_without_a_batch_url_the_worker_writes_where_the_requests_do() -> None:
    assert worker_settings(settings(None)).mongodb_url == REQUESTS
