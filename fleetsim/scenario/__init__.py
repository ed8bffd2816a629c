"""Scenario files: YAML validated by pydantic, errors reported as FILE:LINE:COL. The step
kinds are not here: each is a module of `fleetsim.engine.steps`, which loads scenarios with
them (`fleetsim.engine.steps.load_scenario`)."""

from fleetsim.scenario.model import Fleet, Scenario

__all__ = ["Fleet", "Scenario"]
