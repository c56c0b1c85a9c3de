"""The fleet simulator: realistic telemetry of an AI-serving fleet with injected faults.

``simulate(name_or_scenario, seed)`` returns a ``SimResult``: a ``Snapshot`` (raw Prometheus
series, spans, logs, inventory) plus the ground ``Truth`` and the question to ask. Scenarios
live in ``datasets/scenarios/*.yaml`` (or ``$RCA_SCENARIOS_DIR``).
"""

from rca.sim.pipeline import SimResult, simulate
from rca.sim.scenarios import Scenario, Truth, list_scenarios, load_scenario

__all__ = ["Scenario", "SimResult", "Truth", "list_scenarios", "load_scenario", "simulate"]
