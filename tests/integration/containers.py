"""Testcontainers fallback for machines with a Docker engine (never imported otherwise)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from testcontainers.kafka import KafkaContainer
from testcontainers.minio import MinioContainer
from testcontainers.mongodb import MongoDbContainer

from threadline.devtools.token import DEFAULT_LOCAL_SECRET


@contextmanager
def container_endpoints() -> Iterator[dict[str, str]]:
    with ExitStack() as stack:
        kafka = stack.enter_context(KafkaContainer("apache/kafka:4.1.1").with_kraft())
        mongo = stack.enter_context(MongoDbContainer("mongo:7"))
        minio = stack.enter_context(MinioContainer())
        s3 = minio.get_config()
        yield {
            "THREADLINE_KAFKA_BOOTSTRAP_SERVERS": kafka.get_bootstrap_server(),
            "THREADLINE_MONGODB_URL": mongo.get_connection_url(),
            "THREADLINE_S3_ENDPOINT": f"http://{s3['endpoint']}",
            "THREADLINE_S3_ACCESS_KEY": s3["access_key"],
            "THREADLINE_S3_SECRET_KEY": s3["secret_key"],
            "THREADLINE_JWT_SECRET": DEFAULT_LOCAL_SECRET,
            "THREADLINE_JWT_ISSUER": "threadline-local",
            "THREADLINE_JWT_AUDIENCE": "threadline",
        }
