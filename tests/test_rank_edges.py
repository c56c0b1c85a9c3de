"""Call edges, quieter dependencies and onset order in the graph ranker.

* a call-edge column measured by callers (``a_edge_..._to_b``) is about the callee when most
  of its callers see it, about the caller when the caller sees it on most of its calls;
* a dependency that only got quieter (fewer calls, less I/O) does not explain its caller;
* of two equally strong anomalies, the one that starts late in the window ranks lower.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from connectors.files import read_case, read_metrics
from rca.casefolder import rank_loaded_case
from rca.types import entity_name

N_NORMAL, N_ANOM = 120, 40
CALLS = [("front", "cart"), ("front", "shop"), ("shop", "cart"), ("shop", "mail")]
SERVICES = ["front", "shop", "cart", "mail"]


def _frame(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = N_NORMAL + N_ANOM
    cols: dict[str, np.ndarray] = {"time": 1_700_000_000 + 10 * np.arange(n)}
    for s in SERVICES:
        cols[f"{s}_cpu_usage"] = 0.3 + 0.02 * rng.standard_normal(n)
        cols[f"{s}_server_latency_p90_s"] = 0.02 + 0.002 * rng.standard_normal(n)
        cols[f"{s}_syscall_write"] = 1000 + 30 * rng.standard_normal(n)
    for a, b in CALLS:
        cols[f"{a}_edge_latency_p50_s_to_{b}"] = 0.01 + 0.001 * rng.standard_normal(n)
        cols[f"{b}_edge_latency_p50_s_from_{a}"] = 0.008 + 0.001 * rng.standard_normal(n)
    return cols


def _write(tmp_path, cols: dict[str, np.ndarray], name: str = "c") -> str:
    d = tmp_path / name / "x_fault" / "1"
    d.mkdir(parents=True)
    pd.DataFrame(cols).to_csv(d / "metrics.csv", index=False)
    (d / "inject_time.txt").write_text(str(int(cols["time"][N_NORMAL])))
    (d / "label.json").write_text(json.dumps({"root_cause_service": "x", "fault": "x"}))
    pd.DataFrame(CALLS, columns=["caller", "callee"]).to_csv(d.parent.parent / "dependency.csv", index=False)
    return str(d)


def _top(path: str) -> list[str]:
    return [entity_name(h.root) for h in rank_loaded_case(read_case(path)).hypotheses]


def test_edge_columns_name_their_peer_and_side(tmp_path):
    cols = _frame(0)
    cols["front_edge_latency_p50_s_to_nowhere"] = cols["front_cpu_usage"]  # unknown peer: plain
    p = tmp_path / "m.csv"
    pd.DataFrame(cols).to_csv(p, index=False)
    keys = {f"{k.label('service')}_{k.name}": k for k in read_metrics(p).keys}
    to, frm = keys["front_edge_latency_p50_s_to_cart"], keys["cart_edge_latency_p50_s_from_front"]
    assert (to.label("peer"), to.label("side")) == ("cart", "client")
    assert (frm.label("peer"), frm.label("side")) == ("front", "server")
    assert keys["front_edge_latency_p50_s_to_nowhere"].label("peer") is None
    assert keys["front_cpu_usage"].label("side") is None


def test_slow_link_into_a_callee_blames_the_callee(tmp_path):
    """Every caller's calls to cart got slow; cart's own server latency did not move."""
    for seed in (0, 1, 2):
        cols = _frame(seed)
        for a in ("front", "shop"):
            cols[f"{a}_edge_latency_p50_s_to_cart"][N_NORMAL:] += 0.25
            cols[f"{a}_server_latency_p90_s"][N_NORMAL + 1:] += 0.2  # the callers wait
        assert _top(_write(tmp_path, cols, f"s{seed}"))[0] == "cart"


def test_a_caller_slow_on_all_its_calls_keeps_the_blame(tmp_path):
    """shop's calls to cart and mail are slow, front's calls to cart are not: shop's client."""
    for seed in (0, 1, 2):
        cols = _frame(seed)
        for b in ("cart", "mail"):
            cols[f"shop_edge_latency_p50_s_to_{b}"][N_NORMAL:] += 0.25
        cols["shop_server_latency_p90_s"][N_NORMAL + 1:] += 0.2
        top = _top(_write(tmp_path, cols, f"s{seed}"))
        assert top[0] == "shop"
        assert "cart" not in top[:1] and "mail" not in top[:1]


def test_a_dependency_that_only_went_quiet_does_not_explain_its_caller(tmp_path):
    """shop fails fast on its own and stops calling mail: mail's I/O drops (an effect)."""
    for seed in (0, 1, 2):
        cols = _frame(seed)
        cols["shop_server_latency_p90_s"][N_NORMAL + 1:] += 0.1
        cols["mail_syscall_write"][N_NORMAL:] = 0.0
        top = _top(_write(tmp_path, cols, f"s{seed}"))
        assert top[0] == "shop", top


def test_a_late_anomaly_ranks_below_an_early_one_of_the_same_size(tmp_path):
    for seed in (0, 1, 2):
        cols = _frame(seed)
        cols["cart_cpu_usage"][N_NORMAL:] += 0.3  # from the start of the window
        cols["mail_cpu_usage"][N_NORMAL + 25:] += 0.3  # two thirds into it
        late_first = _frame(seed)
        late_first["mail_cpu_usage"][N_NORMAL:] += 0.3
        late_first["cart_cpu_usage"][N_NORMAL + 25:] += 0.3
        a = _top(_write(tmp_path, cols, f"a{seed}"))
        b = _top(_write(tmp_path, late_first, f"b{seed}"))
        assert a.index("cart") < a.index("mail")
        assert b.index("mail") < b.index("cart")
