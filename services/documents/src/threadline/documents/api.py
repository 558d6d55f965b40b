"""Documents HTTP routes: parse, authorise through the service, map to responses."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from threadline.documents.domain import Permission, is_inline_image
from threadline.documents.multipart import MultipartFile
from threadline.documents.service import DocumentService, UploadRequest
from threadline.kit.auth import Principal
from threadline.kit.http import CurrentPrincipal, from_state

__all__ = ["ROUTERS"]

Document = dict[str, Any]
router = APIRouter(prefix="/v1", tags=["documents"])


def _max_upload_bytes(request: Request) -> int:
    return int(request.app.state.runtime.settings.max_upload_bytes)


DocumentServiceDep = Annotated[DocumentService, Depends(from_state("documents", DocumentService))]
MaxUploadBytes = Annotated[int, Depends(_max_upload_bytes)]


def document_view(document: Document, principal: Principal) -> Document:
    view = {
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
        "inline": is_inline_image(document["content_type"]),
        "uploaded_by": document["uploaded_by"],
        "uploaded_at": document["uploaded_at"],
        "download": f"/v1/documents/{document['_id']}/content",
    }
    if principal.is_client:
        view.pop("internal")
    return view


class DocumentChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: str | None = Field(default=None, description="New file name (rename).")
    folder: str | None = Field(default=None, description="New folder path (move); '' = root.")


@router.post(
    "/accounts/{account_id}/documents",
    status_code=status.HTTP_201_CREATED,
    summary="Upload a file (multipart/form-data, field `file`); zips are extracted (M4).",
)
async def upload(
    *,
    request: Request,
    account_id: str,
    principal: CurrentPrincipal,
    service: DocumentServiceDep,
    max_bytes: MaxUploadBytes,
    folder: str = "",
    thread_id: str | None = None,
    internal: bool = False,
    permission: Permission | None = None,
    extract: Annotated[bool, Query(description="Extract zip archives (default).")] = True,
) -> dict[str, Any]:
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
    documents = await service.upload(principal, plan, file)
    return {"documents": [document_view(document, principal) for document in documents]}


@router.get("/accounts/{account_id}/documents", summary="Documents of a folder (M4).")
async def list_folder(
    account_id: str,
    principal: CurrentPrincipal,
    service: DocumentServiceDep,
    folder: str = "",
    recursive: bool = False,
) -> dict[str, Any]:
    documents = await service.list_folder(principal, account_id, folder=folder, recursive=recursive)
    return {"documents": [document_view(document, principal) for document in documents]}


@router.get("/accounts/{account_id}/folders", summary="Folders holding documents you can see.")
async def folders(
    account_id: str, principal: CurrentPrincipal, service: DocumentServiceDep
) -> dict[str, list[str]]:
    return {"folders": await service.folders(principal, account_id)}


@router.get("/threads/{thread_id}/documents", summary="A thread's documents tab (M4).")
async def thread_documents(
    thread_id: str, principal: CurrentPrincipal, service: DocumentServiceDep
) -> dict[str, Any]:
    documents = await service.list_thread(principal, thread_id)
    return {"documents": [document_view(document, principal) for document in documents]}


@router.get("/documents/{document_id}", summary="A document's metadata.")
async def get_document(
    document_id: str, principal: CurrentPrincipal, service: DocumentServiceDep
) -> Document:
    return document_view(await service.get(principal, document_id), principal)


@router.get("/documents/{document_id}/content", summary="Download, streamed.")
async def download(
    document_id: str, principal: CurrentPrincipal, service: DocumentServiceDep
) -> StreamingResponse:
    document, blob = await service.open_download(principal, document_id)
    disposition = "inline" if is_inline_image(document["content_type"]) else "attachment"
    headers = {
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(document['filename'])}",
        "Content-Length": str(blob.size),
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-store",
    }
    return StreamingResponse(blob.chunks(), media_type=document["content_type"], headers=headers)


@router.post("/documents/{document_id}/download-url", summary="A short-lived presigned link.")
async def download_url(
    document_id: str, principal: CurrentPrincipal, service: DocumentServiceDep
) -> dict[str, Any]:
    return await service.download_url(principal, document_id)


@router.patch("/documents/{document_id}", summary="Rename and/or move a document (M4).")
async def change(
    document_id: str,
    body: DocumentChange,
    principal: CurrentPrincipal,
    service: DocumentServiceDep,
) -> Document:
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
