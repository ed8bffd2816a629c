"""How one run's figure differs from a baseline's: signed text and a verdict (better/worse)."""

from __future__ import annotations

import math
from dataclasses import dataclass

BETTER = "better"
WORSE = "worse"
SAME = "same"


@dataclass(frozen=True)
class Delta:
    text: str  # "+12.5 (+4%)", "-3", "=" or "" (nothing to compare)
    verdict: str  # BETTER, WORSE, SAME, or "" (no direction, or nothing to compare)


def _signed(x: float) -> str:
    if abs(x) >= 100:
        return f"{x:+,.0f}"
    if abs(x) >= 1:
        return f"{x:+.1f}".replace(".0", "") if float(x).is_integer() else f"{x:+.1f}"
    return f"{x:+.2g}"


def delta(base: float | None, value: float | None, better: str | None) -> Delta:
    """`value` against `base`; `better` is "lower", "higher" or None (a change is neither)."""
    if base is None or value is None:
        return Delta("", "")
    diff = value - base
    if not math.isfinite(diff):
        return Delta("", "")
    if diff == 0:
        return Delta("=", SAME if better else "")
    text = _signed(diff)
    if base:
        ratio = diff / abs(base) * 100
        if math.isfinite(ratio):
            text += f" ({ratio:+.0f}%)" if abs(ratio) >= 1 else f" ({ratio:+.1g}%)"
    if better not in ("lower", "higher"):
        return Delta(text, "")
    improved = diff < 0 if better == "lower" else diff > 0
    return Delta(text, BETTER if improved else WORSE)
