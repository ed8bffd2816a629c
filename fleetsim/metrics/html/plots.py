"""Plotly figures of the report, as HTML fragments that need plotly.js on the page once
(`page.py` inlines it). Plain SVG traces (scatter, bar), never WebGL: a report opens anywhere."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

from fleetsim.metrics.html.series import Series

_ids = itertools.count(1)
_CONFIG = {"displaylogo": False, "responsive": True}
_LAYOUT: dict[str, Any] = {"template": "plotly_white", "height": 320,
                           "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
                           "legend": {"orientation": "h", "y": -0.25}}


def line_chart(title: str, series: Sequence[Series], x_title: str, y_title: str,
               log_x: bool = False) -> go.Figure:
    fig = go.Figure([go.Scatter(x=s.x, y=s.y, name=s.name, mode="lines",
                                line={"shape": "hv" if not log_x else "linear"})
                     for s in series])
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, **_LAYOUT)
    if log_x:
        fig.update_xaxes(type="log")
    return fig


def bar_chart(title: str, series: Sequence[Series], x_title: str, y_title: str,
              categories: Sequence[str] | None = None) -> go.Figure:
    """Grouped bars; `categories` names the x positions instead of the series' x numbers."""
    fig = go.Figure([go.Bar(x=list(categories) if categories is not None else s.x, y=s.y,
                            name=s.name) for s in series])
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, barmode="group",
                      **_LAYOUT)
    return fig


def to_div(fig: go.Figure) -> str:
    """The figure as a <div> and the script that draws it (plotly.js not included)."""
    return str(pio.to_html(fig, full_html=False, include_plotlyjs=False,
                           div_id=f"plot-{next(_ids)}", config=_CONFIG,
                           default_height=f"{fig.layout.height or 320}px"))
