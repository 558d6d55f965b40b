"""Message bodies (M1, M6): sanitise user HTML with nh3 and render it as plain text.

A message body arrives as HTML from the rich-text editor. It is sanitised once, on the way
in, and only the sanitised HTML is stored; ``plain_text`` renders it for notifications and
search. Sanitising is done by `nh3 <https://nh3.readthedocs.io>`_ (the Rust ``ammonia``
library), never by hand: its parser is html5ever, the same tree-building algorithm browsers
use, so what it checks is what a browser will see.

Allow-list (anything not listed is removed; the text inside a removed tag is kept, except
for ``script``, ``style``, ``iframe``, ``svg``, ``math`` and the other tags in
``_DROPPED_WITH_CONTENT``, whose content goes too; HTML comments are removed):

- formatting: ``p br div span strong b em i u s strike del sub sup code pre blockquote
  h1 h2 h3``
- lists: ``ul ol li``
- links: ``a`` with ``href`` only; ``https:``, ``http:`` and ``mailto:`` URLs only, and
  ``http(s)`` links must name a host (no relative or protocol-relative ``//host`` links,
  no user-info ``https://bank.example@evil.example``, no whitespace, control characters
  or backslashes anywhere in the URL). Every link gets ``target="_blank"`` and
  ``rel="noopener noreferrer nofollow"``, replacing whatever the user sent.
- images (M6): ``img`` with ``src`` and ``alt``; ``src`` must be an absolute ``https:``
  URL. The server never fetches it; the browser loads it from its host.
- no other attribute on any tag: nh3's default ``title`` and ``lang`` everywhere are
  switched off too (a ``title`` tooltip can dress a link up as something else).
- colour and size (M1): a ``style`` attribute on any allowed tag, reduced to the
  declarations ``color``, ``background-color``, ``font-size``, ``font-weight``,
  ``font-style`` and ``text-decoration`` (nh3 ``filter_style_properties``). Values are
  further limited to plain keywords, numbers, units, ``#hex`` and ``rgb()/rgba()/hsl()/
  hsla()``, so ``url(...)``, ``expression(...)``, escapes and comments never pass.

Every other character, emoji and all of Unicode included, is kept as it is; lone UTF-16
surrogates (which JSON can smuggle in as ``"\\ud800"``) become U+FFFD.

::

    MessagingError (domain)
    └── InvalidMessage        422
        └── InvalidMessageBody  422 — empty once sanitised, or larger than the limit
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Final
from urllib.parse import urlsplit

import nh3

from threadline.messaging.domain import InvalidMessage

__all__ = [
    "ALLOWED_STYLE_PROPERTIES",
    "ALLOWED_TAGS",
    "DEFAULT_MAX_BODY_BYTES",
    "InvalidMessageBody",
    "MessageBody",
    "plain_text",
    "sanitize_html",
]

DEFAULT_MAX_BODY_BYTES: Final = 64 * 1024

_FORMATTING_TAGS: Final = frozenset(
    {
        "p", "br", "div", "span", "strong", "b", "em", "i", "u", "s", "strike", "del",
        "sub", "sup", "code", "pre", "blockquote", "h1", "h2", "h3",
    }
)  # fmt: skip
_LIST_TAGS: Final = frozenset({"ul", "ol", "li"})
ALLOWED_TAGS: Final = _FORMATTING_TAGS | _LIST_TAGS | {"a", "img"}

ALLOWED_STYLE_PROPERTIES: Final = frozenset(
    {"color", "background-color", "font-size", "font-weight", "font-style", "text-decoration"}
)

# Removed together with everything inside them: their content is code, not message text.
_DROPPED_WITH_CONTENT: Final = frozenset(
    {
        "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet",
        "svg", "math", "template", "noscript", "noembed", "noframes", "xmp", "title",
        "textarea", "select",
    }
)  # fmt: skip

_ATTRIBUTES: Final = {
    **{tag: {"style"} for tag in ALLOWED_TAGS - {"br"}},
    "a": {"href", "style"},
    "img": {"src", "alt", "style"},
}
_LINK_REL: Final = "noopener noreferrer nofollow"
_LINK_SCHEMES: Final = frozenset({"https", "http", "mailto"})
_IMAGE_SCHEMES: Final = frozenset({"https"})

# Whitespace, C0/C1 controls and backslashes: browsers strip or reinterpret them in URLs,
# which is how "java\tscript:" and "https:\\evil" tricks work, so a URL with any is refused.
_URL_FORBIDDEN: Final = re.compile(r"[\x00-\x20\x7f-\x9f\\]")
_URL_SCHEME: Final = re.compile(r"[a-z][a-z0-9+.-]*", re.IGNORECASE)
_STYLE_VALUE: Final = re.compile(r"[\w\s#%.,/()+-]+", re.ASCII)
_STYLE_FUNCTION: Final = re.compile(r"([a-z-]*)\s*\(", re.IGNORECASE)
_STYLE_FUNCTIONS: Final = frozenset({"rgb", "rgba", "hsl", "hsla"})
_LONE_SURROGATE: Final = re.compile(r"[\ud800-\udfff]")
# Serialising a parsed tree and parsing it again can regroup it (a <p> left inside a <p>
# when a tag between them was stripped); sanitising again settles on the form a browser
# will build. Every pass is safe on its own, so the bound only limits work.
_MAX_PASSES: Final = 4


class InvalidMessageBody(InvalidMessage):
    """The message body cannot be sent: empty once sanitised, or larger than the limit."""


def sanitize_html(html: str) -> str:
    """Return ``html`` reduced to the module's allow-list; safe to store and render.

    Never raises for any string; the result is stable (sanitising it again returns it).
    """
    cleaned = _LONE_SURROGATE.sub("\ufffd", html)
    for _ in range(_MAX_PASSES):
        again = _clean_once(cleaned)
        if again == cleaned:
            break
        cleaned = again
    return cleaned


def _clean_once(html: str) -> str:
    return nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(_DROPPED_WITH_CONTENT),
        # "*" empty: nh3 otherwise allows `lang` and `title` on every tag.
        attributes={"*": set(), **{tag: set(names) for tag, names in _ATTRIBUTES.items()}},
        attribute_filter=_filter_attribute,
        strip_comments=True,
        link_rel=_LINK_REL,
        set_tag_attribute_values={"a": {"target": "_blank"}},
        url_schemes=set(_LINK_SCHEMES),
        filter_style_properties=set(ALLOWED_STYLE_PROPERTIES),
    )


def _filter_attribute(tag: str, attribute: str, value: str) -> str | None:
    """nh3 hook: ``None`` drops the attribute. Must not raise (it runs inside nh3)."""
    if attribute == "href":
        return _absolute_url(value, _LINK_SCHEMES)
    if attribute == "src":
        return _absolute_url(value, _IMAGE_SCHEMES)
    if attribute == "style":
        return _safe_style(value)
    return value


def _absolute_url(value: str, schemes: frozenset[str]) -> str | None:
    url = value.strip(" \t\n\r\f")
    if not url or _URL_FORBIDDEN.search(url):
        return None
    scheme, colon, rest = url.partition(":")
    if not colon or not _URL_SCHEME.fullmatch(scheme) or scheme.lower() not in schemes:
        return None
    if scheme.lower() == "mailto":
        return url if rest else None
    return url if _names_only_a_host(url) else None


def _names_only_a_host(url: str) -> bool:
    """An ``http(s)`` URL with a host, and no user-info that could disguise that host."""
    if not url.partition(":")[2].startswith("//"):
        return False
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a malformed port
    except ValueError:
        return False
    return bool(parts.hostname) and parts.username is None and parts.password is None


def _safe_style(value: str) -> str | None:
    kept: list[str] = []
    for declaration in value.split(";"):
        name, colon, css_value = declaration.partition(":")
        name, css_value = name.strip().lower(), css_value.strip()
        if not colon or name not in ALLOWED_STYLE_PROPERTIES or not css_value:
            continue
        if not _STYLE_VALUE.fullmatch(css_value):
            continue
        functions = {fn.lower() for fn in _STYLE_FUNCTION.findall(css_value)}
        if functions <= _STYLE_FUNCTIONS:
            kept.append(f"{name}:{css_value}")
    return ";".join(kept) or None


_BLOCK_TAGS: Final = frozenset(
    {"p", "div", "blockquote", "pre", "h1", "h2", "h3", "ul", "ol", "li"}
)
_SKIPPED_TAGS: Final = frozenset({"script", "style", "template"})
_HTML_WHITESPACE: Final = re.compile(r"[ \t\n\r\f\xa0]+")
_BLANK_LINES: Final = re.compile(r"\n{3,}")
# Deeper lists still read as lists; without a cap, indentation grows with the square of depth.
_MAX_LIST_INDENT: Final = 4


class _TextRenderer(HTMLParser):
    """Walks sanitised HTML and writes readable text; counts images on the way."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.images = 0
        self._chunks: list[str] = []
        self._fresh = True  # nothing visible yet on this line (after any list marker)
        self._lists: list[list[int]] = []  # per open list: [next number] for <ol>, [] for <ul>
        self._links: list[tuple[str | None, int]] = []  # (href, index of first text chunk)
        self._pre = 0
        self._skipped = 0

    def text(self) -> str:
        self.close()
        lines = (line.rstrip() for line in "".join(self._chunks).split("\n"))
        return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip("\n")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag in _SKIPPED_TAGS:
            self._skipped += 1
        elif tag == "br":
            self._emit("\n")
        elif tag == "img":
            self._image(attributes)
        elif tag == "a":
            self._links.append((attributes.get("href"), len(self._chunks)))
        elif tag in _BLOCK_TAGS:
            self._line_break()
            self._pre += tag == "pre"
            if tag == "ul":
                self._lists.append([])
            elif tag == "ol":
                self._lists.append([1])
            elif tag == "li":
                self._list_marker()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipped = max(0, self._skipped - 1)
        elif tag == "a" and self._links:
            self._end_link(*self._links.pop())
        elif tag in _BLOCK_TAGS:
            self._line_break()
            self._pre = max(0, self._pre - (tag == "pre"))
            if tag in {"ul", "ol"} and self._lists:
                self._lists.pop()

    def handle_data(self, data: str) -> None:
        if self._skipped:
            return
        if self._pre:
            self._emit(data.replace("\xa0", " "))
            return
        text = _HTML_WHITESPACE.sub(" ", data)
        if self._fresh or (self._chunks and self._chunks[-1].endswith(" ")):
            text = text.lstrip(" ")
        self._emit(text)

    def _emit(self, text: str, *, marker: bool = False) -> None:
        if not text:
            return
        self._chunks.append(text)
        if marker or text.endswith("\n"):
            self._fresh = True
        elif text.strip(" "):
            self._fresh = False

    def _image(self, attributes: dict[str, str | None]) -> None:
        if not attributes.get("src"):
            return
        self.images += 1
        alt = _HTML_WHITESPACE.sub(" ", attributes.get("alt") or "").strip()
        self.handle_data(f" [image: {alt}] " if alt else " [image] ")

    def _end_link(self, href: str | None, start: int) -> None:
        label = "".join(self._chunks[start:]).strip()
        if not href or href in {label, f"mailto:{label}"}:
            return
        self.handle_data(f" ({href})" if label else href)

    def _list_marker(self) -> None:
        if not self._lists:
            self._emit("- ", marker=True)
            return
        counter = self._lists[-1]
        indent = "  " * min(len(self._lists) - 1, _MAX_LIST_INDENT)
        if counter:
            self._emit(f"{indent}{counter[0]}. ", marker=True)
            counter[0] += 1
        else:
            self._emit(f"{indent}- ", marker=True)

    def _line_break(self) -> None:
        if self._chunks and not self._chunks[-1].endswith("\n"):
            self._emit("\n")


def plain_text(html: str) -> str:
    """Render sanitised HTML as text for notifications and search.

    Blocks and ``<br>`` become line breaks; list items ``- item`` (``1. item`` in ordered
    lists, indented two spaces per level, four levels at most); links ``text (url)``, or
    just the text when it is the URL; images ``[image: alt]``. Entities are unescaped and
    runs of spaces collapsed (except inside ``<pre>``); at most one blank line is kept.
    The input should already be sanitised; script and style content is skipped regardless.
    """
    renderer = _TextRenderer()
    renderer.feed(html)
    return renderer.text()


@dataclass(frozen=True)
class MessageBody:
    """A message's content: sanitised ``html`` to display, ``text`` for notifications."""

    html: str
    text: str

    @classmethod
    def from_user_html(cls, raw: str, *, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> MessageBody:
        """Sanitise what the editor sent and render its text.

        Raises :class:`InvalidMessageBody` when the body is larger than ``max_bytes``
        (UTF-8, checked before and after sanitising, since forced link attributes make
        it grow) or has neither visible text nor an image once sanitised.
        """
        raw = _LONE_SURROGATE.sub("\ufffd", raw)
        _check_size(len(raw.encode()), max_bytes, after_sanitising=False)
        html = sanitize_html(raw)
        _check_size(len(html.encode()), max_bytes, after_sanitising=True)
        renderer = _TextRenderer()
        renderer.feed(html)
        text = renderer.text()
        if not renderer.images and not _has_visible_text(text):
            raise InvalidMessageBody(
                "The message is empty: it has no text or image once unsupported "
                "formatting is removed."
            )
        return cls(html=html, text=text)


def _check_size(size: int, max_bytes: int, *, after_sanitising: bool) -> None:
    if size <= max_bytes:
        return
    when = " once formatted safely" if after_sanitising else ""
    raise InvalidMessageBody(
        f"The message is {size} bytes{when}; the limit is {max_bytes} bytes.",
        size_bytes=size,
        max_bytes=max_bytes,
    )


def _has_visible_text(text: str) -> bool:
    # Format characters (zero-width spaces and joiners, direction marks) show nothing alone.
    return any(
        not char.isspace() and unicodedata.category(char) not in {"Cf", "Cc"} for char in text
    )
