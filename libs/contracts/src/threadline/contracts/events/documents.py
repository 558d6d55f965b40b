"""Documents events: files stored for a client account, some of them attached to threads (M4).

Keyed by account id because a document belongs to the account's documents first and to a
thread only optionally; messaging reacts to the ones that carry a ``thread_id``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from threadline.contracts.envelope import EventData
from threadline.contracts.events.common import AccountId, Actor, Id
from threadline.contracts.extensible import Extensible
from threadline.contracts.registry import register

__all__ = ["DocumentDeleted", "DocumentUploaded", "Permission"]

Permission = Annotated[Literal["client_view", "client_view_edit"], Extensible]
"""What the client may do with a document: view it, or view and edit it (M4)."""

_DocumentId = Annotated[Id, Field(description="Document id.", examples=["doc_w2_2025"])]


@register
class DocumentUploaded(EventData):
    """A file was stored (zip archives arrive as one event per extracted file, M4)."""

    event_type = "documents.document.uploaded"
    key_field = "account_id"

    document_id: _DocumentId
    account_id: AccountId
    folder: str = Field(
        description="Folder path in the client's documents, `/`-separated; empty for the root.",
        examples=["Tax returns/2025"],
    )
    filename: str = Field(
        min_length=1, description="File name as uploaded.", examples=["w2-2025.pdf"]
    )
    content_type: str = Field(description="Media type.", examples=["application/pdf"])
    size: int = Field(ge=0, description="Size in bytes.", examples=[48213])
    sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="Hex SHA-256 of the content, for deduplication and integrity checks.",
        examples=["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
    )
    permission: Permission = Field(
        description="Client permission level (M4).", examples=["client_view"]
    )
    internal: bool = Field(
        description="Internal attachment: staff only, never visible to clients (M3).",
        examples=[False],
    )
    thread_id: Id | None = Field(
        default=None,
        description="Thread to attach it to; messaging posts the attachment message (M4).",
        examples=["th_lee_2025_docs"],
    )
    uploaded_by: Actor = Field(
        description="Who uploaded it.", examples=[{"user_id": "st_mia", "kind": "staff"}]
    )


@register
class DocumentDeleted(EventData):
    """A document was deleted; messaging removes it from its thread and message (M4, M11)."""

    event_type = "documents.document.deleted"
    key_field = "account_id"

    document_id: _DocumentId
    account_id: AccountId
    thread_id: Id | None = Field(
        default=None,
        description="Thread the document was attached to, if any.",
        examples=["th_lee_2025_docs"],
    )
    deleted_by: Actor | None = Field(
        default=None,
        description="Who deleted it; null when the system did (e.g. its account was removed).",
        examples=[{"user_id": "st_mia", "kind": "staff"}],
    )
    reason: Annotated[
        Literal["deleted_by_user", "message_deleted", "account_removed"], Extensible
    ] = Field(
        description=(
            "Why: deleted from the documents tab, its message was deleted (M11), "
            "or its account left the directory."
        ),
        examples=["deleted_by_user"],
    )
