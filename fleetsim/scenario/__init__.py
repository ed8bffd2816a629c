"""Scenario files: YAML validated by pydantic, errors reported as FILE:LINE:COL."""

from fleetsim.scenario.loader import load_scenario
from fleetsim.scenario.model import Fleet, Scenario

__all__ = ["Fleet", "Scenario", "load_scenario"]
