"""Documents on real servers: a documents app (real MinIO bucket, Kafka, MongoDB-protocol
server), tokens per kind of user, and helpers to upload and build zip archives."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ..conftest import LEE, PATEL, FirmClient, ServiceFactory, seed_directory, token_for

__all__ = ["LEE", "PATEL", "PDF", "PNG", "Docs", "documents_service", "zip_of"]


class Docs(FirmClient):
    """A firm on a running documents service, with a token for each kind of user."""

    def token(self, who: str) -> str:
        tokens: dict[str, Callable[[], str]] = {
            "owner": lambda: token_for(self.firm, role="owner", sub="st_olivia"),
            "admin": lambda: token_for(self.firm, role="admin", sub="st_adam"),
            "manager": lambda: token_for(
                self.firm, role="member", sub="st_mia", accounts=[LEE], perms=["manage_documents"]
            ),
            "member without permission": lambda: token_for(
                self.firm, role="member", sub="st_leo", accounts=[LEE]
            ),
            "manager of other account": lambda: token_for(
                self.firm,
                role="member",
                sub="st_noah",
                accounts=[PATEL],
                perms=["manage_documents"],
            ),
            "client": lambda: token_for(self.firm, kind="client", sub="ct_ann_lee", accounts=[LEE]),
            "other client": lambda: token_for(
                self.firm, kind="client", sub="ct_raj_patel", accounts=[PATEL]
            ),
            "other firm": lambda: token_for(f"{self.firm}_other", role="owner", sub="st_olivia"),
        }
        return tokens[who]()

    async def upload(
        self,
        who: str,
        content: bytes,
        *,
        filename: str = "w2-2025.pdf",
        account: str = LEE,
        declared_type: str = "application/octet-stream",
        headers: dict[str, str] | None = None,
        **params: Any,
    ) -> httpx.Response:
        params = {k: str(v).lower() if isinstance(v, bool) else v for k, v in params.items()}
        return await self.call(
            who,
            "POST",
            f"/v1/accounts/{account}/documents",
            params=params,
            headers=headers,
            files={"file": (filename, content, declared_type)},
        )

    async def uploaded(self, who: str, content: bytes, **kwargs: Any) -> dict[str, Any]:
        response = await self.upload(who, content, **kwargs)
        assert response.status_code == 201, response.text
        documents: list[dict[str, Any]] = response.json()["documents"]
        assert len(documents) == 1
        return documents[0]

    async def listing(self, who: str, **params: Any) -> list[dict[str, Any]]:
        response = await self.call(who, "GET", f"/v1/accounts/{LEE}/documents", params=params)
        assert response.status_code == 200, response.text
        return list(response.json()["documents"])

    async def staged_objects(self) -> list[str]:
        """Every object key of this firm in the bucket (to prove nothing was left behind)."""
        store = self.app.state.blobs
        return await store.keys(f"{self.firm}/")


PDF = b"%PDF-1.7\n" + b"1 0 obj << /Type /Catalog >> endobj\n" * 50 + b"%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 200


def zip_of(entries: dict[str, bytes], **options: Any) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, **options) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


async def documents_service(start_service: ServiceFactory, run_id: str, **settings: Any) -> Docs:
    """A ready documents service whose directory projection holds the demo firm (uploads
    name an existing account)."""
    app, http = await start_service("documents", **settings)
    firm = f"firm_{run_id}"
    await seed_directory([app], firm)
    return Docs(firm=firm, http=http, app=app)


@pytest.fixture
async def docs(start_service: ServiceFactory, run_id: str) -> Docs:
    return await documents_service(start_service, run_id)
