"""Zip uploads on real servers (M4): extracted into the chosen folder, safely, or not at all.

Every refusal is a 422 (413 for size) problem with a useful detail, and leaves no object in
MinIO and no document behind.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import zipfile

import pytest

from ..conftest import ServiceFactory
from .conftest import PDF, PNG, Docs, documents_service, zip_of

pytestmark = pytest.mark.integration


async def refused(docs: Docs, archive: bytes, *, status: int = 422, expect: str) -> None:
    response = await docs.upload("manager", archive, filename="upload.zip")
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert expect in response.json()["detail"], response.json()["detail"]
    assert await docs.staged_objects() == [], "M4: nothing half-extracted"
    assert await docs.listing("owner", recursive=True) == []


async def test_m4_zip_is_extracted_into_the_chosen_folder(docs: Docs) -> None:
    report = PDF + os.urandom(50_000)
    archive = zip_of(
        {
            "2025/w2.pdf": report,
            "2025/receipts/lunch.png": PNG,
            "readme.txt": b"hello",
            "empty-dir/": b"",
            "__MACOSX/2025/._w2.pdf": b"\0resource fork",
        }
    )
    response = await docs.upload("manager", archive, filename="tax.zip", folder="Clients")
    assert response.status_code == 201, response.text
    stored = {(d["folder"], d["filename"]): d for d in response.json()["documents"]}
    assert set(stored) == {
        ("Clients/2025", "w2.pdf"),
        ("Clients/2025/receipts", "lunch.png"),
        ("Clients", "readme.txt"),
    }
    w2 = stored["Clients/2025", "w2.pdf"]
    assert w2["content_type"] == "application/pdf"
    assert w2["sha256"] == hashlib.sha256(report).hexdigest() and w2["size"] == len(report)
    assert stored["Clients/2025/receipts", "lunch.png"]["inline"] is True
    downloaded = await docs.call("client", "GET", w2["download"])
    assert downloaded.content == report
    assert len(await docs.staged_objects()) == 3


async def test_m4_zip_can_be_kept_as_one_file(docs: Docs) -> None:
    archive = zip_of({"a.txt": b"a"})
    document = await docs.uploaded("manager", archive, filename="keep.zip", extract=False)
    assert document["content_type"] == "application/zip" and document["filename"] == "keep.zip"


async def test_m4_office_files_are_not_extracted(docs: Docs) -> None:
    docx = zip_of({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w:document/>"})
    document = await docs.uploaded("manager", docx, filename="letter.docx")
    assert document["filename"] == "letter.docx"
    assert document["content_type"].startswith("application/vnd.openxmlformats")


@pytest.mark.parametrize(
    ("entry", "expect"),
    [
        ("../../etc/cron.d/evil", "climbs out"),
        ("docs/../../evil.txt", "climbs out"),
        ("/etc/passwd", "absolute"),
        ("C:/Windows/evil.dll", "absolute"),
        ("docs\\..\\evil.txt", "backslash"),
    ],
)
async def test_m4_zip_path_traversal_is_refused(docs: Docs, entry: str, expect: str) -> None:
    await refused(docs, zip_of({"fine.txt": b"ok", entry: b"owned"}), expect=expect)


async def test_m4_zip_symlinks_are_refused(docs: Docs) -> None:
    link = zipfile.ZipInfo("passwd")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive = _with_entry(link, b"/etc/passwd")
    await refused(docs, archive, expect="symbolic link")


async def test_m4_encrypted_zip_is_refused(docs: Docs) -> None:
    """``zipfile`` cannot encrypt, so the archive gets the bit encrypting tools set: general
    purpose flag bit 0, in the local and the central directory header."""
    archive = bytearray(zip_of({"secret.pdf": PDF}))
    for signature, flag_offset in [(b"PK\x03\x04", 6), (b"PK\x01\x02", 8)]:
        archive[archive.index(signature) + flag_offset] |= 0x1
    await refused(docs, bytes(archive), expect="encrypted")


async def test_m4_zip_bomb_by_compression_ratio_is_refused(docs: Docs) -> None:
    bomb = zip_of({"zeros.bin": b"\0" * (30 * 1024 * 1024)})
    assert len(bomb) < 100_000
    await refused(docs, bomb, expect="zip bomb")


async def test_m4_zip_bomb_by_total_size_is_refused(
    start_service: ServiceFactory, run_id: str
) -> None:
    small = await documents_service(start_service, run_id, zip_max_total_bytes=1024 * 1024)
    archive = zip_of({f"part{i}.bin": os.urandom(400_000) for i in range(3)})
    await refused(small, archive, expect="expands to")


async def test_m4_zip_with_too_many_entries_is_refused(
    start_service: ServiceFactory, run_id: str
) -> None:
    small = await documents_service(start_service, run_id, zip_max_entries=5)
    await refused(small, zip_of({f"f{i}.txt": b"x" for i in range(6)}), expect="6 entries")
    five = zip_of({f"f{i}.txt": b"x" for i in range(5)})
    accepted = await small.upload("manager", five, filename="ok.zip")
    assert accepted.status_code == 201 and len(accepted.json()["documents"]) == 5


async def test_m4_corrupt_zip_is_refused(docs: Docs) -> None:
    archive = zip_of({"a.txt": b"a" * 1000, "b.txt": b"b" * 1000})
    await refused(docs, archive[: len(archive) // 2], expect="corrupt")


async def test_m4_zip_failing_midway_leaves_nothing_extracted(docs: Docs) -> None:
    """The first entry is stored before the second turns out corrupt: it must be removed."""
    good = os.urandom(200_000)
    damaged = bytearray(
        zip_of({"1-good.bin": good, "2-bad.txt": b"payload " * 5000}, compresslevel=1)
    )
    second = damaged.rfind(b"2-bad.txt", 0, len(damaged) - 200)  # local header's name
    damaged[second + 200] ^= 0xFF  # flip a byte of the second entry's compressed data
    await refused(docs, bytes(damaged), expect="'2-bad.txt' is corrupt")


def _with_entry(info: zipfile.ZipInfo, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("fine.txt", b"ok")
        archive.writestr(info, data)
    return buffer.getvalue()
