"""The MinIO/S3 adapter. The ``minio`` client is synchronous, so every call runs in a
worker thread (STYLE rule 10), and no file is ever held whole in memory.

Uploads stream: the request's chunks go through a bounded ``ChunkPipe`` to a worker thread
running ``put_object(length=-1, part_size=…)``, which sends S3 multipart parts as they fill.
The pipe is the back-pressure: when MinIO is slower than the client, the request stops
being read. Up to ``parallel_parts`` parts are sent at once (``minio`` bounds its pool with a
semaphore), so memory per upload is about ``part_size * (1 + parallel_parts + buffer_parts)``
whatever the file size. The pipe also counts and hashes (SHA-256) what passes, in the worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import IO, Any
from urllib.parse import quote, urlsplit

import structlog
import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject

__all__ = ["BlobDownload", "ChunkPipe", "MinioBlobStore", "StoredBlob"]

_log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class StoredBlob:
    size: int
    sha256: str


class _ReaderGone(Exception):
    """The consuming thread stopped (upload failed); the feeder must stop too."""


class ChunkPipe:
    """A bounded byte pipe from the event loop to one reading thread, as a file-like ``read``.

    ``feed``, ``close`` and ``fail`` run on the event loop and never block it (a full pipe is
    awaited, woken by the reader); ``read`` runs in the thread. No executor slot is held while
    waiting, so any number of concurrent uploads cannot starve the default thread pool.
    """

    def __init__(self, *, max_chunks: int, loop: asyncio.AbstractEventLoop) -> None:
        self._items: deque[bytes | BaseException | None] = deque()
        self._max = max_chunks
        self._ready = threading.Condition()
        self._loop = loop
        self._space = asyncio.Event()
        self._reader_gone = False
        self._buffer = bytearray()
        self._eof = False
        self._hash = hashlib.sha256()
        self.size = 0

    async def feed(self, chunk: bytes | None) -> None:
        """Queue a chunk (``None`` = end of data); waits while the pipe is full."""
        while True:
            self._space.clear()
            with self._ready:
                if self._reader_gone:
                    raise _ReaderGone
                if len(self._items) < self._max:
                    self._items.append(chunk)
                    self._ready.notify()
                    return
            await self._space.wait()

    async def close(self) -> None:
        await self.feed(None)

    def fail(self, error: BaseException) -> None:
        """Make the reader raise ``error`` (so the S3 multipart upload is aborted)."""
        with self._ready:
            self._items.clear()
            self._items.append(error)
            self._ready.notify()

    def reader_done(self) -> None:
        with self._ready:
            self._reader_gone = True
        self._loop.call_soon_threadsafe(self._space.set)

    def _take(self) -> bytes | BaseException | None:
        with self._ready:
            while not self._items:
                self._ready.wait()
            item = self._items.popleft()
        self._loop.call_soon_threadsafe(self._space.set)
        return item

    def read(self, size: int = -1) -> bytes:
        while not self._eof and (size < 0 or len(self._buffer) < size):
            item = self._take()
            if item is None:
                self._eof = True
            elif isinstance(item, BaseException):
                raise OSError("upload aborted") from item
            else:
                self._hash.update(item)
                self.size += len(item)
                self._buffer += item
        if size < 0:
            size = len(self._buffer)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _in_own_thread(work: Callable[[], None]) -> asyncio.Future[None]:
    """Run blocking ``work`` in a dedicated thread (not the shared executor)."""
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if finished.done():
            return
        if error is None:
            finished.set_result(None)
        else:
            finished.set_exception(error)

    def run() -> None:
        error: BaseException | None = None
        try:
            work()
        except BaseException as exc:  # handed to the awaiting coroutine
            error = exc
        loop.call_soon_threadsafe(settle, error)

    threading.Thread(target=run, name="minio-upload", daemon=True).start()
    return finished


class _HashingReader:
    """Wraps a sync file-like (a zip entry) to count and hash what ``put_object`` reads."""

    def __init__(self, head: bytes, stream: IO[bytes]) -> None:
        self._head = head
        self._stream = stream
        self._hash = hashlib.sha256(head)
        self.size = len(head)

    def read(self, size: int = -1) -> bytes:
        if self._head:
            data, self._head = (
                (self._head, b"")
                if size < 0
                else (
                    self._head[:size],
                    self._head[size:],
                )
            )
            return data
        data = self._stream.read(size)
        self._hash.update(data)
        self.size += len(data)
        return data

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


@dataclass
class BlobDownload:
    """An object being read; iterate ``chunks()`` once (it closes the connection)."""

    size: int
    _response: Any
    _chunk_bytes: int

    async def chunks(self) -> AsyncIterator[bytes]:
        """Chunks in order; the next one is read from MinIO while this one is being sent."""
        iterator = self._response.stream(self._chunk_bytes)
        ahead = asyncio.ensure_future(asyncio.to_thread(next, iterator, b""))
        try:
            while chunk := await ahead:
                ahead = asyncio.ensure_future(asyncio.to_thread(next, iterator, b""))
                yield chunk
        finally:
            if not ahead.done():
                ahead.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await ahead  # the worker thread finishes its read before we close
            self._response.close()
            self._response.release_conn()


def _http_client(timeout_seconds: float, retries: int) -> urllib3.PoolManager:
    """The ``minio`` client's defaults (pool of 10, retries of connection errors and 5xx with
    backoff) with bounded waits: ``minio`` itself waits 5 minutes per try and tries 6 times,
    so a MinIO that is down would hold a request for far longer than any client waits.
    Certificates are checked against the system's trust store (``SSL_CERT_FILE`` too)."""
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=timeout_seconds, read=timeout_seconds),
        maxsize=10,
        cert_reqs="CERT_REQUIRED",
        retries=urllib3.Retry(
            total=retries, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]
        ),
    )


class MinioBlobStore:
    def __init__(
        self,
        *,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        region: str,
        part_size: int,
        buffer_parts: int,
        parallel_parts: int,
        download_chunk_bytes: int,
        public_endpoint: str | None = None,
        timeout_seconds: float = 10.0,
        retries: int = 2,
    ) -> None:
        def client(url: str) -> Minio:
            parts = urlsplit(url)
            return Minio(
                parts.netloc or parts.path,
                access_key=access_key,
                secret_key=secret_key,
                secure=parts.scheme == "https",
                region=region,  # known region: presigning needs no request
                http_client=_http_client(timeout_seconds, retries),
            )

        self._client = client(endpoint)
        self._presigner = client(public_endpoint) if public_endpoint else self._client
        self._bucket = bucket
        self._part_size = part_size
        self._buffer_bytes = part_size * buffer_parts
        self._parallel_parts = parallel_parts
        self._download_chunk = download_chunk_bytes

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

    async def put_stream(
        self, key: str, chunks: AsyncIterator[bytes], *, content_type: str
    ) -> StoredBlob:
        """Stream ``chunks`` into ``key``; on any failure the partial upload is aborted."""
        average_chunk = 64 * 1024
        pipe = ChunkPipe(
            max_chunks=max(4, self._buffer_bytes // average_chunk), loop=asyncio.get_running_loop()
        )

        def upload() -> None:
            try:
                self._client.put_object(
                    self._bucket,
                    key,
                    pipe,  # type: ignore[arg-type]
                    length=-1,
                    part_size=self._part_size,
                    content_type=content_type,
                    num_parallel_uploads=self._parallel_parts,
                )
            finally:
                pipe.reader_done()

        uploading = _in_own_thread(upload)
        try:
            async for chunk in chunks:
                await pipe.feed(chunk)
            await pipe.close()
            await uploading
        except _ReaderGone:
            await uploading  # raises the upload's own error
            raise
        except BaseException as exc:
            pipe.fail(exc)
            await asyncio.gather(uploading, return_exceptions=True)
            raise
        return StoredBlob(size=pipe.size, sha256=pipe.hexdigest())

    async def put_reader(
        self, key: str, head: bytes, stream: IO[bytes], *, length: int, content_type: str
    ) -> StoredBlob:
        """Store ``head`` + the rest of a sync stream of known total ``length``."""
        reader = _HashingReader(head, stream)
        await asyncio.to_thread(
            self._client.put_object,
            self._bucket,
            key,
            reader,  # type: ignore[arg-type]
            length=length,
            part_size=self._part_size,
            content_type=content_type,
            num_parallel_uploads=1,
        )
        return StoredBlob(size=reader.size, sha256=reader.hexdigest())

    async def open(self, key: str) -> BlobDownload:
        response = await asyncio.to_thread(self._client.get_object, self._bucket, key)
        size = int(response.headers.get("Content-Length", 0))
        return BlobDownload(size=size, _response=response, _chunk_bytes=self._download_chunk)

    async def presigned_url(
        self, key: str, *, seconds: int, filename: str, content_type: str
    ) -> str:
        disposition = f"attachment; filename*=UTF-8''{quote(filename, safe='')}"
        return await asyncio.to_thread(
            self._presigner.presigned_get_object,
            self._bucket,
            key,
            expires=timedelta(seconds=seconds),
            response_headers={
                "response-content-disposition": disposition,
                "response-content-type": content_type,
            },
        )

    async def remove(self, key: str) -> None:
        """Idempotent: removing a missing object is not an error."""
        await asyncio.to_thread(self._client.remove_object, self._bucket, key)

    async def keys(self, prefix: str) -> list[str]:
        """Every object key under ``prefix``."""

        def list_keys() -> list[str]:
            objects = self._client.list_objects(self._bucket, prefix=prefix, recursive=True)
            return [item.object_name for item in objects if item.object_name]

        return await asyncio.to_thread(list_keys)

    async def remove_prefix(self, prefix: str) -> None:
        """Remove every object under ``prefix`` (a failed upload's staging prefix)."""
        keys = await self.keys(prefix)

        def remove_all() -> None:
            doomed = [DeleteObject(key) for key in keys]
            for error in self._client.remove_objects(self._bucket, doomed):
                _log.warning("could not remove a staged object", error=str(error))

        if keys:
            await asyncio.to_thread(remove_all)
