"""Running a scenario: steps in order, fan-out over devices, checks, cancellation."""
