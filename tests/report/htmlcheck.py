"""Structure checks on a report: balanced tags, its images, its sections and tables."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser

VOID = {"meta", "img", "br", "hr", "link", "input"}


class Outline(HTMLParser):
    """Collects section ids, tables, images and headings, and fails on unbalanced or misnested tags."""

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.sections: list[str] = []
        self.tables = 0
        self.images: list[str] = []
        self.headings: list[str] = []
        self.notes: list[str] = []
        self.errors: list[str] = []
        self._text_target: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "section":
            self.sections.append(attributes.get("id", ""))
        elif tag == "table":
            self.tables += 1
        elif tag == "img":
            self.images.append(attributes.get("src", ""))
        if tag in ("h2", "h3"):
            self.headings.append("")
            self._text_target = self.headings
        if tag == "p" and attributes.get("class") == "note":
            self.notes.append("")
            self._text_target = self.notes
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else 'nothing'}>")
            return
        self.stack.pop()
        if tag in ("h2", "h3", "p"):
            self._text_target = None

    def handle_data(self, data):
        if self._text_target is not None:
            self._text_target[-1] += data


def outline(text: str) -> Outline:
    parser = Outline()
    parser.feed(text)
    parser.close()
    assert not parser.errors, parser.errors[:5]
    assert parser.stack == [], f"unclosed tags: {parser.stack}"
    return parser


def decode_png(src: str):
    """The PIL image of a ``data:image/png;base64,...`` URI."""
    from PIL import Image

    prefix = "data:image/png;base64,"
    assert src.startswith(prefix), src[:40]
    picture = Image.open(io.BytesIO(base64.b64decode(src[len(prefix):])))
    picture.load()
    assert picture.format == "PNG"
    return picture
