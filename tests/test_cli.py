"""The CLI contract: exit codes, JSON shapes, clear errors on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def run(*args: str, env_db: Path | None = None) -> subprocess.CompletedProcess:
    env = None
    if env_db is not None:
        import os

        env = dict(os.environ, RCA_DATABASE_URL=f"sqlite:///{env_db}")
    return subprocess.run([sys.executable, "-m", "rca.cli", *args], capture_output=True, text=True,
                          timeout=300, env=env)


def _case(tmp: Path, inject: bool = True) -> Path:
    rng = np.random.default_rng(0)
    t = np.arange(1_700_000_000, 1_700_000_000 + 60 * 40, 60)
    df = pd.DataFrame({"time": t})
    for svc in ("front", "cart", "redis"):
        for m in ("cpu_usage_rate_pct", "latency_p90_s"):
            df[f"{svc}_{m}"] = rng.normal(10, 0.5, len(t))
    df.loc[30:, "redis_cpu_usage_rate_pct"] += 30
    df.loc[31:, "cart_latency_p90_s"] += 5
    df.loc[31:, "front_latency_p90_s"] += 5
    case = tmp / "redis_cpu" / "1"
    case.mkdir(parents=True)
    df.to_csv(case / "metrics.csv", index=False)
    if inject:
        (case / "inject_time.txt").write_text(str(int(t[30])))
    (case / "label.json").write_text(json.dumps({"root_cause_service": "redis", "fault": "cpu"}))
    (tmp / "dependency.csv").write_text("caller,callee\nfront,cart\ncart,redis\n")
    return case


def test_help_lists_commands():
    r = run("--help")
    assert r.returncode == 0
    for cmd in ("demo", "simulate", "rank", "bench"):
        assert cmd in r.stdout


def test_rank_json_on_a_case(tmp_path):
    case = _case(tmp_path)
    r = run("rank", str(case), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["ranks"][0]["service"] == "redis"
    assert out["ranks"][0]["category"] == "cpu"  # the microservice vocabulary for case folders
    assert {"service", "score", "metric", "category", "evidence"} <= set(out["ranks"][0])


def test_rank_detect_time_finds_the_same_root(tmp_path):
    case = _case(tmp_path, inject=False)
    r = run("rank", str(case), "--detect-time", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["ranks"][0]["service"] == "redis"


def test_rank_without_inject_time_says_how_to_fix(tmp_path):
    case = _case(tmp_path, inject=False)
    r = run("rank", str(case))
    assert r.returncode == 2
    assert "--detect-time" in r.stderr and "Traceback" not in r.stderr


def test_rank_missing_folder_exits_2(tmp_path):
    r = run("rank", str(tmp_path / "nope"))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr


def test_bench_rca_reports_all_rankers(tmp_path):
    _case(tmp_path)
    r = run("bench", "rca", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    txt = r.stdout
    for name in ("rca", "baro", "nsigma", "random"):
        assert f'"{name}"' in txt


@pytest.mark.parametrize("args", [("demo", "--scenario", "no-such-scenario"), ("demo", "--seed", "x")])
def test_demo_bad_arguments_exit_2(args, tmp_path):
    r = run(*args, env_db=tmp_path / "x.db")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
