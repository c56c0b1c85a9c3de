"""Evidence series (rca/evidence_data.py) and their PNG plots (api/plots.py)."""

from __future__ import annotations

import io
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
import pytest
from PIL import Image

from api.plots import HEIGHT_RANGE, WIDTH_RANGE, render_png
from connectors.memory import StaticConnector
from models.log_templates import LogTemplateMiner
from rca.engine import AnalysisRequest
from rca.entities import aliases_from_inventory
from rca.errors import NotFound
from rca.evidence_data import EvidenceSeries, evidence_series, parse_series_key
from rca.rank.sources import with_source_signals
from rca.serialize import parse_rfc3339
from rca.settings import Settings
from rca.signals import derive
from rca.sim import simulate
from rca.types import Evidence, Incident, Snapshot, Window
from rca.wiring import build_engine

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LINE_RGB = np.array([0x1F, 0x77, 0xB4])  # the series colour in api/plots.py


@dataclass(frozen=True)
class Case:
    snap: Snapshot
    incident: Incident
    base: Window
    inc: Window


@pytest.fixture(scope="module")
def case() -> Case:
    result = simulate("kv_cache_exhaustion", 0)
    snap = result.snapshot
    engine = build_engine(Settings(), [StaticConnector(snap, name="simulator")])
    incident = engine.analyze(AnalysisRequest(at=result.question_time), snapshot=snap)
    assert incident.hypotheses and incident.hypotheses[0].evidence
    step = snap.window.step
    base = Window(*incident.params["baseline"], step)
    inc = Window(*incident.params["incident"], step)
    return Case(snap, incident, base, inc)


def _first(case: Case, kind: str) -> tuple[int, Evidence]:
    ev = case.incident.hypotheses[0].evidence
    return next((n, e) for n, e in enumerate(ev, 1) if e.kind == kind)


def _with_evidence(incident: Incident, *items: Evidence) -> Incident:
    """The incident with its top hypothesis carrying exactly ``items``."""
    top = replace(incident.hypotheses[0], evidence=tuple(items))
    return replace(incident, hypotheses=(top,) + tuple(incident.hypotheses[1:]))


def _decode(png: bytes) -> np.ndarray:
    assert png[:8] == PNG_SIGNATURE
    img = Image.open(io.BytesIO(png))
    img.load()
    return np.asarray(img.convert("RGB"))


def _line_pixels(rgb: np.ndarray) -> int:
    return int((np.abs(rgb.astype(int) - LINE_RGB).sum(axis=2) <= 30).sum())


# ------------------------------------------------------------------------------------ metric evidence

def test_metric_evidence_is_the_derived_row_around_its_onset(case: Case) -> None:
    n, ev = _first(case, "metric")
    s = evidence_series(case.incident, 1, n, case.snap)

    # the very row a full derive gives (evidence_series derives only that metric's raw series)
    full = derive(case.snap.metrics, aliases_from_inventory(case.snap.inventory))
    row = next(i for i, k in enumerate(full.frame.keys) if str(k) == ev.ref["series"])
    cols = (full.frame.timestamps >= case.base.start) & (full.frame.timestamps <= case.inc.end)
    np.testing.assert_array_equal(s.timestamps, full.frame.timestamps[cols])
    np.testing.assert_array_equal(s.values, full.frame.values[row, cols])  # NaN == NaN here

    # timestamps cover the baseline and the incident, nothing else
    step = case.snap.window.step
    assert s.timestamps.dtype == np.int64 and s.values.dtype == np.float64
    assert s.timestamps[0] < case.base.start + step and s.timestamps[-1] > case.inc.end - step
    assert s.timestamps[0] >= case.base.start and s.timestamps[-1] <= case.inc.end
    assert s.baseline == (case.base.start, case.base.end) and s.incident == (case.inc.start, case.inc.end)

    # the values really move from the baseline value towards the observed one at the onset
    assert s.onset == parse_rfc3339(ev.ref["start"])
    assert s.baseline_value == ev.ref["baseline"] and s.observed_value == ev.ref["observed"]
    bv, ov = s.baseline_value, s.observed_value
    progress = (s.values - bv) / (ov - bv)  # 0 at the baseline value, 1 at the observed one
    before = progress[(s.timestamps >= case.base.start) & (s.timestamps <= case.base.end)]
    after = progress[(s.timestamps >= s.onset) & (s.timestamps <= case.inc.end)]
    assert np.nanmean(np.abs(before) < 0.2) > 0.9
    assert np.nanmax(after) > 0.5
    assert np.nanmedian(after) > 0.25

    name, stat = parse_series_key(ev.ref["series"]).name, parse_series_key(ev.ref["series"]).label("stat")
    assert ev.entity in s.title and name in s.title
    assert stat == "value" or stat in s.title
    assert s.unit  # every metric of this scenario's top evidence has a catalogue unit


def test_series_lookup_ignores_label_order(case: Case) -> None:
    n, ev = _first(case, "metric")
    key = parse_series_key(ev.ref["series"])
    assert len(key.labels) > 1
    shuffled = key.name + "{" + ",".join(f'{k}="{v}"' for k, v in reversed(key.labels)) + "}"
    assert shuffled != ev.ref["series"]
    moved = replace(ev, ref={**ev.ref, "series": shuffled})
    s1 = evidence_series(case.incident, 1, n, case.snap)
    s2 = evidence_series(_with_evidence(case.incident, moved), 1, 1, case.snap)
    np.testing.assert_array_equal(s1.values, s2.values)


def test_parse_series_key() -> None:
    k = parse_series_key('vllm:x_seconds{stat="p99",pod="a-0",note="say \\"hi\\", ok"}')
    assert k is not None and k.name == "vllm:x_seconds"
    assert k.as_dict() == {"stat": "p99", "pod": "a-0", "note": 'say "hi", ok'}
    assert parse_series_key("up") is not None and parse_series_key("up").labels == ()
    assert parse_series_key('x{a="1",,}') is None
    assert parse_series_key("") is None


def test_metric_evidence_on_a_log_signal_row(case: Case) -> None:
    """The ranker scores log/trace signals too; a metric item may point at such a row."""
    ent = case.incident.hypotheses[0].root
    if not any(r.entity == ent for r in case.snap.logs):
        ent = case.snap.logs[0].entity
    series = f'log_error_lines{{entity="{ent}",source="logs"}}'
    item = Evidence("metric", ent, "error lines", {"series": series, "entity": ent})
    s = evidence_series(_with_evidence(case.incident, item), 1, 1, case.snap)

    aliases = aliases_from_inventory(case.snap.inventory)
    templates = LogTemplateMiner().fit_transform([r.body for r in case.snap.logs])
    sig = with_source_signals(derive(case.snap.metrics, aliases), case.snap.logs, templates, case.snap.spans,
                              case.base, aliases)
    row = next(i for i, k in enumerate(sig.frame.keys) if str(k) == series)
    cols = (sig.frame.timestamps >= case.base.start) & (sig.frame.timestamps <= case.inc.end)
    np.testing.assert_allclose(s.values, sig.frame.values[row, cols], equal_nan=True)
    assert s.onset is None and s.baseline_value is None


# ------------------------------------------------------------------------------------ log and trace

def _log_item(case: Case, engines_own: bool) -> tuple[Incident, int, Evidence]:
    """The engine's own log item (when it made one), or one built here like the ranker builds it
    (the root's busiest template in the incident)."""
    if engines_own:
        found = [(n, e) for n, e in enumerate(case.incident.hypotheses[0].evidence, 1) if e.kind == "log"]
        if found:
            return case.incident, *found[0]
    templates = LogTemplateMiner().fit_transform([r.body for r in case.snap.logs])
    t = np.array([r.ts_ns // 1_000_000_000 for r in case.snap.logs])
    ents = np.array([r.entity for r in case.snap.logs])
    tpl = np.array(templates, dtype=object)
    root = case.incident.hypotheses[0].root
    mine = (ents == root) & (t >= case.inc.start) & (t <= case.inc.end)
    chosen = Counter(sorted(tpl[mine])).most_common(1)[0][0]  # sorted: ties break the same way every run
    sel = tpl == chosen
    in_base = (ents == root) & (t >= case.base.start) & (t <= case.base.end)
    ref = {"template": chosen, "count": int((sel & mine).sum()),
           "baseline_count": int((sel & in_base).sum()),
           "examples": [case.snap.logs[i].body[:300] for i in np.flatnonzero(sel & mine)[:3]],
           "trace_ids": []}
    item = Evidence("log", root, f"log '{chosen}'", ref)
    return _with_evidence(case.incident, item), 1, item


@pytest.mark.parametrize("engines_own", [True, False])
def test_log_evidence_is_a_line_count_series(case: Case, engines_own: bool) -> None:
    incident, n, ev = _log_item(case, engines_own)
    s = evidence_series(incident, 1, n, case.snap)
    assert s.unit.startswith("lines per")
    v = s.values
    assert np.isfinite(v).all() and (v >= 0).all() and np.array_equal(v, np.round(v))
    ts = s.timestamps
    in_inc = v[(ts >= case.inc.start) & (ts <= case.inc.end)].sum()
    in_base = v[(ts >= case.base.start) & (ts <= case.base.end)].sum()
    # the ranker counted lines with t in [start, end]; a bin counts [t, t + step): edges differ a little
    assert abs(in_inc - ev.ref["count"]) <= max(3, 0.05 * ev.ref["count"])
    assert abs(in_base - ev.ref["baseline_count"]) <= max(3, 0.05 * ev.ref["baseline_count"])
    assert ev.ref["count"] > 0 and in_inc > 0
    step = case.snap.window.step
    assert s.observed_value == pytest.approx(ev.ref["count"] * step / case.inc.duration)
    if ev.ref["baseline_count"] == 0:  # a new template: the onset is its first line
        assert s.onset is not None and case.base.end < s.onset <= case.inc.end
        assert v[ts < s.onset - step].sum() == 0 and v[ts >= s.onset - step].sum() > 0


def test_trace_evidence_is_the_span_duration(case: Case) -> None:
    hyp = case.incident.hypotheses[0]
    found = [(n, e) for n, e in enumerate(hyp.evidence, 1) if e.kind == "trace"]
    if found:
        incident, (n, ev) = case.incident, found[0]
    else:  # the ranker made none: build one for the root's busiest span
        busiest = Counter(sorted(s.name for s in case.snap.spans)).most_common(1)[0][0]
        ev = Evidence("trace", hyp.root, "span", {"span": busiest})
        incident, n = _with_evidence(case.incident, ev), 1
    s = evidence_series(incident, 1, n, case.snap)
    assert s.unit in ("s", "fraction")
    ts, v = s.timestamps, s.values
    assert np.isfinite(v).any() and (v[np.isfinite(v)] >= 0).all()
    assert ts[0] >= case.base.start and ts[-1] <= case.inc.end
    if found and s.unit == "s":
        # the per-bin medians agree with the ranker's baseline / incident medians
        b = v[(ts >= case.base.start) & (ts <= case.base.end)]
        i = v[(ts >= case.inc.start) & (ts <= case.inc.end)]
        assert np.nanmedian(b) == pytest.approx(ev.ref["baseline_median_s"], rel=0.3)
        assert np.nanmax(i) > 1.2 * np.nanmedian(b)


# ------------------------------------------------------------------------------------ errors

def test_not_found_names_the_field(case: Case) -> None:
    hyps = case.incident.hypotheses
    n_ev = len(hyps[0].evidence)
    for rank, n, field in ((1, 0, "n"), (1, n_ev + 1, "n"), (1, -1, "n"),
                           (len(hyps) + 1, 1, "hypothesis"), (0, 1, "hypothesis")):
        with pytest.raises(NotFound) as err:
            evidence_series(case.incident, rank, n, case.snap)
        assert err.value.field == field, (rank, n)
        assert err.value.fix


def test_items_with_nothing_to_plot(case: Case) -> None:
    ent = case.incident.hypotheses[0].root
    change = Evidence("change", ent, "app_build_info appeared",
                      {"series": 'app_build_info{version="2"}', "at": "2026-11-20T19:00:00Z"})
    graph = Evidence("graph", ent, "may be an effect of x", {"explained_by": "service:x"})
    gone = Evidence("metric", ent, "gone", {"series": 'no_such_metric_seconds{pod="nowhere",stat="p99"}'})
    incident = _with_evidence(case.incident, change, graph, gone)
    for n, word in ((1, "change"), (2, "graph"), (3, "no_such_metric_seconds")):
        with pytest.raises(NotFound) as err:
            evidence_series(incident, 1, n, case.snap)
        assert err.value.field == "n" and err.value.fix and word in err.value.message


def test_missing_window_params_fall_back_to_the_snapshot(case: Case) -> None:
    n, _ = _first(case, "metric")
    s = evidence_series(replace(case.incident, params={}), 1, n, case.snap)
    assert s.incident == (case.incident.window.start, case.incident.window.end)
    assert s.timestamps[0] == case.snap.metrics.timestamps[0] and s.baseline[1] < s.incident[0]


# ------------------------------------------------------------------------------------ PNG

@pytest.mark.filterwarnings("error")
def test_render_png_draws_the_series_at_the_requested_size(case: Case) -> None:
    n, _ = _first(case, "metric")
    s = evidence_series(case.incident, 1, n, case.snap)
    rgb = _decode(render_png(s))
    assert rgb.shape == (320, 900, 3)
    assert _line_pixels(rgb) > 200
    rgb = _decode(render_png(s, width_px=640, height_px=240))
    assert rgb.shape == (240, 640, 3)
    tiny = _decode(render_png(s, width_px=1, height_px=-5))
    huge = _decode(render_png(s, width_px=10**6, height_px=10**6))
    assert tiny.shape[:2] == (HEIGHT_RANGE[0], WIDTH_RANGE[0])
    assert huge.shape[:2] == (HEIGHT_RANGE[1], WIDTH_RANGE[1])


@pytest.mark.filterwarnings("error")
def test_render_png_no_data(case: Case) -> None:
    """Also: a ``$`` in user text (a log template, a unit) is text, not TeX."""
    ts = np.arange(case.base.start, case.inc.end + 1, 15, dtype=np.int64)
    common = dict(title="pod:x · log lines 'env ${VAR}_$ unset, cost $x^$'", unit="$",
                  baseline=(case.base.start, case.base.end),
                  incident=(case.inc.start, case.inc.end), baseline_value=None, observed_value=None)
    nan = EvidenceSeries(timestamps=ts, values=np.full(len(ts), np.nan), onset=case.inc.start, **common)
    empty = EvidenceSeries(timestamps=np.empty(0, np.int64), values=np.empty(0), onset=None, **common)
    some = replace(nan, values=np.where(ts >= case.inc.start, 2.0, 1.0))
    for s in (nan, empty):
        rgb = _decode(render_png(s, width_px=500, height_px=200))
        assert rgb.shape == (200, 500, 3)
        assert _line_pixels(rgb) == 0  # no series drawn: the panel says "no data"
    assert _line_pixels(_decode(render_png(some, width_px=500, height_px=200))) > 0


def test_render_png_keeps_gaps_and_lone_samples(case: Case) -> None:
    ts = np.arange(case.base.start, case.inc.end + 1, 15, dtype=np.int64)
    v = np.full(len(ts), np.nan)
    lone = len(ts) // 3
    v[lone] = 1.0
    v[-40:] = 5.0
    s = EvidenceSeries("pod:x · y", "s", ts, v, (case.base.start, case.base.end),
                       (case.inc.start, case.inc.end), None, None, None)
    rgb = _decode(render_png(s))
    # the lone sample is marked (its own marker pixels), between gaps nothing is drawn
    without = replace(s, values=np.where(np.arange(len(ts)) == lone, np.nan, v))
    assert _line_pixels(rgb) > _line_pixels(_decode(render_png(without)))


@pytest.mark.filterwarnings("error")
def test_render_png_is_thread_safe_and_deterministic(case: Case) -> None:
    items = [evidence_series(case.incident, 1, n, case.snap)
             for n, e in enumerate(case.incident.hypotheses[0].evidence, 1) if e.kind == "metric"][:3]
    sequential = [render_png(s) for s in items]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(render_png, items * 2))
    assert parallel == sequential * 2


def test_imports_stay_light() -> None:
    code = ("import sys, api, api.plots, rca.evidence_data; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported eagerly'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
