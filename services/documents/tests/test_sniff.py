"""Content type from the bytes, never from the client (M4, M6)."""

from __future__ import annotations

import io
import zipfile

import pytest

from threadline.documents.sniff import sniff_content_type


def a_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.txt", "a")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("head", "filename", "expected"),
    [
        (b"%PDF-1.7\n", "w2.pdf", "application/pdf"),
        (b"%PDF-1.7\n", "holiday.png", "application/pdf"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 20, "scan", "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "photo.jpg", "image/jpeg"),
        (b"GIF89a" + b"\0" * 10, "x.pdf", "image/gif"),
        ("Grüße, 1;2;3\n".encode(), "data.csv", "text/plain; charset=utf-8"),
        (
            b"MZ\x90\x00\x03\x00\x00\x00\x04\x00",
            "invoice.pdf",
            "application/vnd.microsoft.portable-executable",
        ),
        (b"\x00\x01\x02\x03", "blob.pdf", "application/octet-stream"),
        (b"", "empty.pdf", "application/octet-stream"),
    ],
)
def test_m4_type_comes_from_the_bytes(head: bytes, filename: str, expected: str) -> None:
    assert sniff_content_type(head, filename) == expected


def test_m4_the_name_only_picks_within_what_the_bytes_allow() -> None:
    archive = a_zip()
    assert sniff_content_type(archive, "files.zip") == "application/zip"
    assert sniff_content_type(archive, "files.bin") == "application/zip"
    assert sniff_content_type(archive, "letter.docx").startswith("application/vnd.openxml")


def test_m4_utf8_cut_mid_character_is_still_text() -> None:
    head = ("é" * 10).encode()[:-1]
    assert sniff_content_type(head, "notes").startswith("text/plain")
