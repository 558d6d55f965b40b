"""Video embeds (M5): which links embed, the player URL each becomes, and what is refused."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threadline.kit.errors import InvalidRequest
from threadline.messaging.embeds import UnsupportedEmbed, VideoEmbed, parse_video_embed

LOOM_ID = "0281766fa2d04bb788eaf19e65135184"
YOUTUBE_ID = "dQw4w9WgXcQ"
DRIVE_ID = "1AbCdEfGhIjKlMnOpQrStUvWxYz012345"
YOUTUBE_PLAYER = f"https://www.youtube-nocookie.com/embed/{YOUTUBE_ID}"
DRIVE_PLAYER = f"https://drive.google.com/file/d/{DRIVE_ID}/preview"


@pytest.mark.parametrize(
    "url",
    [
        f"https://www.loom.com/share/{LOOM_ID}",
        f"https://loom.com/share/{LOOM_ID}?sid=abc",
        f"https://www.loom.com/share/Q3-close-walkthrough-{LOOM_ID}",
        f"https://www.loom.com/embed/{LOOM_ID}",
    ],
)
def test_m5_loom_share_links_embed_the_loom_player(url: str) -> None:
    embed = parse_video_embed(url)
    assert embed == VideoEmbed(
        provider="loom", source_url=url, embed_url=f"https://www.loom.com/embed/{LOOM_ID}"
    )


@pytest.mark.parametrize(
    "url",
    [
        f"https://www.youtube.com/watch?v={YOUTUBE_ID}",
        f"https://youtube.com/watch?v={YOUTUBE_ID}&t=42s&list=PL1",
        f"https://m.youtube.com/watch?feature=share&v={YOUTUBE_ID}",
        f"https://youtu.be/{YOUTUBE_ID}",
        f"https://youtu.be/{YOUTUBE_ID}?si=tracking",
        f"https://www.youtube.com/shorts/{YOUTUBE_ID}",
        f"https://www.youtube.com/embed/{YOUTUBE_ID}",
        f"https://www.youtube.com/live/{YOUTUBE_ID}",
        f"https://www.youtube-nocookie.com/embed/{YOUTUBE_ID}",
        f"https://WWW.YOUTUBE.COM/watch?v={YOUTUBE_ID}",
    ],
)
def test_m5_youtube_links_embed_the_no_cookie_player(url: str) -> None:
    embed = parse_video_embed(url)
    assert (embed.provider, embed.embed_url) == ("youtube", YOUTUBE_PLAYER)


@pytest.mark.parametrize(
    "url",
    [
        "https://www.youtube.com/watch?v=dQw4w9WgXc",  # 10 characters
        "https://www.youtube.com/watch?v=dQw4w9WgXcQQ",  # 12 characters
        "https://www.youtube.com/watch?v=dQw4w9WgX%3C",
        f"https://www.youtube.com/watch?v={YOUTUBE_ID}&v=aaaaaaaaaaa",
        "https://www.youtube.com/watch",
        "https://www.youtube.com/",
        f"https://www.youtube.com/channel/{YOUTUBE_ID}",
        f"https://youtu.be/{YOUTUBE_ID}/extra",
        "https://youtu.be/",
    ],
)
def test_m5_youtube_links_without_a_valid_11_character_id_are_refused(url: str) -> None:
    with pytest.raises(UnsupportedEmbed, match="YouTube link names no video"):
        parse_video_embed(url)


@pytest.mark.parametrize(
    ("url", "player"),
    [
        ("https://vimeo.com/76979871", "https://player.vimeo.com/video/76979871"),
        ("https://www.vimeo.com/76979871/", "https://player.vimeo.com/video/76979871"),
        (
            "https://vimeo.com/76979871/ab12cd34ef",
            "https://player.vimeo.com/video/76979871?h=ab12cd34ef",
        ),
        ("https://player.vimeo.com/video/76979871", "https://player.vimeo.com/video/76979871"),
        (
            "https://player.vimeo.com/video/76979871?h=ab12cd34ef&badge=0",
            "https://player.vimeo.com/video/76979871?h=ab12cd34ef",
        ),
    ],
)
def test_m5_vimeo_links_embed_the_vimeo_player(url: str, player: str) -> None:
    embed = parse_video_embed(url)
    assert (embed.provider, embed.embed_url) == ("vimeo", player)


@pytest.mark.parametrize(
    "url",
    ["https://vimeo.com/channels/staffpicks", "https://vimeo.com/abc", "https://vimeo.com/"],
)
def test_m5_vimeo_links_without_a_numeric_id_are_refused(url: str) -> None:
    with pytest.raises(UnsupportedEmbed, match="Vimeo link names no video"):
        parse_video_embed(url)


@pytest.mark.parametrize(
    "url",
    [
        f"https://drive.google.com/file/d/{DRIVE_ID}/view",
        f"https://drive.google.com/file/d/{DRIVE_ID}/view?usp=sharing",
        f"https://drive.google.com/file/d/{DRIVE_ID}/edit",
        f"https://drive.google.com/file/d/{DRIVE_ID}/preview",
        f"https://drive.google.com/file/d/{DRIVE_ID}",
        f"https://drive.google.com/open?id={DRIVE_ID}",
    ],
)
def test_m5_google_drive_links_embed_the_drive_preview(url: str) -> None:
    embed = parse_video_embed(url)
    assert (embed.provider, embed.embed_url) == ("google_drive", DRIVE_PLAYER)


@pytest.mark.parametrize(
    "url",
    [
        "https://drive.google.com/drive/folders/1AbCdEfGhIjKlMnOpQrSt",
        "https://drive.google.com/open?id=short",
        "https://drive.google.com/file/d/has%2Fslash0000000/view",
    ],
)
def test_m5_google_drive_links_without_a_file_id_are_refused(url: str) -> None:
    with pytest.raises(UnsupportedEmbed, match="Google Drive link names no file"):
        parse_video_embed(url)


def test_m5_http_links_are_accepted_and_answered_with_https() -> None:
    embed = parse_video_embed(f"http://youtu.be/{YOUTUBE_ID}")
    assert embed.source_url == f"https://youtu.be/{YOUTUBE_ID}"
    assert embed.embed_url == YOUTUBE_PLAYER


def test_m5_surrounding_whitespace_is_ignored() -> None:
    assert parse_video_embed(f"  https://youtu.be/{YOUTUBE_ID}\n").embed_url == YOUTUBE_PLAYER


@pytest.mark.parametrize(
    "url",
    [
        f"https://youtube.com.evil.example/watch?v={YOUTUBE_ID}",
        f"https://evil-youtube.com/watch?v={YOUTUBE_ID}",
        f"https://youtube.co/watch?v={YOUTUBE_ID}",
        f"https://youtube.com.@evil.example/watch?v={YOUTUBE_ID}",
        f"https://youtube.com@evil.example/watch?v={YOUTUBE_ID}",
        f"https://user:pw@www.youtube.com/watch?v={YOUTUBE_ID}",
        f"https://www.youtube.com:443/watch?v={YOUTUBE_ID}",
        f"https://www.youtube.com:8080/watch?v={YOUTUBE_ID}",
        f"https://www.youtube.com./watch?v={YOUTUBE_ID}",
        f"https://evil.example/https://youtu.be/{YOUTUBE_ID}",
        f"https://evil.example/?u=https://youtu.be/{YOUTUBE_ID}",
        f"https://notloom.com/share/{LOOM_ID}",
        f"https://loom.com.evil.example/share/{LOOM_ID}",
        "https://vimeo.com.evil.example/76979871",
        f"https://docs.google.com/file/d/{DRIVE_ID}/view",
        f"https://drive.google.com.evil.example/file/d/{DRIVE_ID}/view",
        "https://www.dailymotion.com/video/x7tgad0",
    ],
)
def test_m5_look_alike_hosts_userinfo_and_ports_are_refused(url: str) -> None:
    with pytest.raises(UnsupportedEmbed, match="not from a supported video host"):
        parse_video_embed(url)


@pytest.mark.parametrize(
    "url",
    [
        f"javascript://youtu.be/{YOUTUBE_ID}",
        f"ftp://youtu.be/{YOUTUBE_ID}",
        f"data:text/html,https://youtu.be/{YOUTUBE_ID}",
        f"//youtu.be/{YOUTUBE_ID}",
        f"youtu.be/{YOUTUBE_ID}",
        f"https:youtu.be/{YOUTUBE_ID}",
    ],
)
def test_m5_links_that_are_not_https_addresses_are_refused(url: str) -> None:
    with pytest.raises(UnsupportedEmbed, match="must be an https:// address"):
        parse_video_embed(url)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        f"https://you\ttu.be/{YOUTUBE_ID}",
        f"https://youtu.be/{YOUTUBE_ID} x",
        f"https:\\\\youtu.be\\{YOUTUBE_ID}",
        f"https://youtu.be/{YOUTUBE_ID}\x00",
        "https://[::1/",
        "https://youtu.be/" + "a" * 3000,
    ],
)
def test_m5_malformed_links_are_refused(url: str) -> None:
    with pytest.raises(UnsupportedEmbed, match="not a valid web address"):
        parse_video_embed(url)


def test_m5_refusal_is_a_422_naming_the_supported_providers() -> None:
    with pytest.raises(UnsupportedEmbed) as refused:
        parse_video_embed("https://www.dailymotion.com/video/x7tgad0")
    assert isinstance(refused.value, InvalidRequest)
    assert refused.value.status == 422
    assert "Loom, YouTube, Vimeo and Google Drive" in refused.value.detail
    assert refused.value.extensions == {
        "supported_providers": ["loom", "youtube", "vimeo", "google_drive"]
    }


def test_m5_video_embed_is_immutable() -> None:
    embed = parse_video_embed(f"https://youtu.be/{YOUTUBE_ID}")
    with pytest.raises(dataclasses.FrozenInstanceError):
        embed.embed_url = "https://evil.example"  # type: ignore[misc]


PLAYER_PREFIXES = (
    "https://www.loom.com/embed/",
    "https://www.youtube-nocookie.com/embed/",
    "https://player.vimeo.com/video/",
    "https://drive.google.com/file/d/",
)
url_pieces = st.sampled_from(
    [
        "https://", "http://", "youtu.be", "www.youtube.com", "vimeo.com", "loom.com",
        "drive.google.com", "evil.example", ".", "@", ":", ":443", "/", "?", "#", "&", "=",
        "v=", "id=", "watch", "share/", "file/d/", "embed/", "%2F", "\\", " ", "<", '"',
        YOUTUBE_ID, LOOM_ID, DRIVE_ID, "76979871", "javascript:",
    ]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.lists(url_pieces, max_size=10).map("".join), st.text(max_size=40)))
def test_m5_property_any_string_is_a_player_url_on_an_allowed_host_or_a_422(url: str) -> None:
    try:
        embed = parse_video_embed(url)
    except UnsupportedEmbed as refused:
        assert refused.status == 422
        return
    assert embed.embed_url.startswith(PLAYER_PREFIXES)
    assert embed.source_url.startswith("https://")
    assert not set(embed.embed_url) & set("\"'<> \\@")
