"""Zip safety rules (M4), decided from the central directory before anything is written."""

from __future__ import annotations

import io
import stat
import tracemalloc
import unicodedata
import zipfile
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from threadline.documents.archives import (
    ArchiveLimits,
    check_directory,
    entry_location,
    plan_extraction,
)
from threadline.documents.domain import UnsafeArchive

LIMITS = ArchiveLimits(max_entries=10, max_total_bytes=10_000, max_ratio=50, ratio_min_bytes=1000)
segment = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cc", "Cf", "Cs", "Zs"), blacklist_characters="/\\:"
    ),
    min_size=1,
    max_size=20,
).filter(lambda s: s.strip() not in {"", ".", ".."} and s == s.strip())


def infos(entries: dict[str, bytes], **compression: int) -> list[zipfile.ZipInfo]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, **compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return zipfile.ZipFile(io.BytesIO(buffer.getvalue())).infolist()


@given(st.lists(segment, min_size=1, max_size=6))
def test_m4_safe_relative_paths_map_to_folder_and_name(segments: list[str]) -> None:
    folder, filename = entry_location("/".join(segments))
    stored = [unicodedata.normalize("NFC", segment) for segment in segments]  # names are NFC
    assert filename == stored[-1]
    assert folder == "/".join(stored[:-1])


@given(st.lists(segment, max_size=3), st.lists(segment, max_size=3))
def test_m4_any_dotdot_segment_is_traversal(before: list[str], after: list[str]) -> None:
    with pytest.raises(UnsafeArchive, match="climbs out"):
        entry_location("/".join([*before, "..", *after, "x.txt"]))


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("/etc/passwd", "absolute"),
        ("C:/evil.exe", "absolute"),
        ("c:evil.exe", "absolute"),
        ("a\\..\\b.txt", "backslash"),
        ("a//b.txt", "empty"),
        ("./b.txt", "empty or '.'"),
        ("a/b\x00.txt", "control"),
    ],
)
def test_m4_unsafe_entry_names(name: str, reason: str) -> None:
    with pytest.raises(UnsafeArchive, match=reason):
        entry_location(name)


def test_m4_symlink_and_encrypted_entries_are_refused() -> None:
    link = zipfile.ZipInfo("link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with pytest.raises(UnsafeArchive, match="symbolic link"):
        plan_extraction([link], LIMITS)
    secret = zipfile.ZipInfo("secret.txt")
    secret.flag_bits |= 0x1
    with pytest.raises(UnsafeArchive, match="encrypted"):
        plan_extraction([secret], LIMITS)


@given(st.integers(min_value=1, max_value=30))
def test_m4_entry_count_limit(count: int) -> None:
    entries = infos({f"f{i}.txt": b"x" for i in range(count)})
    if count > LIMITS.max_entries:
        with pytest.raises(UnsafeArchive, match="entries"):
            plan_extraction(entries, LIMITS)
    else:
        assert len(plan_extraction(entries, LIMITS)) == count


def test_m4_total_size_and_ratio_limits() -> None:
    with pytest.raises(UnsafeArchive, match="expands to"):
        plan_extraction(infos({"big.txt": bytes(range(256)) * 50}), LIMITS)
    with pytest.raises(UnsafeArchive, match="zip bomb"):
        plan_extraction(infos({"zeros.bin": b"\0" * 9000}), LIMITS)
    tiny = plan_extraction(infos({"small.txt": b"\0" * 900}), LIMITS)
    assert [entry.filename for entry in tiny] == ["small.txt"], "tiny files skip the ratio"


def test_m4_directories_and_resource_forks_are_not_files() -> None:
    planned = plan_extraction(
        infos({"docs/": b"", "docs/a.txt": b"a", "__MACOSX/docs/._a.txt": b"fork"}), LIMITS
    )
    assert [(e.folder, e.filename) for e in planned] == [("docs", "a.txt")]
    with pytest.raises(UnsafeArchive, match="no files"):
        plan_extraction(infos({"only-a-dir/": b""}), LIMITS)


def zip_bytes(count: int, *, force_zip64: bool = False, prefix: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    buffer.write(prefix)
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for index in range(count):
            with archive.open(f"{index}.txt", "w", force_zip64=force_zip64) as entry:
                entry.write(b"x")
    return buffer.getvalue()


def with_declared_count(data: bytes, count: int) -> bytes:
    """The archive with its end record claiming ``count`` entries (a lie)."""
    end = data.rfind(b"PK\x05\x06")
    patched = bytearray(data)
    patched[end + 8 : end + 12] = count.to_bytes(2, "little") * 2
    return bytes(patched)


DIRECTORY_LIMITS = ArchiveLimits(
    max_entries=1000, max_total_bytes=10**9, max_ratio=50, ratio_min_bytes=1000
)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(lambda: zip_bytes(1001), id="declared"),
        pytest.param(lambda: with_declared_count(zip_bytes(5000), 5), id="lying count"),
        pytest.param(lambda: with_declared_count(zip_bytes(1001), 0), id="zero count"),
    ],
)
def test_m4_an_archive_with_too_many_entries_is_refused_before_zipfile_reads_it(
    data: Callable[[], bytes],
) -> None:
    with pytest.raises(UnsafeArchive, match="entries; at most 1000 are extracted"):
        check_directory(io.BytesIO(data()), DIRECTORY_LIMITS)


def test_m4_counting_entries_stops_at_the_limit_with_bounded_memory() -> None:
    """Issue 10: 100,000 entries grew memory by 55 MiB before the limit was checked."""
    data = io.BytesIO(with_declared_count(zip_bytes(100_000), 3))
    tracemalloc.start()
    try:
        with pytest.raises(UnsafeArchive):
            check_directory(data, DIRECTORY_LIMITS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 512 * 1024, peak


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(lambda: zip_bytes(1000), id="at the limit"),
        pytest.param(lambda: zip_bytes(3, force_zip64=True), id="zip64"),
        pytest.param(lambda: zip_bytes(3, prefix=b"#!/bin/sh\nexit 0\n"), id="prepended stub"),
    ],
)
def test_m4_archives_within_the_limit_pass_the_directory_check(
    data: Callable[[], bytes],
) -> None:
    check_directory(io.BytesIO(data()), DIRECTORY_LIMITS)


@pytest.mark.parametrize("data", [b"", b"PK\x05\x06", b"not a zip" * 100])
def test_m4_no_end_record_is_a_corrupt_archive(data: bytes) -> None:
    with pytest.raises(UnsafeArchive, match="corrupt"):
        check_directory(io.BytesIO(data), DIRECTORY_LIMITS)
