"""Detection on the simulator: each fault is found at its entity near its onset; the no-fault
scenario raises nothing above the default level. Plus ``rca scan`` end to end."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from rca.cli import app
from rca.detect import LEVEL, detect
from rca.entities import aliases_from_inventory
from rca.signals import derive
from rca.sim import list_scenarios, simulate
from rca.types import Window

FAULTS = [s for s in list_scenarios() if s != "no_fault"]


def _detect(scenario: str, seed: int):
    r = simulate(scenario, seed)
    s, w, at = r.snapshot, r.snapshot.window, r.question_time
    inc = Window(at - 900, min(at + 300, w.end), w.step)
    base = Window(max(w.start, inc.start - 10800), inc.start - w.step, w.step)
    return r, detect(derive(s.metrics, aliases_from_inventory(s.inventory)), s, base, inc)


@pytest.mark.parametrize("scenario", FAULTS)
def test_fault_is_detected_at_its_entity_and_onset(scenario):
    r, d = _detect(scenario, 0)
    truth = r.truth
    members = {rel.src for rel in r.snapshot.inventory.relations
               if rel.relation == "member_of" and rel.dst == truth.root}
    hits = [a for a in d.flagged() if a.entity in {truth.root} | members]
    assert hits, f"{truth.root} not flagged; flagged: {[(a.entity, a.kind) for a in d.flagged()[:5]]}"
    assert all(0.0 <= a.level <= 1.0 for a in d.anomalies)
    onset = min(a.onset for a in hits)
    assert abs(onset - truth.onset) <= 600, (onset, truth.onset)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_fault_raises_nothing_above_the_default_level(seed):
    _, d = _detect("no_fault", seed)
    assert d.flagged(LEVEL) == ()


def test_domain_kinds_name_what_happened():
    _, d = _detect("gpu_xid_79", 0)
    kinds = {a.kind for a in d.flagged()}
    assert {"gpu_xid", "missing_exporter"} <= kinds
    _, d = _detect("input_drift", 0)
    assert any(f.severity == "significant" and "prompt_tokens" in f.feature for f in d.drift)
    _, d = _detect("mcp_tool_timeout", 0)
    assert any(f.kind in ("new", "error_rate") and "timed out" in f.template for f in d.logs)


def test_rca_scan_cli_json_and_bad_window():
    runner = CliRunner()
    res = runner.invoke(app, ["scan", "--scenario", "kv_cache_exhaustion", "--window", "30m", "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["series_scanned"] > 100 and payload["anomalies"]
    assert all(a["level"] >= 0.99 for a in payload["anomalies"])
    bad = runner.invoke(app, ["scan", "--window", "soon"])
    assert bad.exit_code != 0 and getattr(bad.exception, "field", None) == "--window"
