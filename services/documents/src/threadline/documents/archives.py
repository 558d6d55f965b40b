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
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from threadline.documents.domain import InvalidDocument, UnsafeArchive, valid_filename, valid_folder

__all__ = ["ArchiveEntry", "ArchiveLimits", "entry_location", "open_archive", "plan_extraction"]

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


def open_archive(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise UnsafeArchive(f"The zip archive is corrupt or unreadable: {exc}.") from None


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
