"""The one file of a ``multipart/form-data`` upload, read as the body arrives.

Starlette's form parser spools every file to a temporary file before the route runs; here
``python-multipart``'s incremental parser is fed the request stream directly, so the file
part's bytes flow on to MinIO while the client is still sending them. Metadata travels in
the query string, so the upload is authorised before a single body byte is read. Other
form fields are ignored; a second file is refused; the size limit is enforced as bytes
arrive (413), and a body cut short before its closing boundary is refused (422).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header

from threadline.documents.domain import InvalidDocument, UnsupportedUpload, UploadTooLarge

__all__ = ["MAX_BOUNDARY_BYTES", "YIELD_BYTES", "MultipartFile"]

YIELD_BYTES = 1024 * 1024
MAX_BOUNDARY_BYTES = 200
"""RFC 2046 allows 70 characters; a little slack for odd clients, and well under the 256 past
which the parser's constructor fails."""


class MultipartFile:
    """Call ``filename()`` first (reads up to the file part's headers), then ``chunks()``."""

    def __init__(self, body: AsyncIterator[bytes], content_type: str, *, max_bytes: int) -> None:
        media_type, options = parse_options_header(content_type)
        boundary = options.get(b"boundary")
        if media_type != b"multipart/form-data" or not boundary:
            raise UnsupportedUpload(
                "Upload the file as multipart/form-data (a `file` part with a filename)."
            )
        if len(boundary) > MAX_BOUNDARY_BYTES:
            raise UnsupportedUpload(
                f"The multipart boundary is longer than {MAX_BOUNDARY_BYTES} characters."
            )
        self._body = body
        self._max_bytes = max_bytes
        self._parser = MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
                "on_end": self._on_end,
            },
        )
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._filename: str | None = None
        self._in_file = False
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._received = 0
        self._complete = False

    def _on_part_begin(self) -> None:
        self._headers = {}

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = self._header_value = b""

    def _on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        raw_name = options.get(b"filename")
        if raw_name is None:
            return
        if self._filename is not None:
            raise InvalidDocument("Upload one file per request (or a zip archive).")
        try:
            self._filename = raw_name.decode()
        except UnicodeDecodeError:
            raise InvalidDocument("The file name is not valid UTF-8.") from None
        self._in_file = True

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._in_file:
            return
        self._received += end - start
        if self._received > self._max_bytes:
            raise UploadTooLarge(
                f"The file is larger than the upload limit of {self._max_bytes} bytes."
            )
        self._pending.append(data[start:end])
        self._pending_bytes += end - start

    def _on_part_end(self) -> None:
        self._in_file = False

    def _on_end(self) -> None:
        self._complete = True

    async def _feed_next(self) -> bool:
        """Parse the next body chunk; False once the body has ended (and was complete)."""
        chunk = await anext(self._body, b"")
        if not chunk:
            if not self._complete:
                raise InvalidDocument("The upload ended before the multipart body was complete.")
            return False
        try:
            self._parser.write(chunk)
        except FormParserError as exc:
            raise InvalidDocument(f"The multipart body is malformed: {exc}.") from None
        return True

    async def filename(self) -> str:
        while self._filename is None:
            if not await self._feed_next():
                raise InvalidDocument("The form has no file part (a `file` with a filename).")
        return self._filename

    async def chunks(self) -> AsyncIterator[bytes]:
        """The file's bytes in body order, coalesced into pieces of about ``YIELD_BYTES``
        (the server hands over small socket reads; every piece costs a trip downstream).
        Raises if the body turns out bad or too large."""
        while True:
            more = await self._feed_next()
            if self._pending and (self._pending_bytes >= YIELD_BYTES or not more):
                yield b"".join(self._pending)
                self._pending.clear()
                self._pending_bytes = 0
            if not more:
                return
