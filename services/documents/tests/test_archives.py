"""Zip safety rules (M4), decided from the central directory before anything is written."""

from __future__ import annotations

import io
import stat
import unicodedata
import zipfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from threadline.documents.archives import ArchiveLimits, entry_location, plan_extraction
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
