"""Video links that embed in a thread (M5): Loom, YouTube, Vimeo and Google Drive.

A link is recognised only on an exact host allow-list, and the player URL is rebuilt from
the video id alone, never copied from the input: whatever else the link carried (user-info,
ports, look-alike hosts, extra query parameters) cannot reach the iframe the client renders.
``http`` links are accepted and answered with ``https``. Nothing here fetches anything.

Recognised links, and the player URL each becomes:

- Loom: ``loom.com/share/<id>`` (with or without a title slug before the id) or
  ``loom.com/embed/<id>`` → ``https://www.loom.com/embed/<id>``
- YouTube: ``youtube.com/watch?v=<id>``, ``/shorts/<id>``, ``/embed/<id>``, ``/live/<id>``,
  ``youtu.be/<id>`` → ``https://www.youtube-nocookie.com/embed/<id>`` (11-character id;
  the no-cookie host sets no tracking cookies until the video plays)
- Vimeo: ``vimeo.com/<digits>`` (``/<digits>/<hash>`` for unlisted videos) or
  ``player.vimeo.com/video/<digits>`` → ``https://player.vimeo.com/video/<digits>``
  (``?h=<hash>`` kept for unlisted videos, which do not play without it)
- Google Drive: ``drive.google.com/file/d/<id>/view`` (or ``/edit``, ``/preview``) or
  ``drive.google.com/open?id=<id>`` → ``https://drive.google.com/file/d/<id>/preview``

::

    MessagingError (domain)
    └── InvalidMessage        422
        └── UnsupportedEmbed  422 — not a link from a supported video provider
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import SplitResult, parse_qs, urlsplit

from threadline.messaging.domain import InvalidMessage

__all__ = [
    "SUPPORTED_PROVIDERS",
    "UnsupportedEmbed",
    "VideoEmbed",
    "VideoProvider",
    "parse_video_embed",
]

VideoProvider = Literal["loom", "youtube", "vimeo", "google_drive"]
SUPPORTED_PROVIDERS: Final[tuple[VideoProvider, ...]] = ("loom", "youtube", "vimeo", "google_drive")
_PROVIDER_NAMES: Final = "Loom, YouTube, Vimeo and Google Drive"
_MAX_URL_LENGTH: Final = 2048

_LOOM_HOSTS: Final = frozenset({"loom.com", "www.loom.com"})
_YOUTUBE_HOSTS: Final = frozenset(
    {
        "youtube.com", "www.youtube.com", "m.youtube.com", "music.youtube.com",
        "youtube-nocookie.com", "www.youtube-nocookie.com",
    }
)  # fmt: skip
_YOUTU_BE_HOSTS: Final = frozenset({"youtu.be"})
_VIMEO_HOSTS: Final = frozenset({"vimeo.com", "www.vimeo.com"})
_VIMEO_PLAYER_HOSTS: Final = frozenset({"player.vimeo.com"})
_DRIVE_HOSTS: Final = frozenset({"drive.google.com"})

# Loom share links may put a title slug before the 32-hex id: /share/Q3-review-<id>.
_LOOM_PATH: Final = re.compile(r"/(?:share|embed)/(?:[A-Za-z0-9-]*-)?(?P<id>[0-9a-f]{32})/?")
_YOUTUBE_ID: Final = re.compile(r"[A-Za-z0-9_-]{11}")
_YOUTUBE_PATH: Final = re.compile(r"/(?:shorts|embed|live)/(?P<id>[^/]+)/?")
_YOUTU_BE_PATH: Final = re.compile(r"/(?P<id>[A-Za-z0-9_-]{11})/?")
_VIMEO_PATH: Final = re.compile(r"/(?P<id>[0-9]{1,20})(?:/(?P<hash>[0-9a-f]{6,40}))?/?")
_VIMEO_PLAYER_PATH: Final = re.compile(r"/video/(?P<id>[0-9]{1,20})/?")
_VIMEO_HASH: Final = re.compile(r"[0-9a-f]{6,40}")
_DRIVE_ID: Final = re.compile(r"[A-Za-z0-9_-]{10,128}")
_DRIVE_PATH: Final = re.compile(r"/file/d/(?P<id>[^/]+)(?:/(?:view|edit|preview))?/?")
# Whitespace, controls and backslashes: browsers strip or reinterpret them in URLs.
_URL_FORBIDDEN: Final = re.compile(r"[\x00-\x20\x7f-\x9f\\]")


class UnsupportedEmbed(InvalidMessage):
    """The link is not one of the video links the thread can embed."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"{reason}. Videos can be embedded from {_PROVIDER_NAMES} links only.",
            supported_providers=list(SUPPORTED_PROVIDERS),
        )


@dataclass(frozen=True)
class VideoEmbed:
    """A recognised video link: who hosts it, the link as given (on https), the player URL."""

    provider: VideoProvider
    source_url: str
    embed_url: str


def parse_video_embed(url: str) -> VideoEmbed:
    """Recognise a Loom, YouTube, Vimeo or Google Drive link and build its player URL.

    Raises :class:`UnsupportedEmbed` for anything else: another host (look-alikes such as
    ``youtube.com.evil.example`` included), user-info, a port, a scheme other than
    ``http``/``https``, or a path that names no valid video id.
    """
    parts = _split(url)
    host = parts.netloc.lower()  # must be the bare host: no user-info, no port
    for hosts, parse in _PARSERS:
        if host in hosts:
            provider, embed_url = parse(parts)
            source_url = parts._replace(scheme="https").geturl()
            return VideoEmbed(provider=provider, source_url=source_url, embed_url=embed_url)
    raise UnsupportedEmbed("The link is not from a supported video host")


def _split(url: str) -> SplitResult:
    url = url.strip()
    if not url or len(url) > _MAX_URL_LENGTH or _URL_FORBIDDEN.search(url):
        raise UnsupportedEmbed("The link is not a valid web address")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise UnsupportedEmbed("The link is not a valid web address") from None
    if parts.scheme.lower() not in {"http", "https"} or not url.partition(":")[2].startswith("//"):
        raise UnsupportedEmbed("The link must be an https:// address")
    return parts


def _loom(parts: SplitResult) -> tuple[VideoProvider, str]:
    match = _LOOM_PATH.fullmatch(parts.path)
    if not match:
        raise UnsupportedEmbed("This Loom link names no video")
    return "loom", f"https://www.loom.com/embed/{match['id']}"


def _youtube(parts: SplitResult) -> tuple[VideoProvider, str]:
    if parts.path in {"/watch", "/watch/"}:
        video_id = _single_query_value(parts, "v")
    else:
        match = _YOUTUBE_PATH.fullmatch(parts.path)
        video_id = match["id"] if match else None
    if video_id is None or not _YOUTUBE_ID.fullmatch(video_id):
        raise UnsupportedEmbed("This YouTube link names no video")
    return "youtube", f"https://www.youtube-nocookie.com/embed/{video_id}"


def _youtu_be(parts: SplitResult) -> tuple[VideoProvider, str]:
    match = _YOUTU_BE_PATH.fullmatch(parts.path)
    if not match:
        raise UnsupportedEmbed("This YouTube link names no video")
    return "youtube", f"https://www.youtube-nocookie.com/embed/{match['id']}"


def _vimeo(parts: SplitResult) -> tuple[VideoProvider, str]:
    match = _VIMEO_PATH.fullmatch(parts.path)
    if not match:
        raise UnsupportedEmbed("This Vimeo link names no video")
    return "vimeo", _vimeo_player(match["id"], match["hash"])


def _vimeo_player_link(parts: SplitResult) -> tuple[VideoProvider, str]:
    match = _VIMEO_PLAYER_PATH.fullmatch(parts.path)
    if not match:
        raise UnsupportedEmbed("This Vimeo link names no video")
    privacy_hash = _single_query_value(parts, "h")
    if privacy_hash is not None and not _VIMEO_HASH.fullmatch(privacy_hash):
        privacy_hash = None
    return "vimeo", _vimeo_player(match["id"], privacy_hash)


def _vimeo_player(video_id: str, privacy_hash: str | None) -> str:
    player = f"https://player.vimeo.com/video/{video_id}"
    return f"{player}?h={privacy_hash}" if privacy_hash else player


def _google_drive(parts: SplitResult) -> tuple[VideoProvider, str]:
    if parts.path in {"/open", "/open/"}:
        file_id = _single_query_value(parts, "id")
    else:
        match = _DRIVE_PATH.fullmatch(parts.path)
        file_id = match["id"] if match else None
    if file_id is None or not _DRIVE_ID.fullmatch(file_id):
        raise UnsupportedEmbed("This Google Drive link names no file")
    return "google_drive", f"https://drive.google.com/file/d/{file_id}/preview"


def _single_query_value(parts: SplitResult, name: str) -> str | None:
    values = parse_qs(parts.query).get(name, [])
    return values[0] if len(values) == 1 else None


_Parser = Callable[[SplitResult], tuple[VideoProvider, str]]
_PARSERS: Final[tuple[tuple[frozenset[str], _Parser], ...]] = (
    (_LOOM_HOSTS, _loom),
    (_YOUTUBE_HOSTS, _youtube),
    (_YOUTU_BE_HOSTS, _youtu_be),
    (_VIMEO_HOSTS, _vimeo),
    (_VIMEO_PLAYER_HOSTS, _vimeo_player_link),
    (_DRIVE_HOSTS, _google_drive),
)
