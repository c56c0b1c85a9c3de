"""AC@k conventions, the reference baselines and the bench runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from connectors.files import read_case
from rca.bench.baselines import baro_rank, nsigma_rank, random_rank
from rca.bench.metrics import ac_at_k, aggregate, avg_at_5, case_scores, chance_ac_at_k
from rca.bench.rca_bench import render_table, run_rca_bench
from rca.errors import BadInput

DATA = Path("/work/shared/data/rca")


def test_ac_at_k_single_root():
    ranked = ["a", "b", "c", "d", "e"]
    assert [ac_at_k(ranked, ["c"], k) for k in range(1, 6)] == [0, 0, 1, 1, 1]
    assert avg_at_5(ranked, ["c"]) == pytest.approx(0.6)
    assert avg_at_5(ranked, ["zzz"]) == 0
    assert ac_at_k(["a", "a", "b"], ["b"], 2) == 1  # duplicates count once


def test_ac_at_k_multi_root_convention():
    ranked = ["x", "r1", "y", "r2", "z"]
    truths = ["r1", "r2"]
    # |top-k ∩ truths| / min(k, #truths)
    assert [ac_at_k(ranked, truths, k) for k in range(1, 6)] == [0, 0.5, 0.5, 1, 1]
    assert ac_at_k(["r1"], ["r1", "r2", "r3"], 1) == 1
    assert ac_at_k(["r1", "r2"], ["r1", "r2", "r3"], 5) == pytest.approx(2 / 3)
    s = case_scores(ranked, truths)
    assert s["Avg@5"] == pytest.approx(0.6) and s["AC@3"] == 0.5


def test_ac_at_k_bad_input():
    with pytest.raises(BadInput):
        ac_at_k(["a"], [], 1)
    with pytest.raises(BadInput):
        ac_at_k(["a"], ["a"], 0)


def test_aggregate_and_chance():
    agg = aggregate([case_scores(["a"], ["a"]), case_scores(["b"], ["a"])])
    assert agg["cases"] == 2 and agg["AC@1"] == 0.5 and agg["Avg@5"] == 0.5
    assert aggregate([])["AC@1"] == 0.0
    assert chance_ac_at_k(10, 1, 1) == pytest.approx(0.1)
    assert chance_ac_at_k(10, 1, 5) == pytest.approx(0.5)
    assert chance_ac_at_k(4, 1, 5) == 1.0


def _tiny_case(d: Path) -> Path:
    """cpu of `db` jumps 20 IQRs, latency of `api` moves 4 IQRs, `web` is flat (IQR 0)."""
    d.mkdir(parents=True)
    rows = ["time,api_latency_s,db_cpu_pct,db_mem,web_rps"]
    normal_api = [1.0, 1.1, 0.9, 1.2, 0.8, 1.0]
    normal_db = [10, 11, 9, 12, 8, 10]
    for i, (a, c) in enumerate(zip(normal_api, normal_db, strict=True)):
        rows.append(f"{i * 60},{a},{c},{'' if i == 2 else 5},7")
    for i, (a, c) in enumerate([(1.5, 50), (2.0, 70), (1.6, 60)], start=6):
        rows.append(f"{i * 60},{a},{c},5,7")
    (d / "metrics.csv").write_text("\n".join(rows) + "\n")
    (d / "inject_time.txt").write_text("360\n")
    (d / "label.json").write_text(json.dumps({"root_cause_service": "db"}))
    return d


def test_baro_on_a_tiny_case(tmp_path):
    ranks = baro_rank(read_case(_tiny_case(tmp_path / "c")))
    assert [r[0] for r in ranks] == ["db", "api", "web"]
    svc, score, metric = ranks[0]
    # median 10, IQR = 10.75 - 9.25 = 1.5 (numpy linear percentiles), max |70 - 10| / 1.5 = 40
    assert metric == "db_cpu_pct" and score == pytest.approx(40.0)
    assert ranks[1][1] == pytest.approx(1.0 / 0.15)  # |2.0 - 1.0| / (1.075 - 0.925)
    assert ranks[2][1] == 0.0  # IQR 0 scores 0


def test_nsigma_and_random_on_a_tiny_case(tmp_path):
    case = read_case(_tiny_case(tmp_path / "c"))
    assert [r[0] for r in nsigma_rank(case)] == ["db", "api", "web"]
    r1, r2 = random_rank(case, seed=3), random_rank(case, seed=3)
    assert r1 == r2 and sorted(r[0] for r in r1) == ["api", "db", "web"]
    assert [r[1] for r in r1] == sorted((r[1] for r in r1), reverse=True)


def test_baselines_need_inject_time(tmp_path):
    d = _tiny_case(tmp_path / "c")
    (d / "inject_time.txt").unlink()
    with pytest.raises(BadInput) as e:
        baro_rank(read_case(d))
    assert e.value.field == "inject_time"
    (d / "inject_time.txt").write_text("99999")
    with pytest.raises(BadInput):
        baro_rank(read_case(d))


def test_bench_scores_and_survives_broken_rankers(tmp_path):
    _tiny_case(tmp_path / "set" / "db_cpu" / "1")
    _tiny_case(tmp_path / "set" / "db_cpu" / "2")
    bad = tmp_path / "set" / "broken" / "1"
    bad.mkdir(parents=True)
    (bad / "label.json").write_text('{"root_cause_service": "db"}')  # no metrics.csv

    def boom(case):
        raise RuntimeError("ranker bug")

    rankers = {"baro": lambda c: [s for s, _, _ in baro_rank(c)],
               "entities": lambda c: ["service:api", "service:db"],
               "boom": boom}
    res = run_rca_bench([tmp_path / "set"], rankers, progress=False)
    s = res.summary()[str(tmp_path / "set")]
    assert s["baro"]["cases"] == 3
    assert s["baro"]["AC@1"] == pytest.approx(2 / 3) and s["baro"]["errors"] == 1
    assert s["entities"]["AC@1"] == 0 and s["entities"]["AC@3"] == pytest.approx(2 / 3)
    assert s["boom"]["Avg@5"] == 0 and s["boom"]["errors"] == 3
    case = next(c for c in res.cases if c.case == "db_cpu/1")
    assert case.errors["boom"] == "RuntimeError: ranker bug" and case.top5["baro"][0] == "db"
    broken = next(c for c in res.cases if c.case == "broken/1")
    assert "metrics.csv" in broken.errors["baro"]
    out = json.loads(res.to_json())
    assert out["summary"][str(tmp_path / "set")]["baro"]["cases"] == 3 and len(out["cases"]) == 3
    console = Console(record=True, width=120)
    console.print(render_table(res))
    text = console.export_text()
    assert "baro" in text and "0.67" in text


@pytest.mark.skipif(not DATA.is_dir(), reason="shared benchmark data not present at /work/shared/data/rca")
def test_baro_reproduces_the_data_readme_table():
    rankers = {"baro": lambda c: [s for s, _, _ in baro_rank(c)]}
    res = run_rca_bench([DATA / "nezha-onlineboutique", DATA / "circa-sim"], rankers, progress=False)
    nezha = res.summary()[str(DATA / "nezha-onlineboutique")]["baro"]
    circa = res.summary()[str(DATA / "circa-sim")]["baro"]
    assert nezha["cases"] == 24 and circa["cases"] == 10
    assert nezha["AC@1"] == pytest.approx(0.21, abs=0.02)
    assert nezha["AC@3"] == pytest.approx(0.54, abs=0.02)
    assert nezha["Avg@5"] == pytest.approx(0.53, abs=0.02)
    assert circa["AC@1"] == pytest.approx(0.70, abs=0.02)
    assert circa["Avg@5"] == pytest.approx(0.73, abs=0.02)
