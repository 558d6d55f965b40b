"""The MinIO/S3 adapter. The ``minio`` client is synchronous, so every call runs in a
worker thread (STYLE rule 10)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import structlog
from minio import Minio

__all__ = ["MinioBlobStore"]

_log = structlog.get_logger(__name__)


class MinioBlobStore:
    def __init__(
        self, *, endpoint: str, access_key: str, secret_key: str, bucket: str, region: str
    ) -> None:
        parts = urlsplit(endpoint)
        self._client = Minio(
            parts.netloc or parts.path,
            access_key=access_key,
            secret_key=secret_key,
            secure=parts.scheme == "https",
            region=region,
        )
        self._bucket = bucket

    async def ensure_bucket(self) -> None:
        def create_if_missing() -> None:
            if not self._client.bucket_exists(self._bucket):
                self._client.make_bucket(self._bucket)

        await asyncio.to_thread(create_if_missing)

    async def ready(self) -> bool:
        try:
            return await asyncio.to_thread(self._client.bucket_exists, self._bucket)
        except Exception:  # any failure means "not ready"; the reason is logged
            _log.warning("object storage check failed", exc_info=True)
            return False
