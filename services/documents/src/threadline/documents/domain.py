"""Documents domain: names, folders, permission levels, who may do what, and the error tree.
No I/O here.

::

    DocumentsError (kit ThreadlineError)
    ├── DocumentNotFound      404 — also when the caller may not see it (M3, T7)
    ├── ActionForbidden       403 — may see it, may not do this
    ├── InvalidDocument       422 — a bad name, folder or request
    │   └── UnsafeArchive     422 — a zip that is refused (M4: traversal, links, bombs…)
    ├── UploadTooLarge        413 — over the configured upload or archive size
    └── UnsupportedUpload     415 — not a multipart/form-data body
"""

from __future__ import annotations

import unicodedata
from typing import ClassVar, Literal

from threadline.kit.auth import Principal
from threadline.kit.errors import Conflict, Forbidden, InvalidRequest, NotFound, ThreadlineError
from threadline.kit.ids import Document
from threadline.kit.inputs import has_control_characters
from threadline.kit.policy import (
    MANAGE_DOCUMENTS,
    ThreadFacts,
    can_access_account,
    can_see_internal,
    can_view_thread,
)

__all__ = [
    "MAX_FOLDER_BYTES",
    "MAX_FOLDER_DEPTH",
    "MAX_NAME_BYTES",
    "ActionForbidden",
    "DocumentNotFound",
    "DocumentsError",
    "InvalidDocument",
    "Permission",
    "UnsafeArchive",
    "UnsupportedUpload",
    "UploadTooLarge",
    "check_can_modify",
    "check_can_upload",
    "check_can_view_account",
    "check_visible",
    "valid_filename",
    "valid_folder",
]

Permission = Literal["client_view", "client_view_edit"]
MAX_NAME_BYTES = 255
MAX_FOLDER_DEPTH = 20
MAX_FOLDER_BYTES = 1024


class DocumentsError(ThreadlineError):
    """Root of the documents service's expected errors."""


class DocumentNotFound(DocumentsError, NotFound):
    pass


class ActionForbidden(DocumentsError, Forbidden):
    pass


class InvalidDocument(DocumentsError, InvalidRequest):
    pass


class UploadInProgress(DocumentsError, Conflict):
    pass


class UnsafeArchive(InvalidDocument):
    pass


class UploadTooLarge(DocumentsError):
    status: ClassVar[int] = 413
    title: ClassVar[str] = "Content too large"


class UnsupportedUpload(DocumentsError):
    status: ClassVar[int] = 415
    title: ClassVar[str] = "Unsupported media type"


_NORMALISATION_SLACK = 4
"""Raw input longer than this many times a limit is refused before any scan: NFC can shorten
decomposed text, never by that much, so the exact check after normalising still decides."""


def _check_length_first(text: str, limit: int, *, what: str) -> None:
    """Cheap, before any per-character work: a 20 MiB name never reaches the scans."""
    if len(text) > _NORMALISATION_SLACK * limit:
        raise InvalidDocument(f"The {what} is longer than {limit} bytes.")


def _check_segment(segment: str, *, what: str) -> str:
    """One path segment: a file name or one folder of a folder path."""
    _check_length_first(segment, MAX_NAME_BYTES, what=what)
    segment = unicodedata.normalize("NFC", segment.strip())
    if not segment:
        raise InvalidDocument(f"The {what} is empty.")
    if segment in {".", ".."}:
        raise InvalidDocument(f"The {what} cannot be '{segment}'.")
    if "/" in segment or "\\" in segment:
        raise InvalidDocument(f"The {what} {segment!r} cannot contain '/' or '\\'.")
    if len(segment.encode()) > MAX_NAME_BYTES:
        raise InvalidDocument(f"The {what} is longer than {MAX_NAME_BYTES} bytes.")
    if has_control_characters(segment):
        raise InvalidDocument(f"The {what} {segment!r} contains control characters.")
    return segment


def valid_filename(name: str) -> str:
    """A file name as stored: trimmed, NFC, no separators or control characters."""
    return _check_segment(name, what="file name")


def valid_folder(path: str) -> str:
    """A folder path as stored: ``/``-separated segments without outer slashes; "" is the root.

    Empty inner segments (``a//b``), ``.``/``..`` and backslashes are refused rather than
    normalised away, so a path means exactly what the caller wrote.
    """
    _check_length_first(path, MAX_FOLDER_BYTES, what="folder path")
    stripped = path.strip().strip("/")
    if not stripped:
        return ""
    if stripped.count("/") >= MAX_FOLDER_DEPTH:
        raise InvalidDocument(f"Folders nest at most {MAX_FOLDER_DEPTH} levels deep.")
    segments = [_check_segment(segment, what="folder name") for segment in stripped.split("/")]
    if len(segments) > MAX_FOLDER_DEPTH:
        raise InvalidDocument(f"Folders nest at most {MAX_FOLDER_DEPTH} levels deep.")
    folder = "/".join(segments)
    if len(folder.encode()) > MAX_FOLDER_BYTES:
        raise InvalidDocument(f"The folder path is longer than {MAX_FOLDER_BYTES} bytes.")
    return folder


def check_can_view_account(principal: Principal, account_id: str) -> None:
    """Another account's documents do not exist for the caller (404, not 403)."""
    if not can_access_account(principal, firm=principal.firm, account_id=account_id):
        raise DocumentNotFound(f"Account {account_id} has no documents you can see.")


def check_can_upload(
    principal: Principal, account_id: str, *, internal: bool, permission: Permission | None
) -> None:
    """M4: owners, admins, staff with ``manage_documents`` and access; clients into their own
    account, never internal and without choosing a permission level."""
    check_can_view_account(principal, account_id)
    if principal.is_client:
        if internal:
            raise ActionForbidden("Only firm staff can upload internal documents.")
        if permission is not None:
            raise ActionForbidden("Only firm staff set a document's permission level.")
        return
    _check_staff_manages(principal)


def _check_staff_manages(principal: Principal) -> None:
    if not (principal.is_owner_or_admin or principal.has_perm(MANAGE_DOCUMENTS)):
        raise ActionForbidden("Managing documents needs the 'manage documents' permission.")


def check_visible(
    principal: Principal, document: Document, *, thread: ThreadFacts | None = None
) -> None:
    """404 for another firm's or account's document, and for internal ones to clients (M3).

    ``thread`` — the facts of the thread the document is attached to — lets staff mentioned
    in that thread read it without access to the account (T7)."""
    reachable = (
        can_view_thread(principal, thread)
        if thread is not None
        else can_access_account(principal, firm=document["firm"], account_id=document["account_id"])
    )
    hidden = (
        document["firm"] != principal.firm
        or document.get("deleted", False)
        or not reachable
        or (document["internal"] and not can_see_internal(principal))
    )
    if hidden:
        raise DocumentNotFound(f"Document {document['_id']} does not exist.")


def check_can_modify(principal: Principal, document: Document) -> None:
    """Rename, move, delete (M4): staff who manage documents; clients only on their account's
    non-internal documents marked "client can view and edit"."""
    check_visible(principal, document)
    if principal.is_staff:
        _check_staff_manages(principal)
        return
    if document["permission"] != "client_view_edit":
        raise ActionForbidden("This document is view-only for clients.")
