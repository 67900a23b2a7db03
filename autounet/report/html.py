"""The report's HTML pieces: escaping, tables, images, sections and the page template.

Everything is inline (styles, a few lines of script to sort tables, images as ``data:`` URIs), so the file opens
from disk with no network access.
"""

from __future__ import annotations

import html
import math
from string import Template
from typing import Iterable, Sequence

Cell = str | int | float | None


def esc(value: object) -> str:
    """``value`` as text safe inside HTML."""
    return html.escape(str(value), quote=True)


def fmt(value: Cell, digits: int = 3) -> str:
    """A number with ``digits`` decimals (integers as they are), 'n/a' for None or NaN; text escaped."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return esc(value)


def _sort_key(value: Cell) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value):
        return f' data-v="{value!r}"'
    return ""


def table(headers: Sequence[str], rows: Iterable[Sequence[Cell]], digits: int = 3, sortable: bool = False,
          caption: str = "") -> str:
    """An HTML table; numeric cells right-aligned (and sortable by value when ``sortable``)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for value in row:
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            cls = ' class="num"' if numeric else ""
            cells.append(f"<td{cls}{_sort_key(value)}>{fmt(value, digits)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    attributes = ' class="sortable"' if sortable else ""
    title = f"<caption>{esc(caption)}</caption>" if caption else ""
    return (f"<table{attributes}>{title}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def key_values(pairs: Iterable[tuple[str, Cell]], digits: int = 3) -> str:
    """A two-column table of names and values."""
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{fmt(v, digits)}</td></tr>" for k, v in pairs)
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


def image(data_uri: str, alt: str) -> str:
    """An embedded PNG."""
    return f'<img src="{data_uri}" alt="{esc(alt)}">'


def side_by_side(*parts: str) -> str:
    """Fragments side by side (wrapping on narrow windows)."""
    return '<div class="row">' + "".join(f"<div>{p}</div>" for p in parts) + "</div>"


def note(text: str) -> str:
    """A plain sentence standing in for something not there yet."""
    return f'<p class="note">{esc(text)}</p>'


def paragraph(text: str) -> str:
    return f"<p>{esc(text)}</p>"


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>\n{body}\n</section>'


def subsection(title: str, body: str) -> str:
    return f"<h3>{esc(title)}</h3>\n{body}"


PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>$title</title>
<style>
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 0 24px 48px; color: #1d2330; line-height: 1.4; }
header { border-bottom: 2px solid #1d2330; margin-bottom: 8px; }
h1 { margin-bottom: 4px; } h2 { margin-top: 32px; border-bottom: 1px solid #ccd; } h3 { margin-bottom: 6px; }
nav a { margin-right: 14px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 14px; }
th, td { border: 1px solid #d5d8e0; padding: 3px 8px; text-align: left; vertical-align: top; }
thead th { background: #eef0f5; }
table.kv th { background: #f6f7fa; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable thead th { cursor: pointer; }
caption { text-align: left; font-weight: 600; padding-bottom: 4px; }
img { max-width: 100%; height: auto; display: block; margin: 6px 0 12px; }
p.note { color: #6b3d00; background: #fff6e5; border-left: 4px solid #f0a000; padding: 6px 10px; }
.row { display: flex; flex-wrap: wrap; gap: 8px 32px; align-items: flex-start; }
.scroll { max-height: 420px; overflow-y: auto; display: inline-block; }
small { color: #5a6070; }
</style>
</head>
<body>
<header><h1>$title</h1><p><small>$subtitle</small></p>
<nav>$nav</nav></header>
$body
<script>
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("thead th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var up = th.getAttribute("data-up") !== "1";
      th.setAttribute("data-up", up ? "1" : "0");
      rows.sort(function (a, b) {
        var x = a.cells[column], y = b.cells[column];
        var vx = x.getAttribute("data-v"), vy = y.getAttribute("data-v");
        var c = (vx !== null && vy !== null) ? parseFloat(vx) - parseFloat(vy)
              : x.textContent.localeCompare(y.textContent);
        return up ? c : -c;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
</script>
</body>
</html>
""")


def page(title: str, subtitle: str, sections: list[tuple[str, str, str]]) -> str:
    """The whole document from ``(anchor, title, body)`` sections."""
    nav = "".join(f'<a href="#{esc(anchor)}">{esc(name)}</a>' for anchor, name, _ in sections)
    body = "\n".join(section(anchor, name, content) for anchor, name, content in sections)
    return PAGE.substitute(title=esc(title), subtitle=esc(subtitle), nav=nav, body=body)
