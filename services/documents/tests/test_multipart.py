"""The streaming multipart reader: the file's bytes survive any chunking of the body, the
size limit holds as bytes arrive, and malformed bodies are refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threadline.documents.domain import InvalidDocument, UnsupportedUpload, UploadTooLarge
from threadline.documents.multipart import MultipartFile

BOUNDARY = "b0undary"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def body(content: bytes, *, filename: str = "a.pdf", before: bytes = b"") -> bytes:
    field = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'.encode()
        if before
        else b""
    )
    return (
        field
        + f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + content
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


async def chunked(data: bytes, cuts: list[int]) -> AsyncIterator[bytes]:
    start = 0
    for cut in sorted(set(cuts)):
        if start < cut < len(data):
            yield data[start:cut]
            start = cut
    yield data[start:]
    yield b""


async def read(upload: MultipartFile) -> tuple[str, bytes]:
    name = await upload.filename()
    return name, b"".join([chunk async for chunk in upload.chunks()])


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=3000), st.lists(st.integers(min_value=1, max_value=3200), max_size=8))
def test_file_bytes_survive_any_chunking(content: bytes, cuts: list[int]) -> None:
    data = body(content, before=b"x")
    upload = MultipartFile(chunked(data, cuts), CONTENT_TYPE, max_bytes=10_000)
    assert asyncio.run(read(upload)) == ("a.pdf", content)


def test_m4_size_limit_is_enforced_while_reading() -> None:
    upload = MultipartFile(chunked(body(b"x" * 101), [50]), CONTENT_TYPE, max_bytes=100)
    with pytest.raises(UploadTooLarge, match="100 bytes"):
        asyncio.run(read(upload))


def test_not_multipart_is_415() -> None:
    with pytest.raises(UnsupportedUpload):
        MultipartFile(chunked(b"raw", []), "application/pdf", max_bytes=10)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (body(b"abc")[:-10], "ended before"),
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n'.encode()
            + f"--{BOUNDARY}--\r\n".encode(),
            "no file part",
        ),
        (body(b"a")[: -len(f"--{BOUNDARY}--\r\n")] + body(b"b", filename="b.pdf")[0:], "one file"),
    ],
)
def test_malformed_bodies_are_refused(data: bytes, reason: str) -> None:
    upload = MultipartFile(chunked(data, []), CONTENT_TYPE, max_bytes=1000)
    with pytest.raises(InvalidDocument, match=reason):
        asyncio.run(read(upload))


@pytest.mark.parametrize("length", [201, 257, 300, 10_000])
async def test_an_overlong_boundary_is_refused_not_a_crash(length: int) -> None:
    """Issue 10: a boundary over 256 characters made the parser's constructor raise (500)."""
    with pytest.raises(UnsupportedUpload):
        MultipartFile(
            chunked(b"", []), f"multipart/form-data; boundary={'b' * length}", max_bytes=100
        )


async def test_a_boundary_of_200_characters_still_works() -> None:
    boundary = "b" * 200
    data = body(b"hello").replace(BOUNDARY.encode(), boundary.encode())
    file = MultipartFile(
        chunked(data, [7, 300]), f"multipart/form-data; boundary={boundary}", max_bytes=100
    )
    assert await file.filename() == "a.pdf"
    assert b"".join([chunk async for chunk in file.chunks()]) == b"hello"
