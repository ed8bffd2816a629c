"""The page around the report: one self-contained HTML file (CSS and plotly.js inlined once;
nothing is fetched when it opens)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from plotly.offline import get_plotlyjs

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       max-width: 1280px; padding: 0 24px 48px; color: #1d2330; }
h1 { font-size: 22px; margin: 24px 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px;
border-bottom: 1px solid #d8dde6; padding-bottom: 4px; }
nav a { margin-right: 12px; } .verdict { font-weight: 600; }
table { border-collapse: collapse; margin: 6px 0 12px; }
th, td { padding: 3px 10px; border-bottom: 1px solid #eceff4; text-align: left;
         vertical-align: top; }
thead th { background: #f4f6f9; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.good { color: #137333; } .bad { color: #b3261e; font-weight: 600; }
td.better { background: #e6f4ea; color: #137333; } td.worse { background: #fce8e6; color: #b3261e; }
td.same { color: #6b7280; }
table.kv th { background: none; font-weight: 600; position: static; }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 8px; }
.plots .wide { grid-column: 1 / -1; }
.empty, .note { color: #6b7280; }
pre { background: #f6f8fa; padding: 12px; overflow: auto; border: 1px solid #e1e4e8; }
"""


@dataclass(frozen=True)
class Section:
    anchor: str
    title: str
    body: str  # HTML, already escaped


@cache
def plotly_js() -> str:
    """plotly.js as shipped inside the plotly package (no CDN): one copy per page."""
    return str(get_plotlyjs())


def page(title: str, header: str, sections: Sequence[Section]) -> str:
    nav = " ".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in sections)
    body = "\n".join(f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>\n{s.body}\n'
                     "</section>" for s in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n"
            f'<script type="text/javascript">{plotly_js()}</script>\n</head>\n<body>\n'
            f"<h1>{html.escape(title)}</h1>\n{header}\n<nav>{nav}</nav>\n{body}\n"
            "</body></html>\n")


def grid(divs: Sequence[str], empty: str = "nothing to plot") -> str:
    return (f'<div class="plots">{"".join(divs)}</div>' if divs
            else f'<p class="empty">{html.escape(empty)}</p>')


def pre(text: str) -> str:
    return f"<pre>{html.escape(text)}</pre>"
