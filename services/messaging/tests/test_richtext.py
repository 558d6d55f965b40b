"""Message bodies (M1, M6): what survives sanitising, how it reads as text, what is refused."""

from __future__ import annotations

import dataclasses
import html
import re
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threadline.kit.errors import InvalidRequest
from threadline.messaging.richtext import (
    ALLOWED_TAGS,
    InvalidMessageBody,
    MessageBody,
    plain_text,
    sanitize_html,
)

LINK = 'target="_blank" rel="noopener noreferrer nofollow"'
EMOJI = "😀🎉👩‍👩‍👧🇩🇪👍🏽✅❤️"


class _Elements(HTMLParser):
    """Every start tag with its attributes, entity-decoded the way a browser decodes them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))


def elements(markup: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Elements()
    parser.feed(markup)
    parser.close()
    return parser.elements


def url_scheme(url: str) -> str:
    """The scheme a browser would see: it drops whitespace and controls before resolving."""
    squeezed = re.sub(r"[\x00-\x20\x7f-\x9f]", "", html.unescape(url)).lower()
    return squeezed.partition(":")[0] if ":" in squeezed else ""


# --- M1: formatting -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "markup",
    [
        "<p>plain <strong>bold</strong> <b>bold</b> <em>italic</em> <i>italic</i></p>",
        "<p><u>under</u> <s>strike</s> <strike>strike</strike> <del>gone</del></p>",
        "<p>H<sub>2</sub>O and x<sup>2</sup></p>",
        "<h1>Title</h1><h2>Sub</h2><h3>Minor</h3>",
        "<blockquote>quoted</blockquote><pre>  spaced\n    code</pre><p><code>x = 1</code></p>",
        "<ul><li>one</li><li>two<ol><li>a</li></ol></li></ul>",
        "<div>line</div><p>a<br>b</p>",
    ],
)
def test_m1_formatting_tags_survive_unchanged(markup: str) -> None:
    assert sanitize_html(markup) == markup


def test_m1_colour_and_size_survive_as_filtered_style() -> None:
    markup = (
        '<span style="color: #c00; font-size: 18px; position: fixed; '
        'background-color: rgb(255, 255, 0); font-weight: bold; z-index: 9">x</span>'
    )
    assert sanitize_html(markup) == (
        '<span style="color:#c00;font-size:18px;'
        'background-color:rgb(255, 255, 0);font-weight:bold">x</span>'
    )


@pytest.mark.parametrize(
    "style",
    [
        "background-color: url(javascript:alert(1))",
        "color: expression(alert(1))",
        "color: red /* comment */",
        "color: \\72 ed",
        "font-size: var(--x)",
        "behavior: url(x.htc)",
    ],
)
def test_m1_style_values_that_could_run_or_load_anything_are_dropped(style: str) -> None:
    assert sanitize_html(f'<span style="{style}">x</span>') == "<span>x</span>"


def test_m1_links_open_in_a_new_tab_without_referrer_or_opener() -> None:
    markup = '<a href="https://example.com/a?b=1&amp;c=2" target="_self" rel="opener">x</a>'
    assert sanitize_html(markup) == f'<a href="https://example.com/a?b=1&amp;c=2" {LINK}>x</a>'


@pytest.mark.parametrize(
    "href", ["https://example.com/", "http://example.com/path", "mailto:anna@example.com"]
)
def test_m1_links_with_safe_schemes_are_kept(href: str) -> None:
    assert sanitize_html(f'<a href="{href}">x</a>') == f'<a href="{href}" {LINK}>x</a>'


@pytest.mark.parametrize(
    "href",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        " javascript:alert(1)",
        "java\tscript:alert(1)",
        "java&#x09;script:alert(1)",
        "&#106;avascript:alert(1)",
        "javascript&colon;alert(1)",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "vbscript:msgbox(1)",
        "//evil.example/",
        "/relative/path",
        "https:evil.example",
        "https:\\\\evil.example",
        "https://bank.example@evil.example/",
        "https://exa mple.com/",
        "ftp://example.com/",
        "mailto:",
    ],
)
def test_m1_links_with_unsafe_or_ambiguous_urls_lose_their_href(href: str) -> None:
    assert sanitize_html(f'<a href="{href}">click</a>') == f"<a {LINK}>click</a>"


@pytest.mark.parametrize(
    "markup",
    [
        "<script>alert(1)</script>",
        "<style>body{display:none}</style>",
        "<iframe src='https://evil.example'>inside</iframe>",
        "<svg><script>alert(1)</script><text>svg</text></svg>",
        "<math><mi>x</mi></math>",
        "<object data='x.swf'>fallback</object>",
        "<template><p>later</p></template>",
        "<textarea>typed</textarea>",
        "<!-- a comment -->",
    ],
)
def test_m1_active_content_is_removed_with_what_is_inside(markup: str) -> None:
    assert sanitize_html(f"<p>before{markup}after</p>") == "<p>beforeafter</p>"


def test_m1_event_handlers_and_unknown_attributes_are_removed() -> None:
    markup = (
        '<p onclick="alert(1)" class="x" id="y" data-x="1">'
        '<b onmouseover="alert(1)" style="color: red">hi</b></p>'
    )
    assert sanitize_html(markup) == '<p><b style="color:red">hi</b></p>'


def test_m1_forms_are_flattened_to_their_text() -> None:
    markup = '<form action="https://evil.example"><input value="x"><button>Send</button></form>'
    assert sanitize_html(markup) == "Send"


def test_m1_emoji_and_unicode_survive_intact() -> None:
    text = f"{EMOJI} Grüße, Zoë — 中文, עברית, ﷽, naïve café ½ ™ \u200d"
    assert sanitize_html(f"<p>{text}</p>") == f"<p>{text}</p>"
    assert plain_text(sanitize_html(f"<p>{text}</p>")) == text.strip()


def test_m1_lone_surrogates_smuggled_through_json_become_replacement_characters() -> None:
    assert sanitize_html("<p>a\ud800b</p>") == "<p>a\ufffdb</p>"


def test_m1_markup_characters_in_text_stay_escaped() -> None:
    assert sanitize_html("<p>1 &lt; 2 &amp; 3 > 2</p>") == "<p>1 &lt; 2 &amp; 3 &gt; 2</p>"


def test_m1_nesting_that_a_browser_would_regroup_is_stored_regrouped() -> None:
    # Stripping <button> leaves <p> inside <p>, which no browser builds from markup.
    assert sanitize_html("<p>a<button><p>b</p></button></p>") == "<p>a</p><p>b</p><p></p>"


# --- M6: images -----------------------------------------------------------------------------


def test_m6_https_images_are_kept_with_their_alt_text() -> None:
    markup = '<img src="https://cdn.example.com/a.png" alt="Q3 chart" width="9" onerror="x()">'
    assert sanitize_html(markup) == '<img src="https://cdn.example.com/a.png" alt="Q3 chart">'


@pytest.mark.parametrize(
    "src",
    [
        "http://cdn.example.com/a.png",
        "data:image/png;base64,iVBORw0KGgo=",
        "javascript:alert(1)",
        "//cdn.example.com/a.png",
        "/uploads/a.png",
        "https://user:pw@cdn.example.com/a.png",
        "https://cdn.example.com:99999/a.png",
    ],
)
def test_m6_images_not_on_https_lose_their_src(src: str) -> None:
    assert sanitize_html(f'<img src="{src}" alt="a">') == '<img alt="a">'


# --- plain text for notifications -----------------------------------------------------------


def test_m1_plain_text_renders_lists_as_items() -> None:
    markup = "<p>Please send:</p><ul><li>bank statements</li><li>receipts</li></ul>"
    assert plain_text(markup) == "Please send:\n- bank statements\n- receipts"


def test_m1_plain_text_numbers_ordered_lists_and_indents_nested_ones() -> None:
    markup = "<ol><li>first<ul><li>detail</li></ul></li><li>second</li></ol>"
    assert plain_text(markup) == "1. first\n  - detail\n2. second"


def test_m1_plain_text_indents_deep_lists_four_levels_at_most() -> None:
    text = plain_text("<ul><li>" * 8 + "deep")
    assert text.splitlines()[-1] == " " * 8 + "- deep"


def test_m1_plain_text_shows_link_targets_after_their_text() -> None:
    markup = sanitize_html(
        '<p>See <a href="https://example.com/x">the form</a>, '
        '<a href="https://example.com/y">https://example.com/y</a> or '
        '<a href="mailto:tax@example.com">tax@example.com</a>.</p>'
    )
    assert plain_text(markup) == (
        "See the form (https://example.com/x), https://example.com/y or tax@example.com."
    )


def test_m1_plain_text_breaks_lines_at_blocks_and_br_and_collapses_spaces() -> None:
    markup = "<h1>Hello</h1><p>  two   \n spaces<br>next\tline </p><div>last</div>"
    assert plain_text(markup) == "Hello\ntwo spaces\nnext line\nlast"


def test_m1_plain_text_keeps_one_blank_line_at_most() -> None:
    assert plain_text("<p>a<br><br><br><br>b</p>") == "a\n\nb"


def test_m1_plain_text_unescapes_entities() -> None:
    assert plain_text("<p>Tom &amp; Jerry &lt;3 &quot;hi&quot; &eacute;&nbsp;x</p>") == (
        'Tom & Jerry <3 "hi" é x'
    )


def test_m1_plain_text_keeps_preformatted_spacing() -> None:
    assert plain_text("<p>code:</p><pre>a  =  1\n  b</pre>") == "code:\na  =  1\n  b"


def test_m6_plain_text_names_images_by_their_alt_text() -> None:
    markup = '<p>chart <img src="https://x.example/a.png" alt="Q3"></p>'
    assert plain_text(markup) == "chart [image: Q3]"
    assert plain_text('<img src="https://x.example/a.png">') == "[image]"


def test_m1_plain_text_skips_script_even_if_handed_unsanitised_html() -> None:
    assert plain_text("<p>hi<script>alert(1)</script></p>") == "hi"


# --- MessageBody ----------------------------------------------------------------------------


def test_m1_message_body_holds_sanitised_html_and_its_text() -> None:
    body = MessageBody.from_user_html('<p onclick="x">Hi <b>Anna</b> 👋</p><script>x</script>')
    assert body == MessageBody(html="<p>Hi <b>Anna</b> 👋</p>", text="Hi Anna 👋")
    with pytest.raises(dataclasses.FrozenInstanceError):
        body.html = "<script>"  # type: ignore[misc]


def test_m6_message_body_of_only_an_image_is_valid() -> None:
    body = MessageBody.from_user_html('<p><img src="https://x.example/a.png"></p>')
    assert body.text == "[image]"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   \n ",
        "<p><br></p>",
        "<p>&nbsp;</p>",
        "\u200b\u200d",
        "<script>alert(1)</script>",
        "<iframe src='https://example.com'></iframe>",
        '<img src="http://x.example/a.png">',
        '<a href="javascript:alert(1)"></a>',
    ],
)
def test_m1_message_body_empty_once_sanitised_is_refused(raw: str) -> None:
    with pytest.raises(InvalidMessageBody, match="empty") as refused:
        MessageBody.from_user_html(raw)
    assert isinstance(refused.value, InvalidRequest)
    assert refused.value.status == 422


def test_m1_message_body_larger_than_the_limit_is_refused_naming_both_sizes() -> None:
    with pytest.raises(InvalidMessageBody) as refused:
        MessageBody.from_user_html("é" * 60, max_bytes=100)
    assert refused.value.detail == "The message is 120 bytes; the limit is 100 bytes."
    assert refused.value.extensions == {"size_bytes": 120, "max_bytes": 100}


def test_m1_message_body_limit_counts_what_sanitising_adds() -> None:
    raw = '<a href="https://example.com">x</a>'
    with pytest.raises(InvalidMessageBody, match="once formatted safely") as refused:
        MessageBody.from_user_html(raw, max_bytes=len(raw))
    assert refused.value.extensions["max_bytes"] == len(raw)
    assert refused.value.extensions["size_bytes"] > len(raw)


def test_m1_message_body_at_the_default_limit_is_accepted() -> None:
    raw = "x" * (64 * 1024)
    assert MessageBody.from_user_html(raw).text == raw
    with pytest.raises(InvalidMessageBody):
        MessageBody.from_user_html(raw + "x")


# --- properties -----------------------------------------------------------------------------

TAGS = [
    "script", "iframe", "img", "a", "svg", "style", "p", "b", "span", "div", "ul", "li",
    "form", "input", "button", "math", "object", "embed", "textarea", "noscript", "template",
    "table", "td", "select", "option", "title", "xmp", "base", "meta", "link", "SCRIPT", "ImG",
]  # fmt: skip
ATTRIBUTES = [
    "onclick", "onerror", "onload", "OnMouseOver", "onfocus", "href", "HREF", "src", "style",
    "alt", "rel", "target", "class", "id", "formaction", "xlink:href", "srcdoc", "action",
]  # fmt: skip
HOSTILE_URLS = [
    "javascript:alert(1)", "JaVaScRiPt:alert(1)", " javascript:alert(1)", "\x01javascript:x",
    "java\tscript:alert(1)", "java\nscript:alert(1)", "java&#x09;script:alert(1)",
    "&#106;avascript:alert(1)", "&#x6A;avascript:alert(1)", "jav&#x61;script:alert(1)",
    "javascript&colon;alert(1)", "&#0000106&#0000097vascript:alert(1)",
    "data:text/html;base64,PHNjcmlwdD4=", "DATA:image/svg+xml,<svg onload=alert(1)>",
    "vbscript:msgbox(1)", "VbScRiPt:x", "//evil.example/x", "\\\\evil.example",
    "https://ok.example/a.png", "http://ok.example/a.png", "mailto:a@b.example",
    "https://user@evil.example/", "/relative", "",
]  # fmt: skip
TEXT_PIECES = st.sampled_from(
    list("abc XYZ 123 éßø中文 \t\n<>&\"'=/;:") + list(EMOJI) + ["&amp;", "&lt;", "&#x3C;"]
)
html_text = st.lists(TEXT_PIECES, max_size=8).map("".join)

attribute_values = st.one_of(
    st.sampled_from(HOSTILE_URLS),
    st.sampled_from(["alert(1)", "color: red; background: url(javascript:x)", "_blank"]),
    st.text(max_size=12),
)


@st.composite
def attribute(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(ATTRIBUTES))
    value = draw(attribute_values)
    quote = draw(st.sampled_from(['"', "'", ""]))
    if not quote:
        value = re.sub(r"[\s>\"'=<`]", "", value) or "x"
    return f" {name}={quote}{value.replace(quote, '') if quote else value}{quote}"


@st.composite
def start_tag(draw: st.DrawFn) -> str:
    tag = draw(st.sampled_from(TAGS))
    attributes = "".join(draw(st.lists(attribute(), max_size=3)))
    return f"<{tag}{attributes}{draw(st.sampled_from(['', ' /']))}>"


url_element = st.builds(
    lambda tag, name, url: f'<{tag} {name}="{url}">',
    st.sampled_from(["a", "img", "A", "IMG"]),
    st.sampled_from(["href", "src", "HREF", "Src"]),
    st.sampled_from(HOSTILE_URLS),
)
fragment = st.one_of(
    start_tag(),
    url_element,
    st.sampled_from(TAGS).map(lambda tag: f"</{tag}>"),
    html_text,
    st.sampled_from(["<!--", "-->", "<!-- x -->", "<![CDATA[x]]>", "<", ">", "&"]),
    st.text(max_size=6),
)
html_ish = st.lists(fragment, max_size=25).map("".join)


@settings(max_examples=300, deadline=None)
@given(html_ish)
def test_m1_property_sanitised_output_has_no_active_content(raw: str) -> None:
    cleaned = sanitize_html(raw)
    assert "<script" not in cleaned.lower()
    for tag, attrs in elements(cleaned):
        assert tag in ALLOWED_TAGS
        assert not [name for name in attrs if name.startswith("on")]
        assert set(attrs) <= {"href", "src", "alt", "style", "target", "rel"}
        for name in ("href", "src"):
            if attrs.get(name) is not None:
                assert url_scheme(attrs[name] or "") in {"https", "http", "mailto"}
        if tag == "img" and attrs.get("src") is not None:
            assert (attrs["src"] or "").startswith("https://")


@settings(max_examples=300, deadline=None)
@given(html_ish)
def test_m1_property_sanitising_is_idempotent(raw: str) -> None:
    once = sanitize_html(raw)
    assert sanitize_html(once) == once


plain_pieces = TEXT_PIECES.filter(lambda piece: "<" not in piece and "&" not in piece)


@settings(max_examples=300, deadline=None)
@given(st.lists(plain_pieces, max_size=40).map("".join))
def test_m1_property_emoji_and_text_survive_sanitising(text: str) -> None:
    cleaned = sanitize_html(f"<p><b>{text}</b> {EMOJI}</p>")
    for emoji in EMOJI:
        assert emoji in cleaned
    assert "".join(plain_text(cleaned).split()) == "".join(f"{text}{EMOJI}".split())


@settings(max_examples=300, deadline=None)
@given(html_ish)
def test_m1_property_any_input_becomes_a_body_or_a_422(raw: str) -> None:
    try:
        body = MessageBody.from_user_html(raw)
    except InvalidMessageBody as refused:
        assert refused.status == 422
    else:
        assert body.html == sanitize_html(raw)
        assert body.text == plain_text(body.html)


@pytest.mark.parametrize("attribute", ["title", "lang", "class", "id", "dir", "data-x", "hidden"])
@pytest.mark.parametrize("tag", ["p", "span", "a", "img", "strong", "li"])
def test_m1_only_the_documented_attributes_survive(tag: str, attribute: str) -> None:
    """Issue 10: `title` (nh3's default generic attribute) survived though the docstring
    says only `style` (plus `href`, `src`, `alt`) does."""
    extra = ' href="https://example.com"' if tag == "a" else ""
    extra += ' src="https://example.com/x.png"' if tag == "img" else ""
    body = MessageBody.from_user_html(f'<p>x<{tag}{extra} {attribute}="t">y</{tag}></p>')
    assert f"{attribute}=" not in body.html
