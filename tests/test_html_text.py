"""eas.items.body.html_to_text: its regular-expression fast path gives exactly what the
html.parser path gives, on mail-like HTML, on tricky markup and on random tag soup, and
steps aside (None) wherever its grammar is not sure."""

from __future__ import annotations

import random
import re

import pytest

from eas.items import body

pytestmark = pytest.mark.kernel_independent


def reference(source: str) -> str:
    """html_to_text as it was before the fast path: html.parser only."""
    parser = body._TextExtractor()
    try:
        parser.feed(source)
        parser.close()
    except (AssertionError, ValueError):
        pass
    text = "".join(parser.parts)
    lines = [re.sub(r"[ \t\r\f\v\u00a0]+", " ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n\s*\n\s*(?:\n\s*)+", "\n\n", "\n".join(lines)).strip("\n")


def parser_text(source: str) -> str:
    parser = body._TextExtractor()
    try:
        parser.feed(source)
        parser.close()
    except (AssertionError, ValueError):
        pass
    return "".join(parser.parts)


def check(source: str) -> bool:
    """Both paths agree; True if the fast path took it."""
    fast = body._fast_parts(source)
    if fast is not None:
        assert "".join(fast) == parser_text(source), source
    assert body.html_to_text(source) == reference(source), source
    return fast is not None


MAIL = [
    ('<html><head><meta charset="utf-8"><title>Hi</title><style>p{font-family:Calibri}</style></head>'
    '<body><div dir="ltr"><p style="margin:0">Hello &amp; welcome, M&uuml;ller&nbsp;&#8364;5</p>'
    "<p>Line two<br>still two<br/>three<br />four</p><table><tr><td>a</td><td nowrap>b</td></tr></table>"
    "<ul><li>one</li><li>two</li></ul><!-- a comment with <b>tags</b> --><p>--<br>Sent</p></div></body></html>"),
    ("<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\"><HTML><BODY><P CLASS=MsoNormal>Outlook "
    "<o:p></o:p></P><SCRIPT type='text/javascript'>if (a < b && c > d) { x = '</div>'; }</SCRIPT>"
    "<H1>Title</H1>text&#x27;s &lt;tag&gt; &unknown; & alone</BODY></HTML>"),
    '<div>Привет 東京 😀 <a href="https://example.org/x?a=1&amp;b=2" target=_blank>link</a></div>',
    "<p>no end tag<p>another<div>x</div >done",
    "<style type=\"text/css\">\n<!-- td { color: red } -->\n</style><p>after style</p>",
    "plain text, no markup at all &amp; an entity",
    "",
    "<pre>  keep\n  lines  </pre><blockquote>quoted</blockquote><hr><hr/>end",
    "<table>\n<tr>\n<th>h</th>\n<td>&#160;</td>\n</tr>\n</table>",
    '<img src="cid:image001.png@01D" alt="logo" width=100 height=40><p>x</p>',
]

FALLBACK = [
    "a < b and c > d",  # a bare "<"
    '<a href=/x/>link</a>',  # an unquoted value holding "/"
    '<img alt=b/><td>x',  # html.parser reads b/ as the value: not an empty tag
    "<?xml version='1.0'?><p>x</p>",
    "<![CDATA[ x ]]><p>y</p>",
    "<script>never closed",
    "<!-- never closed <p>x</p>",
    '<p class="unterminated>text',
    "<a/ href='x'>t</a>",
    "<p x='1'y='2'>t</p>",
    "</ p>x",
    "<!bogus>x",
    "<p\x0bclass=a>x</p>",
    "text<",
]


@pytest.mark.parametrize("source", MAIL)
def test_mail_html_takes_the_fast_path(source: str) -> None:
    assert check(source)


@pytest.mark.parametrize("source", FALLBACK)
def test_what_the_grammar_does_not_cover_falls_back(source: str) -> None:
    assert not check(source)


def test_empty_tags_of_skipped_and_cell_elements() -> None:
    # <script/> is no script block; <td/> gives no tab; <p/> one line break, not two
    assert check("<script/>shown<td/>x<p/>y<title/>z")
    assert body.html_to_text("<script/>shown<td/>x<p/>y<title/>z") == reference("<script/>shown<td/>x<p/>y<title/>z")


FRAGMENTS = [
    "<p>", "</p>", "<div class=\"a b\">", "</div>", "<br>", "<br/>", "<br />", "<td>", "</td>", "<th nowrap>",
    "<script>", "</script>", "<style>", "</STYLE >", "<title>", "</title>", "<head>", "</head>", "<b>", "</b>",
    "<a href='x>y'>", "<a href=x>", "<a href=x/>", "<img src=a/b>", "<!-- c -->", "<!--", "-->", "--  >",
    "<!DOCTYPE html>", "<!x>", "<?p?>", "<", ">", "&amp;", "&lt;", "&#65;", "&#x41;", "&nbsp;", "&bogus;", "&",
    "&am", "text", " ", "\n", "\t", "\u00a0", "é", "😀", "<p\nclass='x'\n>", "<tr>", "</tr>", "<li>", "<hr/>",
    "<o:p>", "</o:p>", "<P>", "</P>", "<td/>", "<script/>", "< p>", "</ p>", "</>", "<a b= c>", "<a b=>",
    "<x y=\"1\"z=2>", "\x00", "\f", "\r\n",
]


def test_random_tag_soup() -> None:
    rng = random.Random(20241123)
    fast = 0
    for _ in range(4000):
        source = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 25)))
        fast += check(source)
    assert fast > 400  # the fast path is exercised, not only the fallback


def test_mail_like_documents_at_random() -> None:
    rng = random.Random(7)
    words = ["alpha", "beta", "gamma", "delta", "Grüße", "東京", "&amp;", "&lt;x&gt;", "&#8364;", "naïve"]
    for _ in range(300):
        paras = []
        for _ in range(rng.randint(1, 12)):
            tag = rng.choice(["p", "div", "span", "li", "td", "h2", "blockquote"])
            attrs = rng.choice(["", ' style="margin:0;color:#333"', " class=MsoNormal", " align='left'"])
            text = " ".join(rng.choice(words) for _ in range(rng.randint(0, 30)))
            br = rng.choice(["", "<br>", "<br/>", "<br />"])
            paras.append(f"<{tag}{attrs}>{text}{br}</{tag}>")
        source = (f"<html><head><style>{rng.choice(['p{x:y}', '<!-- td{} -->'])}</style></head><body>"
                  + "\n".join(paras) + "</body></html>")
        assert check(source)


def test_never_raises_and_matches_on_hostile_input() -> None:
    rng = random.Random(99)
    alphabet = "<>/!-='\"&;#ax \n\t\x00é"
    for _ in range(2000):
        check("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60))))
    assert re.fullmatch(r"[\s\S]*", body.html_to_text("<" * 1000 + ">" * 1000)) is not None
