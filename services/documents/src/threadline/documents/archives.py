"""Zip extraction rules (M4): decide from the central directory, before any byte is written,
whether an archive is safe to extract and where each file goes.

Refused with ``UnsafeArchive`` (422): unreadable or corrupt archives; entry names that are
absolute, carry a drive letter or a backslash, or climb out with ``..``; symbolic links;
encrypted entries; unsupported compression; more entries, more total uncompressed bytes or a
higher compression ratio than the limits. Declared sizes cannot be exceeded when reading
(``zipfile`` stops at the declared size and checks the CRC), so checking them here bounds
what extraction writes. macOS resource forks (``__MACOSX/``) are skipped: they are not files
the client chose.
"""

from __future__ import annotations

import re
import stat
import struct
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from threadline.documents.domain import InvalidDocument, UnsafeArchive, valid_filename, valid_folder

__all__ = [
    "ArchiveEntry",
    "ArchiveLimits",
    "check_directory",
    "entry_location",
    "open_archive",
    "plan_extraction",
]

_DRIVE = re.compile(r"^[A-Za-z]:")
_SUPPORTED = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_ENCRYPTED_FLAG = 0x1
_SKIPPED_PREFIX = "__MACOSX/"


@dataclass(frozen=True)
class ArchiveLimits:
    max_entries: int
    max_total_bytes: int
    max_ratio: float
    ratio_min_bytes: int
    """Entries smaller than this skip the per-entry ratio check (tiny files compress well)."""


@dataclass(frozen=True)
class ArchiveEntry:
    """One file to extract: its zip entry and where it lands, relative to the upload folder."""

    info: zipfile.ZipInfo
    folder: str
    filename: str


_END = struct.Struct("<4sHHHHLLH")
_END_SIGNATURE = b"PK\x05\x06"
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_ZIP64_END = struct.Struct("<4sQHHLLQQQQ")
_ZIP64_END_SIGNATURE = b"PK\x06\x06"
_CENTRAL = struct.Struct("<4s24xHHH12x")
_CENTRAL_SIGNATURE = b"PK\x01\x02"
_MAX_COMMENT = 65535
DIRECTORY_BYTES_PER_ENTRY = 4096
"""Room per entry in the central directory (names, extra fields); more is refused."""


def _corrupt(reason: str) -> UnsafeArchive:
    return UnsafeArchive(f"The zip archive is corrupt or unreadable: {reason}.")


def _central_directory(archive: BinaryIO) -> tuple[int, int, int]:
    """(start, size, declared entry count) of the central directory, from the end records."""
    archive.seek(0, 2)
    file_size = archive.tell()
    tail_size = min(file_size, _END.size + _MAX_COMMENT)
    archive.seek(file_size - tail_size)
    tail = archive.read(tail_size)
    found = tail.rfind(_END_SIGNATURE)
    if found < 0 or tail_size - found < _END.size:
        raise _corrupt("no end of central directory")
    _, _, _, _, count, size, offset, _ = _END.unpack_from(tail, found)
    end_at = file_size - tail_size + found
    if count == 0xFFFF or size == 0xFFFFFFFF or offset == 0xFFFFFFFF:
        locator_at = end_at - _ZIP64_LOCATOR.size
        record_at = locator_at - _ZIP64_END.size
        if record_at < 0:
            raise _corrupt("a zip64 archive without its end records")
        archive.seek(record_at)
        record = archive.read(_ZIP64_END.size + _ZIP64_LOCATOR.size)
        if (
            record[:4] != _ZIP64_END_SIGNATURE
            or record[_ZIP64_END.size : _ZIP64_END.size + 4] != _ZIP64_LOCATOR_SIGNATURE
        ):
            raise _corrupt("a zip64 archive without its end records")
        _, _, _, _, _, _, _, count, size, _ = _ZIP64_END.unpack_from(record)
        end_at = record_at
    if size > end_at:
        raise _corrupt("the central directory lies outside the file")
    return end_at - size, size, count


def check_directory(archive: BinaryIO, limits: ArchiveLimits) -> None:
    """Refuse an archive with too many entries before ``zipfile`` reads its directory (which
    holds every entry in memory): the declared count, the directory's size and the entries
    actually there are checked, reading one fixed-size header at a time and stopping as
    soon as the limit is passed."""
    start, size, declared = _central_directory(archive)
    at_most = f"at most {limits.max_entries} are extracted"
    too_many = UnsafeArchive(f"The archive has more than {limits.max_entries} entries; {at_most}.")
    if declared > limits.max_entries:
        raise UnsafeArchive(f"The archive has {declared} entries; {at_most}.")
    if size > limits.max_entries * DIRECTORY_BYTES_PER_ENTRY:
        raise UnsafeArchive(
            f"The archive's directory is larger than {limits.max_entries} entries need."
        )
    position, end, entries = start, start + size, 0
    while position < end:
        archive.seek(position)
        header = archive.read(_CENTRAL.size)
        if len(header) < _CENTRAL.size or header[:4] != _CENTRAL_SIGNATURE:
            raise _corrupt("a damaged central directory")
        _, name_length, extra_length, comment_length = _CENTRAL.unpack(header)
        entries += 1
        if entries > limits.max_entries:
            raise too_many
        position += _CENTRAL.size + name_length + extra_length + comment_length


def open_archive(path: Path, limits: ArchiveLimits) -> zipfile.ZipFile:
    try:
        with path.open("rb") as archive:
            check_directory(archive, limits)
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, struct.error) as exc:
        raise _corrupt(str(exc)) from None


def entry_location(name: str) -> tuple[str, str]:
    """(folder, file name) of an entry name; raises UnsafeArchive for unsafe names."""
    if "\\" in name:
        raise UnsafeArchive(f"Entry {name!r} contains a backslash.")
    if name.startswith("/") or _DRIVE.match(name):
        raise UnsafeArchive(f"Entry {name!r} is an absolute path.")
    segments = name.rstrip("/").split("/")
    if ".." in segments:
        raise UnsafeArchive(f"Entry {name!r} climbs out of the archive with '..'.")
    if any(segment in {"", "."} for segment in segments):
        raise UnsafeArchive(f"Entry {name!r} has an empty or '.' path segment.")
    try:
        return valid_folder("/".join(segments[:-1])), valid_filename(segments[-1])
    except InvalidDocument as exc:
        raise UnsafeArchive(f"Entry {name!r}: {exc.detail}") from None


def _check_entry(info: zipfile.ZipInfo, limits: ArchiveLimits) -> None:
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UnsafeArchive(f"Entry {info.filename!r} is a symbolic link.")
    if info.flag_bits & _ENCRYPTED_FLAG:
        raise UnsafeArchive(f"Entry {info.filename!r} is encrypted; upload it unencrypted.")
    if info.compress_type not in _SUPPORTED:
        raise UnsafeArchive(f"Entry {info.filename!r} uses an unsupported compression method.")
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size >= limits.ratio_min_bytes and ratio > limits.max_ratio:
        raise UnsafeArchive(
            f"Entry {info.filename!r} expands {ratio:.0f} times (limit {limits.max_ratio:g}): "
            "refused as a possible zip bomb."
        )


def plan_extraction(infos: Sequence[zipfile.ZipInfo], limits: ArchiveLimits) -> list[ArchiveEntry]:
    """Check every entry and the archive's totals; return the files to extract, in order."""
    if len(infos) > limits.max_entries:
        raise UnsafeArchive(
            f"The archive has {len(infos)} entries; at most {limits.max_entries} are extracted."
        )
    total = sum(info.file_size for info in infos)
    if total > limits.max_total_bytes:
        raise UnsafeArchive(
            f"The archive expands to {total} bytes; the limit is {limits.max_total_bytes}."
        )
    compressed = sum(info.compress_size for info in infos)
    if total >= limits.ratio_min_bytes and total > limits.max_ratio * max(compressed, 1):
        raise UnsafeArchive(
            f"The archive expands more than {limits.max_ratio:g} times its compressed size: "
            "refused as a possible zip bomb."
        )
    entries = []
    for info in infos:
        folder, filename = entry_location(info.filename)
        if info.filename.startswith(_SKIPPED_PREFIX):
            continue
        _check_entry(info, limits)
        if not info.is_dir():
            entries.append(ArchiveEntry(info=info, folder=folder, filename=filename))
    if not entries:
        raise UnsafeArchive("The archive contains no files.")
    return entries
