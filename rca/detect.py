"""Detection orchestration: every detector over the whole derived matrix of one snapshot.

``detect(signals, snapshot, baseline, incident)`` answers "what is anomalous, since when, how
much" for every series at once and returns a ``Detection``:

* ``anomalies`` — component anomalies, best first. Each carries a ``kind`` (what a human would
  call it: ``gpu_xid``, ``kv_cache_saturation``, ``tail_latency_shift``, ``token_loop``,
  ``throughput_drop``, ``missing_exporter``, ``level_shift`` …), the onset and peak (unix s),
  the raw detector score and ``level``: the score mapped to [0, 1] by a per-series calibration
  on the baseline window (``LEVEL`` is the default flag threshold).
* ``drift`` — input drift (prompt/output token distributions from spans), reported apart from
  component faults: a shifted input is a cause to know about, not a broken component.
* ``logs`` — log-template findings (new templates, error-template bursts, semantic outliers).

The domain rules are a table (``RULES``): which series (catalogue family, name, stat), which
detector, what the anomaly is called. Series no rule claims are judged by the generic fleet
scanner (robust, seasonal, EWMA and change-point detectors with calibrated thresholds).
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.deviation import RobustDeviation
from models.gpu import DropToZero, SaturationLevel, XidEvents
from models.latency import QuantileShift, TailShift
from models.llm import LOOP_THRESHOLD, LoadAdjustedLatency, repetition_scores
from models.presence import Vanished
from models.scan import missing_run_length
from rca.catalog import classify
from rca.entities import entity_of_series
from rca.signals import Signals
from rca.types import Anomaly, MetricFrame, SeriesKey, Snapshot, Span, Window

__all__ = ["LEVEL", "RULES", "Detection", "Rule", "detect", "output_loops"]

LEVEL = 0.99  # default: flag anomalies whose calibrated level reaches this


@dataclass(frozen=True)
class Detection:
    anomalies: tuple[Anomaly, ...]
    drift: tuple[Any, ...] = ()
    logs: tuple[Any, ...] = ()
    series_scanned: int = 0
    notes: tuple[str, ...] = ()

    def flagged(self, level: float = LEVEL) -> tuple[Anomaly, ...]:
        return tuple(a for a in self.anomalies if a.level >= level)


@dataclass(frozen=True)
class RuleInput:
    """What a rule's scorer gets: its rows' baseline and incident values and helpers."""

    rows: np.ndarray
    X_b: np.ndarray
    X_i: np.ndarray
    signals: Signals
    baseline_cols: np.ndarray
    incident_cols: np.ndarray

    def partner(self, stat: str) -> np.ndarray | None:
        """Rows of the same series with another ``stat`` (e.g. p50 beside p99), -1 if none."""
        keys = self.signals.frame.keys
        index = {(k.name, tuple(p for p in k.labels if p[0] != "stat"), k.label("stat")): j
                 for j, k in enumerate(keys)}
        out = np.array([index.get((keys[r].name, tuple(p for p in keys[r].labels if p[0] != "stat"), stat), -1)
                        for r in self.rows])
        return out if (out >= 0).any() else None


@dataclass(frozen=True)
class Rule:
    """Which series (name regex, stat regex, optional catalogue family), which scorer, which kind.

    ``score(inp) -> (scores_b, scores_i, calibrated)``: raw scores on the baseline and incident
    columns; ``calibrated=False`` means the scores already are levels in [0, 1]."""

    kind: str
    name: str
    stat: str
    score: Callable[[RuleInput], tuple[np.ndarray, np.ndarray, bool]]
    family: str = ""
    up_kind: str = ""
    down_kind: str = ""
    flag_at: float = 0.5  # uncalibrated rules: the natural score that maps to ``LEVEL``


def _pointwise(make: Callable[[], Any], calibrated: bool = True,
               transform: Callable[[np.ndarray], np.ndarray] | None = None
               ) -> Callable[[RuleInput], tuple[np.ndarray, np.ndarray, bool]]:
    def run(inp: RuleInput) -> tuple[np.ndarray, np.ndarray, bool]:
        f = transform or (lambda a: a)
        det = make().fit(f(inp.X_b))
        return det.anomaly_score(f(inp.X_b)), det.anomaly_score(f(inp.X_i)), calibrated
    return run


def _tail_shift(inp: RuleInput) -> tuple[np.ndarray, np.ndarray, bool]:
    med_rows = inp.partner("p50")
    F = inp.signals.frame.values
    if med_rows is None:
        det = QuantileShift().fit(inp.X_b)
        return det.anomaly_score(inp.X_b), det.anomaly_score(inp.X_i), True
    M = np.where(med_rows[:, None] >= 0, F[np.maximum(med_rows, 0)], np.nan)
    M_b, M_i = M[:, inp.baseline_cols], M[:, inp.incident_cols]
    res = inp.signals.resolution
    det = TailShift(resolution=(res[inp.rows] if res is not None else np.zeros(len(inp.rows))).tolist())
    det.fit(inp.X_b, M_b)
    return det.anomaly_score(inp.X_b, M_b), det.anomaly_score(inp.X_i, M_i), True


def _quantile_shift(inp: RuleInput) -> tuple[np.ndarray, np.ndarray, bool]:
    """Upward quantile shifts, floored at each histogram's bucket width."""
    res = inp.signals.resolution
    det = QuantileShift(resolution=(res[inp.rows] if res is not None else np.zeros(len(inp.rows))).tolist())
    det.fit(inp.X_b)
    return det.anomaly_score(inp.X_b), det.anomaly_score(inp.X_i), True


def _latency_vs_load(inp: RuleInput) -> tuple[np.ndarray, np.ndarray, bool]:
    """TTFT/TPOT against the queue of the same entity (waiting + running requests)."""
    sig = inp.signals
    load_rows: dict[str, list[int]] = {}
    families: dict[tuple[str, str], str] = {}
    for j, k in enumerate(sig.frame.keys):
        ns = (k.name, sig.stat(j))
        fam = families.get(ns)
        if fam is None:
            fam = families[ns] = classify(*ns).family
        if fam in ("queue_waiting", "queue"):
            load_rows.setdefault(sig.entities[j], []).append(j)
    F = sig.frame.values
    L = np.full((len(inp.rows), F.shape[1]), np.nan)
    for n, r in enumerate(inp.rows):
        js = load_rows.get(sig.entities[r])
        if js:
            L[n] = np.nansum(F[js], axis=0) + 1.0
    has = ~np.isnan(L).all(axis=1)
    L_b, L_i = L[:, inp.baseline_cols], L[:, inp.incident_cols]
    det = LoadAdjustedLatency(rel_floor=0.1).fit(inp.X_b, np.where(has[:, None], L_b, 1.0))
    sb = det.signed_deviation(inp.X_b, np.where(has[:, None], L_b, 1.0))
    si = det.signed_deviation(inp.X_i, np.where(has[:, None], L_i, 1.0))
    return np.maximum(sb, 0), np.maximum(si, 0), True


def _fb_fraction(inp: RuleInput) -> tuple[np.ndarray, np.ndarray, bool]:
    free_rows = []
    keys = inp.signals.frame.keys
    index = {(k.name, k.labels): j for j, k in enumerate(keys)}
    for r in inp.rows:
        k = keys[r]
        free_rows.append(index.get(("DCGM_FI_DEV_FB_FREE", k.labels), -1))
    fr = np.array(free_rows)
    F = inp.signals.frame.values
    free = np.where(fr[:, None] >= 0, F[np.maximum(fr, 0)], np.nan)
    with np.errstate(all="ignore"):
        frac_b = inp.X_b / (inp.X_b + free[:, inp.baseline_cols])
        frac_i = inp.X_i / (inp.X_i + free[:, inp.incident_cols])
    det = SaturationLevel(limit=1.0).fit(frac_b)
    return det.anomaly_score(frac_b), det.anomaly_score(frac_i), False


_RATIO = re.escape("ratio:finished_reason=")

# Ordered: the first rule that claims a row wins. Rows no rule claims go to the fleet scanner.
RULES: tuple[Rule, ...] = (
    Rule("gpu_xid", r"^DCGM_FI_DEV_XID_ERRORS$", r".*", _pointwise(XidEvents, calibrated=False), flag_at=0.1),
    Rule("gpu_throttle", r"_(THERMAL|POWER)_VIOLATION$", r"^rate$",
         _pointwise(lambda: SaturationLevel(limit=1.0), calibrated=False, transform=lambda a: a / 1e9)),
    Rule("gpu_fb_saturation", r"^DCGM_FI_DEV_FB_USED$", r".*", _fb_fraction),
    Rule("nvlink_drop", r"NVLINK_BANDWIDTH", r"^rate$", _pointwise(DropToZero, calibrated=False)),
    Rule("kv_cache_saturation", r"(kv_cache_usage_perc|gpu_cache_usage_perc|token_usage)$", r".*",
         _pointwise(lambda: SaturationLevel(limit=1.0), calibrated=False)),
    # shares: a practically meaningful move is >= a quarter of the usual share (rel_floor)
    Rule("token_loop", r"request_success(_total)?$", _RATIO + r"(length|repetition)$",
         _pointwise(lambda: RobustDeviation(rel_floor=0.25)), up_kind="token_loop", down_kind="finish_mix_shift"),
    Rule("ttft_spike", r"time_to_first_token", r"^(p50|p95|p99|mean)$", _latency_vs_load),
    Rule("tpot_spike", r"(time_per_output_token|inter_token_latency)", r"^(p50|p95|p99|mean)$",
         _latency_vs_load),
    Rule("tail_latency_shift", r".", r"^p99$", _tail_shift, family="latency"),
    Rule("latency_shift", r".", r"^(p50|p95|mean)$", _quantile_shift, family="latency"),
    Rule("quantile_shift", r".", r"^(p50|p95|p99)$", _quantile_shift),  # other histograms (tokens …)
    Rule("throughput", r"generation_tokens", r"^rate$", _pointwise(RobustDeviation),
         up_kind="throughput_surge", down_kind="throughput_drop"),
)


def _claims(signals: Signals) -> dict[int, int]:
    """Row -> index of the first rule that claims it."""
    out: dict[int, int] = {}
    compiled = [(re.compile(r.name), re.compile(r.stat)) for r in RULES]
    memo: dict[tuple[str, str], int] = {}  # the claim depends on (name, stat) only
    for j, k in enumerate(signals.frame.keys):
        stat = signals.stat(j)
        claim = memo.get((k.name, stat))
        if claim is None:
            claim = -1
            fam = None
            for n, (rule, (name_re, stat_re)) in enumerate(zip(RULES, compiled, strict=True)):
                if not (name_re.search(k.name) and stat_re.search(stat)):
                    continue
                if rule.family:
                    fam = fam or classify(k.name, stat).family
                    if fam != rule.family:
                        continue
                claim = n
                break
            memo[(k.name, stat)] = claim
        if claim >= 0:
            out[j] = claim
    return out


def calibrate(scores_b: np.ndarray, scores_i: np.ndarray) -> np.ndarray:
    """Scores -> window levels in [0, 1] per row and column, against the row's own baseline
    scores: 1 - T·p, where p is the calibrated tail probability of the score and T the number
    of incident columns (Bonferroni over the window, as ``FleetScanner`` does), so a level of
    0.99 means "a clean series would reach this in about 1 window of 100"."""
    from models.thresholds import CalibratedThreshold

    cal = CalibratedThreshold(min_tail_scale=0.4).fit(scores_b)  # z units, as FleetScanner
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p = cal.tail_probability(np.where(np.isnan(scores_i), -np.inf, scores_i))
    level = np.clip(1.0 - scores_i.shape[1] * p, 0.0, 1.0)
    return np.where(np.isnan(scores_i), np.nan, level)


def _persist(a: np.ndarray, k: int = 3) -> np.ndarray:
    from rca.rank.scoring import rolling_median

    return rolling_median(a, k)


def _nanmedian_rows(X: np.ndarray) -> np.ndarray:
    from rca.rank.scoring import nanmedian_rows as fast

    return fast(X)


def natural_level(scores: np.ndarray, flag_at: float) -> np.ndarray:
    """A score already in [0, 1] (severity, saturation) mapped so ``flag_at`` lands on ``LEVEL``."""
    s = np.clip(scores, 0.0, 1.0)
    lo = s / max(flag_at, 1e-9) * LEVEL
    hi = LEVEL + (1.0 - LEVEL) * (s - flag_at) / max(1.0 - flag_at, 1e-9)
    return np.where(s < flag_at, lo, hi)


def _runs(level: np.ndarray, ts: np.ndarray, flag_at: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row: onset (start of the run above ``flag_at / 2`` that holds the peak) and peak."""
    lv = np.nan_to_num(level, nan=0.0)
    peak = np.argmax(lv, axis=1) if lv.shape[1] else np.zeros(len(lv), int)
    below = lv < flag_at / 2
    last_below = np.where(below, np.arange(lv.shape[1])[None, :], -1)
    np.maximum.accumulate(last_below, axis=1, out=last_below)
    onset = last_below[np.arange(len(lv)), peak] + 1
    onset = np.minimum(onset, peak)
    return ts[onset] if len(ts) else onset, ts[peak] if len(ts) else peak


def _anomalies(signals: Signals, rows: np.ndarray, level: np.ndarray, raw: np.ndarray, X_b: np.ndarray,
               X_i: np.ndarray, ts: np.ndarray, rule: Rule, min_level: float) -> list[Anomaly]:
    lv = np.nan_to_num(level, nan=0.0)
    top = lv.max(axis=1) if lv.shape[1] else np.zeros(len(rows))
    onset, peak = _runs(level, ts, LEVEL)
    pidx = np.argmax(lv, axis=1) if lv.shape[1] else np.zeros(len(rows), int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        base_med = _nanmedian_rows(X_b) if X_b.shape[1] else np.full(len(rows), np.nan)
    out = []
    for n in np.flatnonzero(top >= min_level):
        observed = float(X_i[n, pidx[n]]) if X_i.shape[1] else float("nan")
        direction = "up" if not np.isfinite(base_med[n]) or observed >= base_med[n] else "down"
        out.append(Anomaly(entity=signals.entities[rows[n]], series=signals.frame.keys[rows[n]],
                           kind=_kind(rule, direction), onset=int(onset[n]), peak=int(peak[n]),
                           score=float(np.nan_to_num(raw[n, pidx[n]])), direction=direction,
                           detector=rule.kind, baseline=float(base_med[n]), observed=observed,
                           level=float(top[n])))
    return out


MIN_REL_CHANGE = 0.20  # a move of less than 20% of the baseline level is not an incident
MIN_SHARE_CHANGE = 0.02  # for shares/fractions: two percentage points
MIN_LOAD_CHANGE = 0.5  # demand swings by tens of percent within a day; a surge is >= +50%


def meaningful(a: Anomaly) -> bool:
    """Practical significance on top of statistical: big enough to matter to a human."""
    if a.kind in ("gap", "missing_exporter") or not np.isfinite(a.baseline) or not np.isfinite(a.observed):
        return True
    delta = abs(a.observed - a.baseline)
    info = classify(a.series.name, a.series.label("stat", "value") or "value")
    if info.unit in ("fraction", "%"):
        return delta >= MIN_SHARE_CHANGE * (100.0 if info.unit == "%" else 1.0)
    return delta >= (MIN_LOAD_CHANGE if info.role == "load" else MIN_REL_CHANGE) * abs(a.baseline)


def _kind(rule: Rule, direction: str) -> str:
    if direction == "up" and rule.up_kind:
        return rule.up_kind
    if direction == "down" and rule.down_kind:
        return rule.down_kind
    return rule.kind


def _missing_exporters(snapshot: Snapshot, aliases: dict, bcols: np.ndarray, icols: np.ndarray,
                       min_run: int = 2) -> list[Anomaly]:
    """Entities whose raw series were there in the baseline and stopped reporting: a missing
    exporter (a GPU off the bus, a crashed pod) is an anomaly, not silence."""
    raw: MetricFrame = snapshot.metrics
    if not len(raw) or not icols.any():
        return []
    X_b, X_i = raw.values[:, bcols], raw.values[:, icols]
    gone = np.nan_to_num(Vanished().fit(X_b).anomaly_score(X_i), nan=0.0)
    tail_run = missing_run_length(gone)[:, -1]  # trailing missing samples
    ts = raw.timestamps[icols]
    per_entity: dict[str, list[int]] = {}
    present = (~np.isnan(X_b)).mean(axis=1) >= 0.8 if X_b.shape[1] else np.zeros(len(raw), bool)
    for j in np.flatnonzero(present):
        per_entity.setdefault(entity_of_series(raw.keys[j], aliases), []).append(int(j))
    out = []
    for ent, js in per_entity.items():
        runs = tail_run[js]
        share = float((runs >= min_run).mean())
        if share < 0.5:
            continue
        run = int(np.median(runs[runs >= min_run]))
        onset = int(ts[len(ts) - run])
        key = raw.keys[js[0]]
        out.append(Anomaly(entity=ent, series=key, kind="missing_exporter", onset=onset, peak=onset,
                           score=share, direction="down", detector="vanished", observed=float("nan"),
                           level=min(1.0, 0.9 + 0.1 * share)))
    return out


def _output_text(span: Span) -> str | None:
    raw = span.attributes.get("gen_ai.output.messages") or span.attributes.get("gen_ai.completion")
    if raw is None:
        return None
    try:
        msgs = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return str(raw)
    if isinstance(msgs, dict):
        msgs = [msgs]
    parts = [p.get("content", "") for m in msgs if isinstance(m, dict) for p in m.get("parts", [])
             if isinstance(p, dict) and p.get("type", "text") == "text"]
    return " ".join(str(p) for p in parts) if parts else None


@dataclass
class _LoopCount:
    n: int = 0
    loops: int = 0
    examples: list[str] = field(default_factory=list)
    traces: list[str] = field(default_factory=list)


def output_loops(spans: Sequence[Span], window: Window) -> dict[str, _LoopCount]:
    """Per model: sampled outputs in ``window`` and how many loop (``repetition_scores``)."""
    texts, models, spn = [], [], []
    lo, hi = window.start * 1_000_000_000, (window.end + window.step) * 1_000_000_000
    for s in spans:
        if not lo <= s.start_ns < hi:
            continue
        t = _output_text(s)
        if t is None:
            continue
        model = s.attributes.get("gen_ai.response.model") or s.attributes.get("gen_ai.request.model") or s.service
        texts.append(t)
        models.append(f"model:{model}")
        spn.append(s)
    out: dict[str, _LoopCount] = {}
    for m, r, s, t in zip(models, repetition_scores(texts), spn, texts, strict=True):
        c = out.setdefault(m, _LoopCount())
        c.n += 1
        if r >= LOOP_THRESHOLD:
            c.loops += 1
            if len(c.examples) < 3:
                c.examples.append(t[:160])
                c.traces.append(s.trace_id)
    return out


def _loop_anomalies(snapshot: Snapshot, baseline: Window, incident: Window) -> list[Anomaly]:
    from scipy.stats import binom

    if not snapshot.spans:
        return []
    base, inc = output_loops(snapshot.spans, baseline), output_loops(snapshot.spans, incident)
    out = []
    for model, c in inc.items():
        b = base.get(model, _LoopCount())
        p0 = (b.loops + 0.5) / (b.n + 10.0)  # prior: loops are rare
        if c.loops < 2 or c.loops / c.n <= p0:
            continue
        level = float(1.0 - binom.sf(c.loops - 1, c.n, p0))
        out.append(Anomaly(entity=model, series=SeriesKey.of("gen_ai.output.repetition", model=model.split(":", 1)[1]),
                           kind="token_loop", onset=incident.start, peak=incident.start,
                           score=c.loops / c.n, direction="up", detector="repetition",
                           baseline=b.loops / b.n if b.n else float("nan"), observed=c.loops / c.n, level=level))
    return out


_TOKEN_HIST = re.compile(r"(request_prompt_tokens|request_generation_tokens|input_length|"
                         r"gen_ai_client_token_usage)_bucket$")


def _bucket_increase(values: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Increase of cumulative bucket counters over the columns ``cols`` (resets ignored)."""
    V = values[:, cols]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        first, last = np.nanmin(V, axis=1), np.nanmax(V, axis=1)
    return np.nan_to_num(np.maximum(last - first, 0.0))


def _drift(snapshot: Snapshot, baseline: Window, incident: Window) -> tuple[Any, ...]:
    """Input drift per model from token histograms (all replicas summed) and from spans."""
    from models.drift import drift_report, span_token_samples
    from models.drift_hist import BucketCounts

    raw = snapshot.metrics
    ts = raw.timestamps
    bcols = (ts >= baseline.start) & (ts <= baseline.end)
    icols = (ts >= incident.start - incident.step) & (ts <= incident.end)
    groups: dict[str, dict[float, list[int]]] = {}
    for j, k in enumerate(raw.keys):
        if not _TOKEN_HIST.search(k.name) or k.label("le") is None:
            continue
        kind = "prompt_tokens" if re.search("prompt|input", k.name + str(k.label("gen_ai_token_type"))) \
            else "generation_tokens"
        model = k.label("model_name") or k.label("gen_ai_request_model") or k.label("job") or "all"
        le = k.label("le") or ""
        bound = float("inf") if le in ("+Inf", "Inf", "inf") else float(le)
        groups.setdefault(f"model:{model} {kind}", {}).setdefault(bound, []).append(j)
    base_f: dict[str, Any] = {}
    cur_f: dict[str, Any] = {}
    if bcols.any() and icols.any():
        for feature, by_bound in groups.items():
            bounds = sorted(by_bound)
            inc_b = [_bucket_increase(raw.values[by_bound[b]], bcols).sum() for b in bounds]
            inc_i = [_bucket_increase(raw.values[by_bound[b]], icols).sum() for b in bounds]
            base_f[feature] = BucketCounts(bounds, inc_b)
            cur_f[feature] = BucketCounts(bounds, inc_i)
    if snapshot.spans:
        lo, hi = baseline.start * 10**9, (baseline.end + baseline.step) * 10**9
        li, hi_i = incident.start * 10**9, (incident.end + incident.step) * 10**9
        for name, v in span_token_samples(s for s in snapshot.spans if lo <= s.start_ns < hi).items():
            base_f[f"spans {name}"] = v
        for name, v in span_token_samples(s for s in snapshot.spans if li <= s.start_ns < hi_i).items():
            cur_f[f"spans {name}"] = v
    if not base_f:
        return ()
    return tuple(f for f in drift_report(base_f, cur_f) if f.severity in ("moderate", "significant"))


def _log_findings(snapshot: Snapshot, baseline: Window, incident: Window,
                  templates: Sequence[str] | None = None) -> tuple[Any, ...]:
    """Log-template findings of the incident against the baseline. ``templates``: the template
    of every line of ``snapshot.logs`` mined on all of them; reused (no second mining) when the
    baseline and incident lines are all of the snapshot's lines in the same order, the only
    case where mining them again would give the same templates."""
    from models.log_anomaly import score_log_templates

    logs = snapshot.logs
    if not logs:
        return ()
    lo, mid, hi = baseline.start * 10**9, incident.start * 10**9, (incident.end + incident.step) * 10**9
    base = [r for r in logs if lo <= r.ts_ns < mid]
    inc = [r for r in logs if mid <= r.ts_ns < hi]
    same = (templates is not None and len(templates) == len(logs) and len(base) + len(inc) == len(logs)
            and all(type(r.body) is str for r in logs)
            and all(a is b for a, b in zip(base + inc, logs, strict=True)))
    return tuple(score_log_templates(base, inc, templates=list(templates) if same else None))


def _generic(signals: Signals, rows: np.ndarray, X_b: np.ndarray, X_i: np.ndarray, ts_b: np.ndarray,
             ts_i: np.ndarray, min_level: float) -> list[Anomaly]:
    """The fleet scanner (seasonal/robust deviation, CUSUM, EWMA, gaps) over unclaimed rows."""
    from models.scan import FleetScanner

    if not len(rows) or not len(ts_i) or not len(ts_b):
        return []
    step = float(np.median(np.diff(ts_b))) if len(ts_b) > 1 else 60.0
    r = FleetScanner(step_s=step, t0_s=float(ts_b[0]), score_t0_s=float(ts_i[0])).fit(X_b).score(X_i)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        base_med = _nanmedian_rows(X_b)
    out = []
    for n in np.flatnonzero(r.score >= min_level):
        if r.peak[n] < 0:
            continue
        onset = int(ts_i[r.onset[n]]) if r.onset[n] >= 0 else int(ts_i[r.peak[n]])
        kind = {"up": "level_shift", "down": "drop", "missing": "gap"}.get(str(r.direction[n]), "level_shift")
        if r.detector[n] == "ewma" and r.onset[n] == r.peak[n]:
            kind = "spike"
        out.append(Anomaly(entity=signals.entities[rows[n]], series=signals.frame.keys[rows[n]], kind=kind,
                           onset=onset, peak=int(ts_i[r.peak[n]]), score=float(r.score[n]),
                           direction="down" if r.direction[n] in ("down", "missing") else "up",
                           detector=str(r.detector[n]) or "fleet_scan", baseline=float(base_med[n]),
                           observed=float(r.peak_value[n]), level=float(r.score[n])))
    return out


def detect(signals: Signals, snapshot: Snapshot, baseline: Window, incident: Window,
           min_level: float = 0.9, templates: Sequence[str] | None = None) -> Detection:
    """Every rule and the fleet scanner over ``signals``; anomalies with level >= ``min_level``.
    ``templates``: the log template of every line of ``snapshot.logs``, when the caller has
    mined them already (``LogTemplateMiner().fit_transform`` on all the bodies, in order)."""
    from rca.entities import aliases_from_inventory

    F = signals.frame
    ts = F.timestamps
    bcols = (ts >= baseline.start) & (ts <= baseline.end)
    icols = (ts >= incident.start) & (ts <= incident.end)
    ts_i = ts[icols]
    claims = _claims(signals)
    groups: dict[int, list[int]] = {}
    for j in range(len(F)):
        groups.setdefault(claims.get(j, -1), []).append(j)
    found: list[Anomaly] = []
    for n, rows_l in sorted(groups.items()):
        rows = np.array(rows_l, dtype=int)
        X_b, X_i = F.values[rows][:, bcols], F.values[rows][:, icols]
        if n < 0:
            found.extend(a for a in _generic(signals, rows, X_b, X_i, ts[bcols], ts_i, min_level) if meaningful(a))
            continue
        rule = RULES[n]
        sb, si, cal = rule.score(RuleInput(rows, X_b, X_i, signals, bcols, icols))
        if cal:  # an anomaly must persist: the median of 3 samples, on both windows alike
            sb, si = _persist(sb), _persist(si)
        level = calibrate(sb, si) if cal else natural_level(si, rule.flag_at)
        anoms = _anomalies(signals, rows, level, si, X_b, X_i, ts_i, rule, min_level)
        found.extend(a for a in anoms if not cal or meaningful(a))
    aliases = aliases_from_inventory(snapshot.inventory)
    found.extend(_missing_exporters(snapshot, aliases, (snapshot.metrics.timestamps >= baseline.start)
                                    & (snapshot.metrics.timestamps <= baseline.end),
                                    (snapshot.metrics.timestamps >= incident.start)
                                    & (snapshot.metrics.timestamps <= incident.end)))
    found.extend(_loop_anomalies(snapshot, baseline, incident))
    found = [a for a in found if a.level >= min_level]
    found.sort(key=lambda a: (-a.level, -a.score, a.onset))
    return Detection(anomalies=tuple(found), drift=_drift(snapshot, baseline, incident),
                     logs=_log_findings(snapshot, baseline, incident, templates), series_scanned=len(F))

