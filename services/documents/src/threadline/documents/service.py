"""Document use cases: upload (with zip extraction), list, download, rename, move, delete.

Object keys are ``<firm>/<upload id>/<document id>``: every object of one upload lives
under the upload's prefix, which is its staging area — metadata (and the
``documents.document.uploaded`` events) is written only after every object is stored, and
any failure removes the whole prefix, so a refused or broken zip leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import lzma
import tempfile
import zipfile
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import IO, Protocol
from uuid import UUID

import structlog
from pymongo.errors import DuplicateKeyError

from threadline.contracts import Envelope
from threadline.contracts.events.common import Actor
from threadline.contracts.events.documents import DocumentDeleted, DocumentUploaded
from threadline.documents.archives import (
    ArchiveEntry,
    ArchiveLimits,
    open_archive,
    plan_extraction,
)
from threadline.documents.blobs import BlobDownload, MinioBlobStore, StoredBlob
from threadline.documents.domain import (
    DocumentNotFound,
    Permission,
    UnsafeArchive,
    UploadInProgress,
    check_can_modify,
    check_can_upload,
    check_can_view_account,
    check_visible,
    valid_filename,
    valid_folder,
)
from threadline.documents.sniff import SNIFF_BYTES, ZIP, sniff_content_type
from threadline.documents.store import (
    MongoDocumentStore,
    MongoUploadLedger,
)
from threadline.kit.auth import Principal
from threadline.kit.directory import MongoDirectory
from threadline.kit.events import EventFactory
from threadline.kit.ids import Document, derived_id, new_id, stored_precision, utc_now
from threadline.kit.policy import can_see_internal, can_view_thread
from threadline.kit.threads import ThreadProjection

__all__ = ["DocumentService", "IncomingFile", "UploadRequest"]

EVENTS = EventFactory("documents")
_SPOOL_WRITE_BYTES = 1024 * 1024
_CORRUPT_ENTRY = (zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError, NotImplementedError)
_log = structlog.get_logger(__name__)
_UPLOADS = UUID("0d6c1f0e-3b7a-4f52-9c1e-8a4b2d7e5f31")
"""Namespace of upload ids derived from an ``Idempotency-Key`` (never change it)."""


@dataclass(frozen=True)
class UploadRequest:
    """Where an upload goes and how it is shared (M4)."""

    account_id: str
    folder: str = ""
    thread_id: str | None = None
    internal: bool = False
    permission: Permission | None = None
    extract: bool = True


class IncomingFile(Protocol):
    """An uploaded file as it arrives: its name, then its bytes (read once)."""

    async def filename(self) -> str: ...

    def chunks(self) -> AsyncIterator[bytes]: ...


@dataclass(frozen=True)
class _StoredFile:
    document_id: str
    folder: str
    filename: str
    content_type: str
    blob: StoredBlob


async def _peek(chunks: AsyncIterator[bytes], size: int) -> tuple[bytes, AsyncIterator[bytes]]:
    """The first ``size`` bytes (fewer for a shorter file) and an iterator over all bytes."""
    head = b""
    async for chunk in chunks:
        head += chunk
        if len(head) >= size:
            break

    async def everything() -> AsyncIterator[bytes]:
        if head:
            yield head
        async for chunk in chunks:
            yield chunk

    return head, everything()


async def _spool(chunks: AsyncIterator[bytes], path: Path) -> None:
    """Write the upload to disk in 1 MiB writes, off the event loop."""
    out: IO[bytes] = await asyncio.to_thread(path.open, "wb")
    try:
        pending = bytearray()
        async for chunk in chunks:
            pending += chunk
            if len(pending) >= _SPOOL_WRITE_BYTES:
                await asyncio.to_thread(out.write, bytes(pending))
                pending.clear()
        await asyncio.to_thread(out.write, bytes(pending))
    finally:
        await asyncio.to_thread(out.close)


def _open_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[IO[bytes], bytes]:
    try:
        stream = archive.open(info)
        return stream, stream.read(SNIFF_BYTES)
    except _CORRUPT_ENTRY as exc:
        raise UnsafeArchive(f"Entry {info.filename!r} is corrupt: {exc}.") from None


def _actor(principal: Principal) -> Actor:
    return Actor(user_id=principal.sub, kind=principal.kind)


class DocumentService:
    def __init__(
        self,
        *,
        documents: MongoDocumentStore,
        threads: ThreadProjection,
        uploads: MongoUploadLedger,
        directory: MongoDirectory,
        blobs: MinioBlobStore,
        archive_limits: ArchiveLimits,
        presigned_url_seconds: int,
        spool_dir: str | None = None,
    ) -> None:
        self._documents = documents
        self._threads = threads
        self._uploads = uploads
        self._directory = directory
        self._blobs = blobs
        self._limits = archive_limits
        self._presign_seconds = presigned_url_seconds
        self._spool_dir = spool_dir

    async def authorize_upload(self, principal: Principal, request: UploadRequest) -> UploadRequest:
        """Check an upload before its body is read; returns it with the folder normalised."""
        check_can_upload(
            principal, request.account_id, internal=request.internal, permission=request.permission
        )
        await self._check_account_exists(principal, request.account_id)
        if request.thread_id is not None:
            thread = await self._threads.facts(principal.firm, request.thread_id)
            if thread is None or thread.account_id != request.account_id:
                raise DocumentNotFound(
                    f"Thread {request.thread_id} does not exist in account {request.account_id}."
                )
        return replace(request, folder=valid_folder(request.folder))

    async def _check_account_exists(self, principal: Principal, account_id: str) -> None:
        """An account of another firm (or none) does not exist for the caller: 404, whether
        they upload, list or browse folders."""
        if await self._directory.account(principal.firm, account_id) is None:
            raise DocumentNotFound(f"Account {account_id} does not exist.")

    async def upload_once(
        self, principal: Principal, request: UploadRequest, file: IncomingFile, *, key: str
    ) -> tuple[list[Document], bool]:
        """Upload with an ``Idempotency-Key``: the upload's id is derived from the firm, the
        uploader, the account and the key, so a retry (also after a 503 whose metadata was
        stored) answers the documents the first try stored, without reading the file again;
        returns them and whether it was a replay. While the first try is still running (or
        was cut short and not yet swept), a retry is 409."""
        upload_id = derived_id(_UPLOADS, principal.firm, principal.sub, request.account_id, key)
        prefix = f"{principal.firm}/{upload_id}/"
        stored = await self._documents.of_upload(principal.firm, prefix)
        if stored:
            return stored, True
        try:
            return await self.upload(principal, request, file, upload_id=upload_id), False
        except DuplicateKeyError:  # the ledger holds this upload: another try is running
            raise UploadInProgress(
                "An upload with this Idempotency-Key is in progress (or was interrupted and "
                "is not cleaned up yet); retry later, or use a new key."
            ) from None

    async def upload(
        self,
        principal: Principal,
        request: UploadRequest,
        file: IncomingFile,
        *,
        upload_id: str | None = None,
    ) -> list[Document]:
        """Store an authorised upload: one document, or one per file of an extracted zip."""
        filename = valid_filename(await file.filename())
        head, chunks = await _peek(file.chunks(), SNIFF_BYTES)
        content_type = sniff_content_type(head, filename)
        prefix = f"{principal.firm}/{upload_id or new_id()}/"
        await self._uploads.begin(prefix, at=utc_now())  # a second try of one upload raises
        try:
            if content_type == ZIP and request.extract:
                stored = await self._extract(prefix, chunks, request.folder)
            else:
                document_id = new_id()
                blob = await self._blobs.put_stream(
                    prefix + document_id, chunks, content_type=content_type
                )
                stored = [_StoredFile(document_id, request.folder, filename, content_type, blob)]
            documents = [
                self._new_document(principal, request, item, prefix=prefix) for item in stored
            ]
        except BaseException:
            await self._blobs.remove_prefix(prefix)
            await self._uploads.finish(prefix)
            raise
        try:
            await self._documents.insert_all(
                documents, [self._uploaded_event(document) for document in documents]
            )
        except BaseException:
            await self._abandon_unless_stored(prefix)
            raise
        await self._uploads.finish(prefix)
        return documents

    async def _abandon_unless_stored(self, prefix: str) -> None:
        """After a failed metadata insert: remove the upload's objects only if no metadata
        names them. The insert may have been applied although it raised (the connection
        died after the server wrote it): removing the objects then would leave documents
        whose content is gone. When even that cannot be checked, the upload stays in the
        ledger and the sweep decides later, by the same rule."""
        try:
            if not await self._documents.any_under(prefix):
                await self._blobs.remove_prefix(prefix)
            await self._uploads.finish(prefix)
        except Exception:
            _log.warning("upload left to the sweep", prefix=prefix, exc_info=True)

    async def sweep_abandoned_uploads(self, *, older_than: timedelta) -> int:
        """Remove the objects of uploads a crash interrupted before their metadata was
        written (nothing refers to them), and of deletions a crash interrupted before the
        object went; returns how many uploads and objects were swept."""
        swept = 0
        for tombstone in await self._documents.tombstones_with_objects():
            await self._blobs.remove(tombstone["object_key"])  # idempotent
            await self._documents.mark_object_removed(tombstone["_id"])
            swept += 1
        for prefix in await self._uploads.started_before(utc_now() - older_than):
            if not await self._documents.any_under(prefix):
                await self._blobs.remove_prefix(prefix)
                swept += 1
            await self._uploads.finish(prefix)
        return swept

    async def _extract(
        self, prefix: str, chunks: AsyncIterator[bytes], folder: str
    ) -> list[_StoredFile]:
        """M4: spool the zip (it needs random access), check it whole, then store each file."""
        with tempfile.TemporaryDirectory(dir=self._spool_dir, prefix="upload-") as spool:
            path = Path(spool) / "archive.zip"
            await _spool(chunks, path)
            archive = await asyncio.to_thread(open_archive, path, self._limits)
            with archive:
                entries = plan_extraction(archive.infolist(), self._limits)
                return [
                    await self._store_entry(archive, entry, prefix, folder) for entry in entries
                ]

    async def _store_entry(
        self, archive: zipfile.ZipFile, entry: ArchiveEntry, prefix: str, folder: str
    ) -> _StoredFile:
        target = valid_folder("/".join(part for part in (folder, entry.folder) if part))
        stream, head = await asyncio.to_thread(_open_entry, archive, entry.info)
        content_type = sniff_content_type(head, entry.filename)
        document_id = new_id()
        try:
            with stream:
                blob = await self._blobs.put_reader(
                    prefix + document_id,
                    head,
                    stream,
                    length=entry.info.file_size,
                    content_type=content_type,
                )
        except _CORRUPT_ENTRY as exc:
            raise UnsafeArchive(f"Entry {entry.info.filename!r} is corrupt: {exc}.") from None
        return _StoredFile(document_id, target, entry.filename, content_type, blob)

    @staticmethod
    def _new_document(
        principal: Principal, request: UploadRequest, item: _StoredFile, *, prefix: str
    ) -> Document:
        default: Permission = "client_view_edit" if principal.is_client else "client_view"
        return {
            "_id": item.document_id,
            "firm": principal.firm,
            "account_id": request.account_id,
            "folder": item.folder,
            "filename": item.filename,
            "content_type": item.content_type,
            "size": item.blob.size,
            "sha256": item.blob.sha256,
            "permission": request.permission or default,
            "internal": request.internal,
            "thread_id": request.thread_id,
            "object_key": prefix + item.document_id,
            "upload": prefix,
            "uploaded_by": {"user_id": principal.sub, "kind": principal.kind},
            "uploaded_at": stored_precision(utc_now()),
            "deleted": False,
        }

    @staticmethod
    def _uploaded_event(document: Document) -> Envelope[DocumentUploaded]:
        return EVENTS(
            DocumentUploaded(
                document_id=document["_id"],
                account_id=document["account_id"],
                folder=document["folder"],
                filename=document["filename"],
                content_type=document["content_type"],
                size=document["size"],
                sha256=document["sha256"],
                permission=document["permission"],
                internal=document["internal"],
                thread_id=document["thread_id"],
                uploaded_by=Actor(**document["uploaded_by"]),
            ),
            firm=document["firm"],
        )

    async def get(self, principal: Principal, document_id: str) -> Document:
        document = await self._documents.get(principal.firm, document_id)
        if document is None:
            raise DocumentNotFound(f"Document {document_id} does not exist.")
        thread = None
        if document.get("thread_id") and principal.is_staff:
            thread = await self._threads.facts(principal.firm, document["thread_id"])
        check_visible(principal, document, thread=thread)
        return document

    async def list_folder(
        self, principal: Principal, account_id: str, *, folder: str, recursive: bool
    ) -> list[Document]:
        check_can_view_account(principal, account_id)
        await self._check_account_exists(principal, account_id)
        return await self._documents.list_folder(
            principal.firm,
            account_id,
            folder=valid_folder(folder),
            recursive=recursive,
            include_internal=can_see_internal(principal),
        )

    async def folders(self, principal: Principal, account_id: str) -> list[str]:
        check_can_view_account(principal, account_id)
        await self._check_account_exists(principal, account_id)
        return await self._documents.folders(
            principal.firm, account_id, include_internal=can_see_internal(principal)
        )

    async def list_thread(self, principal: Principal, thread_id: str) -> list[Document]:
        """M4: the thread's documents tab."""
        thread = await self._threads.facts(principal.firm, thread_id)
        if thread is None or not can_view_thread(principal, thread):
            raise DocumentNotFound(f"Thread {thread_id} does not exist.")
        return await self._documents.list_thread(
            principal.firm, thread_id, include_internal=can_see_internal(principal)
        )

    async def open_download(
        self, principal: Principal, document_id: str
    ) -> tuple[Document, BlobDownload]:
        document = await self.get(principal, document_id)
        return document, await self._blobs.open(document["object_key"])

    async def download_url(self, principal: Principal, document_id: str) -> Document:
        """A short-lived presigned link for large files, checked like a download."""
        document = await self.get(principal, document_id)
        url = await self._blobs.presigned_url(
            document["object_key"],
            seconds=self._presign_seconds,
            filename=document["filename"],
            content_type=document["content_type"],
        )
        expires_at = utc_now() + timedelta(seconds=self._presign_seconds)
        return {"url": url, "expires_at": expires_at}

    async def change(
        self,
        principal: Principal,
        document_id: str,
        *,
        filename: str | None,
        folder: str | None,
    ) -> Document:
        """Rename and/or move a document (M4)."""
        document = await self.get(principal, document_id)
        check_can_modify(principal, document)
        changes: Document = {}
        if filename is not None:
            changes["filename"] = valid_filename(filename)
        if folder is not None:
            changes["folder"] = valid_folder(folder)
        if changes and not await self._documents.update(document, changes):
            raise DocumentNotFound(f"Document {document_id} does not exist.")
        return document | changes

    async def delete(self, principal: Principal, document_id: str) -> None:
        document = await self.get(principal, document_id)
        check_can_modify(principal, document)
        await self._delete(document, deleted_by=_actor(principal), reason="deleted_by_user")

    async def delete_for_message(
        self, firm: str, *, thread_id: str, document_ids: list[str], deleted_by: Actor
    ) -> int:
        """M11: a deleted message takes its documents with it (only that thread's documents).

        Idempotent: documents already deleted are skipped. Returns how many were deleted.
        """
        if not document_ids:
            return 0
        documents = await self._documents.attached_to(firm, thread_id, document_ids)
        deleted = 0
        for document in documents:
            if await self._delete(document, deleted_by=deleted_by, reason="message_deleted"):
                deleted += 1
        return deleted

    async def delete_for_account(self, firm: str, account_id: str) -> int:
        """An account that left the directory takes its documents with it (idempotent)."""
        documents = await self._documents.list_folder(
            firm, account_id, folder="", recursive=True, include_internal=True
        )
        deleted = 0
        for document in documents:
            if await self._delete(document, deleted_by=None, reason="account_removed"):
                deleted += 1
        return deleted

    async def _delete(self, document: Document, *, deleted_by: Actor | None, reason: str) -> bool:
        event = EVENTS(
            DocumentDeleted(
                document_id=document["_id"],
                account_id=document["account_id"],
                thread_id=document["thread_id"],
                deleted_by=deleted_by,
                reason=reason,  # type: ignore[arg-type]
            ),
            firm=document["firm"],
        )
        if not await self._documents.mark_deleted(document, event=event):
            return False
        await self._blobs.remove(document["object_key"])
        await self._documents.mark_object_removed(document["_id"])
        return True
