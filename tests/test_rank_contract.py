"""Ranker contract: properties any root-cause ranking must keep, whatever the data.

* permuting metric columns does not change the ranking;
* adding healthy services does not change the top-1;
* duplicating a service's metrics does not raise its score (max, not sum);
* empty and gappy columns are handled.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from connectors.files import read_case
from rca.casefolder import rank_loaded_case
from rca.types import entity_name

N_NORMAL, N_ANOM = 120, 40
METRICS = ("cpu_usage", "memory_usage", "latency_p90_s", "requests", "error_rate")


def _service_block(rng: np.random.Generator, svc: str, n: int) -> dict[str, np.ndarray]:
    base = {"cpu_usage": 0.3, "memory_usage": 500.0, "latency_p90_s": 0.05, "requests": 40.0, "error_rate": 0.01}
    noise = {"cpu_usage": 0.03, "memory_usage": 5.0, "latency_p90_s": 0.004, "requests": 3.0, "error_rate": 0.003}
    return {f"{svc}_{m}": base[m] + noise[m] * rng.standard_normal(n) for m in METRICS}


def _frame(seed: int, services: list[str], root: str, extra_healthy: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = N_NORMAL + N_ANOM
    cols: dict[str, np.ndarray] = {"time": 1_700_000_000 + 10 * np.arange(n)}
    for svc in services + [f"bystander{i}" for i in range(extra_healthy)]:
        cols.update(_service_block(rng, svc, n))
    cols[f"{root}_cpu_usage"][N_NORMAL:] += 0.5  # a CPU hog on the root
    cols[f"{root}_latency_p90_s"][N_NORMAL:] += 0.03
    for caller in services[:services.index(root)]:  # the callers get slower too, less so
        cols[f"{caller}_latency_p90_s"][N_NORMAL + 1:] += 0.02
    return pd.DataFrame(cols)


def _write(tmp_path, name: str, df: pd.DataFrame, services: list[str]) -> str:
    d = tmp_path / name / "svc_cpu" / "1"
    d.mkdir(parents=True)
    df.to_csv(d / "metrics.csv", index=False)
    (d / "inject_time.txt").write_text(str(int(df.time.iloc[N_NORMAL])))
    (d / "label.json").write_text(json.dumps({"root_cause_service": "x", "fault": "cpu"}))
    pd.DataFrame({"caller": services[:-1], "callee": services[1:]}).to_csv(d.parent.parent / "dependency.csv", index=False)
    return str(d)


def _ranking(path: str) -> list[tuple[str, float]]:
    inc = rank_loaded_case(read_case(path))
    return [(entity_name(h.root), h.score) for h in inc.hypotheses]


SERVICES = ["frontend", "checkout", "payment", "db"]


@pytest.mark.parametrize("seed", [0, 1])
def test_permuting_columns_keeps_the_ranking(tmp_path, seed):
    df = _frame(seed, SERVICES, "payment")
    a = _ranking(_write(tmp_path, "a", df, SERVICES))
    cols = list(df.columns[1:])
    np.random.default_rng(seed).shuffle(cols)
    b = _ranking(_write(tmp_path, "b", df[["time", *cols]], SERVICES))
    assert a[0][0] == "payment"
    assert a == b


def test_healthy_services_do_not_change_the_top1(tmp_path):
    df = _frame(3, SERVICES, "checkout")
    top = _ranking(_write(tmp_path, "a", df, SERVICES))[0][0]
    bigger = _frame(3, SERVICES, "checkout", extra_healthy=12)
    assert top == "checkout"
    assert _ranking(_write(tmp_path, "b", bigger, SERVICES))[0][0] == top


def test_duplicated_metrics_do_not_inflate_a_service(tmp_path):
    df = _frame(4, SERVICES, "payment")
    before = dict(_ranking(_write(tmp_path, "a", df, SERVICES)))
    dup = df.copy()
    for k in range(15):  # frontend reports every metric 15 more times (e.g. per container)
        for m in METRICS:
            dup[f"frontend_{m}_copy{k}"] = df[f"frontend_{m}"]
    after = dict(_ranking(_write(tmp_path, "b", dup, SERVICES)))
    assert max(after, key=after.get) == "payment"
    assert after["frontend"] == pytest.approx(before["frontend"])


def test_empty_and_gappy_columns_are_handled(tmp_path):
    df = _frame(5, SERVICES, "db")
    top = _ranking(_write(tmp_path, "a", df, SERVICES))[0][0]
    gappy = df.copy()
    gappy["checkout_queue_len"] = np.nan  # never reported
    rng = np.random.default_rng(0)
    holes = rng.random(len(df)) < 0.2
    gappy.loc[holes, "frontend_requests"] = np.nan
    gappy.loc[: N_NORMAL - 1, "payment_requests"] = np.nan  # only reported in the incident
    ranked = _ranking(_write(tmp_path, "b", gappy, SERVICES))
    assert ranked[0][0] == top == "db"
    assert all(np.isfinite(s) for _, s in ranked)
