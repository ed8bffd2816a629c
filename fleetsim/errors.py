"""Errors a user can act on: printed as one sentence, never as a traceback."""


class UserError(Exception):
    """A mistake in input or environment; the message names what is wrong and how to fix it."""

    exit_code = 1


class ScenarioInvalid(UserError):
    """A scenario file failed validation; `problems` holds one `FILE:LINE:COL: msg` per issue."""

    exit_code = 2

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems
