"""Rule actions as compiled at rule creation: which kind, which parameters, and the substitution
templates inside them ("Rule actions"). Running them is `runner.py`'s job."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fleetsim.localcore.errors import invalid
from fleetsim.localcore.features.rules.templates import Template, compile_template

# The action kinds local core runs, and the name AWS gives each in an error action message's
# `failedAction` ("Error action message format").
RUN_LOCALLY = {"republish": "RepublishAction", "s3": "S3Action", "lambda": "LambdaAction",
               "cloudwatchLogs": "CloudwatchLogsAction"}

# Which parameters of each kind take substitution templates ("Substitution templates" and each
# action's page).
_TEMPLATED = {"republish": ("topic",), "s3": ("bucketName", "key"), "lambda": ("functionArn",),
              "cloudwatchLogs": ("logGroupName",)}


@dataclass(frozen=True)
class Action:
    kind: str                       # "republish", "s3", ...
    params: dict[str, Any]          # as given
    templates: dict[str, Template]  # templated parameters, compiled

    @property
    def supported(self) -> bool:
        return self.kind in RUN_LOCALLY

    def render(self, name: str, ctx: Any) -> str:
        return self.templates[name].render(ctx)


def compile_action(action: dict[str, Any], where: str) -> Action:
    """One member of `actions` (or `errorAction`): exactly one kind set (InvalidRequestException
    otherwise); templates of the kinds local core runs compiled (SqlParseException)."""
    kinds = [k for k, value in action.items() if value is not None]
    if len(kinds) != 1:
        raise invalid(f"{where} must set exactly one action type, not "
                      f"{len(kinds)} ({', '.join(kinds) or 'none'})")
    kind = kinds[0]
    params = dict(action[kind])
    templates = {name: compile_template(str(params[name]))
                 for name in _TEMPLATED.get(kind, ()) if name in params}
    return Action(kind, params, templates)
