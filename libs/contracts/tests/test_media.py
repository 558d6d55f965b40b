"""M6 and issue 10: only script-free raster images are ever inline."""

import pytest

from threadline.contracts.media import is_inline_safe


@pytest.mark.parametrize(
    "content_type",
    ["image/png", "image/jpeg", "image/gif", "image/webp", "IMAGE/PNG", "image/png; x=1"],
)
def test_m6_raster_images_are_inline(content_type: str) -> None:
    assert is_inline_safe(content_type)


@pytest.mark.parametrize(
    "content_type",
    [
        "image/svg+xml",
        "IMAGE/SVG+XML; charset=utf-8",
        "image/svg",
        "text/html",
        "application/xhtml+xml",
        "application/xml",
        "text/xml",
        "application/pdf",
        "text/plain; charset=utf-8",
        "application/octet-stream",
        "image/x-unknown",
        "",
        "image/",
    ],
)
def test_m6_active_or_unknown_content_is_never_inline(content_type: str) -> None:
    assert not is_inline_safe(content_type)
