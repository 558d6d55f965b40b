"""Documents HTTP routes: parse, authorise through the service, map to responses."""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import Field, with_config
from typing_extensions import TypedDict

from threadline.contracts.media import is_inline_safe
from threadline.documents.domain import MAX_FOLDER_BYTES, MAX_NAME_BYTES, Permission
from threadline.documents.multipart import MultipartFile
from threadline.documents.service import DocumentService, UploadRequest
from threadline.kit.auth import Principal
from threadline.kit.http import CurrentPrincipal, from_state, idempotency_key_header, mark_replayed
from threadline.kit.ids import Document
from threadline.kit.inputs import RequestModel
from threadline.kit.limits import body_limit
from threadline.kit.responses import RESPONSE_CONFIG, Timestamp

__all__ = ["ROUTERS"]

router = APIRouter(prefix="/v1", tags=["documents"])
CONTENT_SECURITY_POLICY = "default-src 'none'; sandbox"
"""On every file served: nothing it references loads, and it runs in an opaque origin."""


def _max_upload_bytes(request: Request) -> int:
    return int(request.app.state.runtime.settings.max_upload_bytes)


DocumentServiceDep = Annotated[DocumentService, Depends(from_state("documents", DocumentService))]
MaxUploadBytes = Annotated[int, Depends(_max_upload_bytes)]


@with_config(RESPONSE_CONFIG)
class Uploader(TypedDict):
    user_id: str
    kind: Literal["staff", "client"]


@with_config(RESPONSE_CONFIG)
class DocumentView(TypedDict):
    """A document's metadata; ``internal`` only for staff (clients never see internal ones)."""

    id: str
    account_id: str
    folder: str
    filename: str
    content_type: str
    size: int
    sha256: str
    permission: Permission
    internal: NotRequired[bool]
    thread_id: str | None
    inline: bool
    uploaded_by: Uploader
    uploaded_at: Timestamp
    download: str


@with_config(RESPONSE_CONFIG)
class DocumentList(TypedDict):
    documents: list[DocumentView]


@with_config(RESPONSE_CONFIG)
class FolderList(TypedDict):
    folders: list[str]


@with_config(RESPONSE_CONFIG)
class DownloadLink(TypedDict):
    url: str
    expires_at: Timestamp


def document_view(document: Document, principal: Principal) -> DocumentView:
    view: DocumentView = {
        "id": document["_id"],
        "account_id": document["account_id"],
        "folder": document["folder"],
        "filename": document["filename"],
        "content_type": document["content_type"],
        "size": document["size"],
        "sha256": document["sha256"],
        "permission": document["permission"],
        "internal": document["internal"],
        "thread_id": document["thread_id"],
        "inline": is_inline_safe(document["content_type"]),
        "uploaded_by": document["uploaded_by"],
        "uploaded_at": document["uploaded_at"],
        "download": f"/v1/documents/{document['_id']}/content",
    }
    if principal.is_client:
        view.pop("internal")
    return view


class DocumentChange(RequestModel):
    filename: str | None = Field(
        default=None, max_length=MAX_NAME_BYTES, description="New file name (rename)."
    )
    folder: str | None = Field(
        default=None,
        max_length=MAX_FOLDER_BYTES,
        description="New folder path (move); '' = root.",
    )


MULTIPART_OVERHEAD_BYTES = 64 * 1024
"""Boundaries and part headers around the file, on top of the upload limit."""


def upload_body_budget(settings: Any) -> int:
    return int(settings.max_upload_bytes) + MULTIPART_OVERHEAD_BYTES


FolderQuery = Annotated[str, Query(max_length=MAX_FOLDER_BYTES)]


@router.post(
    "/accounts/{account_id}/documents",
    status_code=status.HTTP_201_CREATED,
    summary="Upload a file (multipart/form-data, field `file`); zips are extracted (M4).",
    dependencies=[
        body_limit(
            upload_body_budget,
            detail_for=lambda settings: (
                f"The file is larger than the upload limit of {settings.max_upload_bytes} bytes."
            ),
        )
    ],
)
async def upload(
    *,
    request: Request,
    response: Response,
    account_id: str,
    principal: CurrentPrincipal,
    service: DocumentServiceDep,
    max_bytes: MaxUploadBytes,
    folder: FolderQuery = "",
    thread_id: Annotated[str | None, Query(max_length=200)] = None,
    internal: bool = False,
    permission: Permission | None = None,
    extract: Annotated[bool, Query(description="Extract zip archives (default).")] = True,
    idempotency_key: Annotated[
        str | None,
        idempotency_key_header(
            "Makes a retried upload safe: the same key (per uploader and account) answers "
            "the documents the first try stored, with `Idempotent-Replayed: true`, without "
            "storing the file again; 409 while that first try is still running."
        ),
    ] = None,
) -> DocumentList:
    plan = await service.authorize_upload(
        principal,
        UploadRequest(
            account_id=account_id,
            folder=folder,
            thread_id=thread_id,
            internal=internal,
            permission=permission,
            extract=extract,
        ),
    )
    file = MultipartFile(
        request.stream(), request.headers.get("content-type", ""), max_bytes=max_bytes
    )
    if idempotency_key is None:
        documents = await service.upload(principal, plan, file)
    else:
        documents, replayed = await service.upload_once(principal, plan, file, key=idempotency_key)
        mark_replayed(response, replayed)
    return {"documents": [document_view(document, principal) for document in documents]}


@router.get("/accounts/{account_id}/documents", summary="Documents of a folder (M4).")
async def list_folder(
    account_id: str,
    principal: CurrentPrincipal,
    service: DocumentServiceDep,
    folder: FolderQuery = "",
    recursive: bool = False,
) -> DocumentList:
    documents = await service.list_folder(principal, account_id, folder=folder, recursive=recursive)
    return {"documents": [document_view(document, principal) for document in documents]}


@router.get("/accounts/{account_id}/folders", summary="Folders holding documents you can see.")
async def folders(
    account_id: str, principal: CurrentPrincipal, service: DocumentServiceDep
) -> FolderList:
    return {"folders": await service.folders(principal, account_id)}


@router.get("/threads/{thread_id}/documents", summary="A thread's documents tab (M4).")
async def thread_documents(
    thread_id: str, principal: CurrentPrincipal, service: DocumentServiceDep
) -> DocumentList:
    documents = await service.list_thread(principal, thread_id)
    return {"documents": [document_view(document, principal) for document in documents]}


@router.get("/documents/{document_id}", summary="A document's metadata.")
async def get_document(
    document_id: str, principal: CurrentPrincipal, service: DocumentServiceDep
) -> DocumentView:
    return document_view(await service.get(principal, document_id), principal)


@router.get(
    "/documents/{document_id}/content",
    summary="Download, streamed.",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The file's bytes, with its own content type.",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def download(
    document_id: str, principal: CurrentPrincipal, service: DocumentServiceDep
) -> StreamingResponse:
    """Only script-free raster images are served inline; every other type (SVG, HTML, XML,
    PDF…) downloads as an attachment. The sandbox CSP and ``nosniff`` keep even a mislabelled
    file from running in the service's origin."""
    document, blob = await service.open_download(principal, document_id)
    disposition = "inline" if is_inline_safe(document["content_type"]) else "attachment"
    headers = {
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(document['filename'])}",
        "Content-Length": str(blob.size),
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-store",
    }
    return StreamingResponse(blob.chunks(), media_type=document["content_type"], headers=headers)


@router.post("/documents/{document_id}/download-url", summary="A short-lived presigned link.")
async def download_url(
    document_id: str, principal: CurrentPrincipal, service: DocumentServiceDep
) -> DownloadLink:
    link = await service.download_url(principal, document_id)
    return {"url": link["url"], "expires_at": link["expires_at"]}


@router.patch("/documents/{document_id}", summary="Rename and/or move a document (M4).")
async def change(
    document_id: str,
    body: DocumentChange,
    principal: CurrentPrincipal,
    service: DocumentServiceDep,
) -> DocumentView:
    document = await service.change(
        principal, document_id, filename=body.filename, folder=body.folder
    )
    return document_view(document, principal)


@router.delete(
    "/documents/{document_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a document; its thread message shows it as removed (M4).",
)
async def delete(
    document_id: str, principal: CurrentPrincipal, service: DocumentServiceDep
) -> Response:
    await service.delete(principal, document_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


ROUTERS = (router,)
