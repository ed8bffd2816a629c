"""`${NAME}` placeholders in the files a step hands to AWS (a JITP template, a topic rule),
filled as the workshop's shell does it (`envsubst`, `$ARN_LAMBDA`): from values the scenario
gives and values earlier steps made known (`RunContext.values`)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from fleetsim.errors import UserError

PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def fill(text: str, values: Mapping[str, str], where: str, how: str) -> str:
    """`text` with every `${NAME}` replaced; one without a value is an error naming `where`
    (the file) and `how` (where to give values)."""
    missing = sorted({m for m in PLACEHOLDER.findall(text) if m not in values})
    if missing:
        raise UserError(f"{where} uses ${{{missing[0]}}}: give its value in {how} "
                        f"({', '.join(missing)} missing)")
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)
