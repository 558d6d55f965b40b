"""File names and folder paths (M4): stored exactly as meant, or refused with a reason."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from threadline.documents.domain import InvalidDocument, valid_filename, valid_folder


def test_m4_folder_paths_are_trimmed_not_rewritten() -> None:
    assert valid_folder("") == ""
    assert valid_folder("/") == ""
    assert valid_folder(" /Tax/2025/ ") == "Tax/2025"
    assert valid_folder("Tax returns/2025") == "Tax returns/2025"


@pytest.mark.parametrize(
    "path", ["a//b", "a/../b", "..", "a/./b", "a\\b", "a/b\x07c", "/".join("a" * 21)]
)
def test_m4_bad_folders_are_refused(path: str) -> None:
    with pytest.raises(InvalidDocument):
        valid_folder(path)


@pytest.mark.parametrize("name", ["", "  ", ".", "..", "a/b", "a\\b", "x\x00.pdf", "é" * 200])
def test_m4_bad_file_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidDocument) as refused:
        valid_filename(name)
    assert refused.value.detail


@given(st.text(min_size=1, max_size=300))
def test_m4_a_valid_name_is_one_safe_segment(name: str) -> None:
    try:
        stored = valid_filename(name)
    except InvalidDocument:
        return
    assert "/" not in stored and "\\" not in stored and stored not in {".", ".."}
    assert stored == stored.strip() and 0 < len(stored.encode()) <= 255
    assert valid_filename(stored) == stored


MIB20 = 20 * 1024 * 1024


@pytest.mark.parametrize(
    ("check", "piece", "repeat"),
    [
        (valid_filename, "a", MIB20),
        (valid_folder, "a", MIB20),
        (valid_folder, "a/", MIB20 // 2),
        (valid_folder, "/", MIB20),
        (valid_filename, "e\u0301", MIB20 // 2),
    ],
    ids=["filename", "folder", "deep folder", "slashes", "decomposed"],
)
def test_issue_10_lengths_are_checked_before_any_per_character_work(
    monkeypatch: pytest.MonkeyPatch, check: Callable[[str], str], piece: str, repeat: int
) -> None:
    """A 20 MiB name blocked the event loop for seconds: the scans ran before the length
    check. Nothing longer than a few times the limit may reach normalisation or the scans."""
    scanned: list[int] = []
    real_normalize = unicodedata.normalize

    def recording_normalize(form: str, text: str) -> str:
        scanned.append(len(text))
        return real_normalize(form, text)

    monkeypatch.setattr(unicodedata, "normalize", recording_normalize)
    with pytest.raises(InvalidDocument):
        check(piece * repeat + "a")
    assert all(length <= 4 * 1024 for length in scanned), max(scanned)
