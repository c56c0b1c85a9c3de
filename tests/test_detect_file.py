"""``rca detect FILE`` (via CliRunner) and the streaming detector's behaviour on small made-up series."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from models.streaming import StreamingNAB
from rca.cli import app
from rca.detect_file import DEFAULT_THRESHOLD, detect_file
from rca.errors import BadInput

runner = CliRunner()


def _series(n: int = 800, spike_at: int | None = 600, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = 50 + 5 * np.sin(np.arange(n) * 2 * np.pi / 288) + rng.normal(0, 1, n)
    if spike_at is not None:
        v[spike_at] += 25
    return v


def _nab_csv(path, values) -> None:
    ts = pd.date_range("2014-04-01", periods=len(values), freq="5min").strftime("%Y-%m-%d %H:%M:%S")
    pd.DataFrame({"timestamp": ts, "value": values}).to_csv(path, index=False)


def test_cli_detect_nab_flags_the_spike(tmp_path):
    src, out = tmp_path / "a.csv", tmp_path / "out.csv"
    _nab_csv(src, _series())
    r = runner.invoke(app, ["detect", str(src), "--out", str(out), "--format", "nab", "--streaming", "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    assert summary["rows"] == 800
    res = pd.read_csv(out)
    assert list(res.columns) == ["timestamp", "anomaly_score", "is_anomaly"]
    assert res["anomaly_score"].between(0, 1).all()
    # streaming has no history at first (early rows set records); once a full daily cycle (288 rows)
    # has been seen, the spike is the only alert
    assert int(res["anomaly_score"].iloc[300:].idxmax()) == 600
    assert res.loc[600, "is_anomaly"]
    assert res["is_anomaly"].sum() == summary["flagged"]
    assert res["is_anomaly"].iloc[300:].sum() == 1


def test_cli_detect_wide_reports_the_column(tmp_path):
    src, out = tmp_path / "w.csv", tmp_path / "o.csv"
    t = np.arange(1_700_000_000, 1_700_000_000 + 60 * 800, 60)
    pd.DataFrame({"time": t, "cpu": _series(spike_at=None, seed=1), "mem": _series(spike_at=500, seed=2)}).to_csv(
        src, index=False)
    r = runner.invoke(app, ["detect", str(src), "--out", str(out), "--format", "wide"])
    assert r.exit_code == 0, r.output
    res = pd.read_csv(out)
    assert {"timestamp", "anomaly_score", "is_anomaly", "series"} <= set(res.columns)
    top = int(res["anomaly_score"].idxmax())
    assert top == 500 and res.loc[top, "series"] == "mem"


@pytest.mark.parametrize(("header", "rows", "fmt", "field"), [
    ("time,value", ["2014-01-01 00:00:00,1"], "nab", "timestamp"),
    ("timestamp,val", ["2014-01-01 00:00:00,1"], "nab", "value"),
    ("timestamp,value", ["2014-01-01 00:00:00,1", "2014-01-01 00:05:00,abc"], "nab", "value"),
    ("when,a", ["1,2"], "wide", "timestamp"),
    ("timestamp,a,b", ["1,2,3", "2,x,4"], "wide", "a"),
])
def test_cli_detect_bad_input_names_the_column(tmp_path, header, rows, fmt, field):
    src = tmp_path / "bad.csv"
    src.write_text("\n".join([header, *rows]) + "\n")
    r = runner.invoke(app, ["detect", str(src), "--out", str(tmp_path / "o.csv"), "--format", fmt])
    # CliRunner sees the exception itself; ``rca.cli.main`` turns BadInput into exit code 2
    assert isinstance(r.exception, BadInput), r.output
    assert r.exception.field == field and r.exception.fix


def test_streaming_mode_is_causal_and_batch_mode_uses_the_file(tmp_path):
    v = _series(spike_at=700)
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    _nab_csv(a, v)
    w = v.copy()
    w[400:] += 100.0  # change the future
    _nab_csv(b, w)
    sa, sb = (detect_file(p, "nab", streaming=True)["anomaly_score"].to_numpy() for p in (a, b))
    np.testing.assert_array_equal(sa[:400], sb[:400])
    batch = detect_file(a, "nab", streaming=False)["anomaly_score"].to_numpy()
    np.testing.assert_array_equal(batch[120:], sa[120:])  # after the 15% baseline: same as streaming
    assert not np.array_equal(batch[:120], sa[:120])  # the baseline rows are scored with the whole file


def test_streaming_detector_fires_once_per_incident_and_not_on_noise():
    rng = np.random.default_rng(5)
    noise = rng.normal(0, 1, (1, 3000))
    shifted = noise.copy()
    shifted[0, 2000:] += 6.0  # a level shift: one early alert, then quiet
    det = StreamingNAB().fit(np.empty((1, 0)))
    s_noise = det.anomaly_score(noise)[0]
    s_shift = det.anomaly_score(shifted)[0]
    assert s_shift[2000:2010].max() >= DEFAULT_THRESHOLD
    assert (s_shift[2000:2300] >= DEFAULT_THRESHOLD).sum() <= 3
    assert s_shift[2000:2010].max() > np.sort(s_noise[500:])[-3]  # above all but the rarest noise records
