"""The HTML report (`report --html`, `run --html`): pure functions from JSON summaries to one
self-contained page each (CSS and plotly.js inlined; nothing fetched when it opens)."""

from fleetsim.metrics.html.compare import render_comparison_html
from fleetsim.metrics.html.single import render_report

__all__ = ["render_comparison_html", "render_report"]
