"""Golden scenarios: for every simulated fault the engine's top hypothesis names the true root
entity and category; for the no-fault scenario it is not confident. The ranker never sees the
scenario name or its truth — only the telemetry."""

from __future__ import annotations

import pytest

from rca.demo import run_demo
from rca.sim import list_scenarios

FAULTS = [s for s in list_scenarios() if s != "no_fault"]
SEEDS = (0, 1, 2)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("scenario", FAULTS)
def test_top1_names_true_root_and_category(scenario, seed):
    ans = run_demo(scenario, seed)
    truth = ans["truth"]
    top = ans["hypotheses"][0]
    got = [(h["root"], h["category"], h["confidence"]) for h in ans["hypotheses"][:3]]
    assert top["root"] == truth["root"], got
    assert top["category"] == truth["category"], got
    assert top["confidence"] >= 0.5, got
    assert top["evidence"], "a hypothesis without evidence cannot be checked"
    assert top["path"][0] == top["root"]


@pytest.mark.parametrize("seed", SEEDS)
def test_no_fault_is_not_confident(seed):
    ans = run_demo("no_fault", seed)
    assert ans["truth"]["root"] is None
    assert all(h["confidence"] < 0.5 for h in ans["hypotheses"]), [
        (h["root"], h["confidence"]) for h in ans["hypotheses"]]


def test_demo_answer_shape():
    ans = run_demo(FAULTS[0], 0)
    assert {"question", "interpreted", "symptom", "hypotheses", "checked", "no_data", "summary",
            "scenario", "truth"} <= set(ans)
    assert {"window", "at", "signal", "statistic", "scope", "tz"} <= set(ans["interpreted"])
    h = ans["hypotheses"][0]
    assert ":" in h["root"] and {"category", "confidence", "evidence", "checked", "no_data"} <= set(h)
    assert ans["interpreted"]["at"].endswith("Z")
    # the symptom is the entry service's signal the question names, with numbers
    assert ans["symptom"]["series"] is not None
    assert ans["symptom"]["observed"] > ans["symptom"]["baseline"]
