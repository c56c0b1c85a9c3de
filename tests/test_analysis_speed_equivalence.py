"""The fast paths of one analysis give exactly what the straightforward code gave.

Each fast function is pinned against a reference written here the plain way (the code it
replaced): the closed-form 3-sample rolling median against ``np.nanmedian`` over sliding
windows, the row-wise quantile/median fast paths against ``np.nanquantile``/``np.nanmedian``,
the pre-checked and cached ``mask`` against applying every rule of ``MASK_RULES`` in order;
and an analysis mines its log templates once when the detector's lines are the snapshot's.
"""

from __future__ import annotations

import itertools
import string
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models import log_masking
from models.log_anomaly import score_log_templates
from models.log_masking import MASK_RULES, mask, normalise_template
from models.log_templates import LogTemplateMiner
from rca.detect import _log_findings
from rca.rank.scoring import nanmedian_rows, nanquantile_rows, rolling_median
from rca.types import LogRecord, MetricFrame, Snapshot, Window

# -- references: the code as it was ------------------------------------------------------------


def ref_rolling_median(a: np.ndarray, k: int = 3) -> np.ndarray:
    if a.shape[1] < k:
        return a
    pad = np.concatenate([np.full((a.shape[0], k - 1), np.nan), a], axis=1)
    view = np.lib.stride_tricks.sliding_window_view(pad, k, axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(view, axis=-1)


_REF_RULES = tuple((__import__("re").compile(p), r) for _, p, r in MASK_RULES)


def ref_mask(message: str) -> str:
    for rx, repl in _REF_RULES:
        message = rx.sub(repl, message)
    return normalise_template(message)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal values, NaN where NaN, and the same sign of zero (a -0.0 would print differently)."""
    a, b = np.asarray(a), np.asarray(b)
    return (a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
            and np.array_equal(np.signbit(a), np.signbit(b)))


SPECIALS = np.array([0.0, -0.0, 1.0, -1.0, 2.5, 1e-300, np.inf, -np.inf, np.nan, 1e308, -1e308, 3.0])


def random_matrix(rng: np.random.Generator, n: int, t: int, kind: int) -> np.ndarray:
    if kind == 0:
        X = rng.normal(size=(n, t))
    elif kind == 1:
        X = np.round(rng.normal(size=(n, t)), 1)  # ties
    else:
        X = rng.choice(SPECIALS, size=(n, t))  # signed zeros, infinities, overflow
    X[rng.random((n, t)) < rng.choice([0.0, 0.05, 0.4])] = np.nan
    if n > 1 and t:
        X[0] = np.nan  # an all-missing row
    return X


# -- rolling median ------------------------------------------------------------------------------


def test_rolling_median_every_triple_of_special_values() -> None:
    """Every window content (0-3 missing, signed zeros, inf, overflow-prone values) at every edge."""
    vals = [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1e308, -1e308]
    rows = np.array(list(itertools.product(vals, repeat=4)))
    assert same_bits(rolling_median(rows), ref_rolling_median(rows))


@pytest.mark.parametrize("seed", range(6))
def test_rolling_median_random_matrices(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for kind in range(3):
        for n, t in [(0, 5), (1, 3), (7, 4), (40, 97), (3, 1), (5, 2)]:
            X = random_matrix(rng, n, t, kind)
            got, want = rolling_median(X), ref_rolling_median(X)
            assert same_bits(got, want), (kind, n, t)


def test_rolling_median_other_k_and_short_rows_unchanged() -> None:
    rng = np.random.default_rng(7)
    X = random_matrix(rng, 20, 30, 0)
    for k in (1, 2, 4, 5):
        assert same_bits(rolling_median(X, k), ref_rolling_median(X, k))
    short = X[:, :2]
    assert rolling_median(short) is short  # fewer columns than the window: the input itself
    f32 = X.astype(np.float32)
    assert same_bits(rolling_median(f32), ref_rolling_median(f32))


# -- row-wise quantile / median fast paths -------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("t", [1, 2, 3, 10, 599, 600, 750])
def test_row_quantile_and_median_match_nanfunctions(seed: int, t: int) -> None:
    rng = np.random.default_rng(seed * 1000 + t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for kind in range(3):
            X = random_matrix(rng, 25, t, kind)
            for q in (0.98, 0.5, 0.25):
                assert same_bits(nanquantile_rows(X, q), np.nanquantile(X, q, axis=1)), (kind, q)
            assert same_bits(nanmedian_rows(X), np.nanmedian(X, axis=1)), kind
            clean = X[~np.isnan(X).any(axis=1)]  # the fast path alone
            if len(clean):
                assert same_bits(nanmedian_rows(clean), np.nanmedian(clean, axis=1)), kind
                assert same_bits(nanquantile_rows(clean, 0.98), np.nanquantile(clean, 0.98, axis=1))


def test_row_median_keeps_nanmedian_overflow_semantics() -> None:
    """Short rows go through masked arrays in nanmedian, which sum the two middle values: a
    median of 1e308 comes out inf there, and must here too."""
    X = np.full((2, 5), 1e308)
    X[1] = [1.0, 2.0, 3.0, 4.0, 5.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = np.nanmedian(X, axis=1)
        got = nanmedian_rows(X)
    assert np.isinf(want[0]) and same_bits(got, want)


# -- masking -------------------------------------------------------------------------------------

_ALPHABET = string.ascii_letters[:12] + "xXZT" + string.digits + " :.-/\\=_<*>[]()@%+~$,;&'\"?#|\t" + "٣µ"
_PIECES = ["true", "None", "NULL", "nil", "0x1F", "::1", "fe80::1", "10.0.0.1:8080", "2024-05-01T10:20:30Z",
           "12:30:45", "aa:bb:cc:dd:ee:ff", "1.2.3.4", "host.example.com:443", "C:\\tmp\\x", "/var/log/a.txt",
           "http://a.b/c?d=1", "123e4567-e89b-12d3-a456-426614174000", "deadbeef12", "12 ms", "3.5MB",
           "key=value", "blk_-42", "R02-M1-N0", "-7", "+3.25", "<*>", "a-b-c-d-e", "x:y:z", "..."]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.text(alphabet=_ALPHABET, max_size=12), st.sampled_from(_PIECES)), max_size=8))
def test_mask_equals_every_rule_in_order(parts: list[str]) -> None:
    text = " ".join(parts) if len(parts) % 2 else "".join(parts)
    mask.cache_clear()
    assert mask(text) == ref_mask(text)
    assert mask(text) == ref_mask(text)  # from the cache


def test_mask_on_simulated_and_fixture_logs() -> None:
    from rca.sim import list_scenarios, simulate

    lines = []
    for name in list_scenarios()[:4]:
        lines += [r.body for r in simulate(name, 0).snapshot.logs]
    lines = list(dict.fromkeys(lines))
    assert len(lines) > 500
    mask.cache_clear()
    assert [mask(x) for x in lines] == [ref_mask(x) for x in lines]


@pytest.mark.parametrize("rule", range(len(MASK_RULES)), ids=[n for n, _, _ in MASK_RULES])
def test_prechecks_hold_on_every_text_the_rule_matches(rule: int) -> None:
    """A pre-check is a *necessary* condition: on any text the rule's pattern finds a match in
    (hypothesis generates them from the pattern), the pre-check passes, and so does the digit
    test of rules that need a digit."""
    name, pat, _ = MASK_RULES[rule]
    rx, _, pre, needs_digit = log_masking._PIPELINE[rule]
    digit = __import__("re").compile(r"\d")

    @settings(max_examples=80, deadline=None)
    @given(st.from_regex(pat))
    def check(text: str) -> None:
        assert rx.search(text) is not None
        assert pre is None or pre(text), (name, text)
        assert not needs_digit or digit.search(text), (name, text)

    check()


def test_every_precheck_is_tied_to_its_rule() -> None:
    """A pre-check is used only with the exact pattern it was derived from."""
    used = {name for (name, pat, _), (_, _, pre, _) in zip(MASK_RULES, log_masking._PIPELINE, strict=True)
            if pre is not None}
    assert used == set(log_masking._PRECHECKS)
    for name, pat, _ in MASK_RULES:
        if name in log_masking._PRECHECKS:
            assert log_masking._PRECHECKS[name][0] == pat


# -- templates mined once --------------------------------------------------------------------------


def _records(n: int, t0: int, seed: int, failing: bool = False) -> list[LogRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        ts = (t0 + i) * 10**9
        if failing and rng.random() < 0.4:
            body = f"connection pool exhausted for shard {i % 5}, request {rng.integers(1, 99999)} rejected"
            sev = "ERROR"
        elif rng.random() < 0.05:
            body = f"upstream connect error to 10.0.{i % 7}.{i % 250}:8080 after {rng.integers(1, 999)} ms"
            sev = "ERROR"
        else:
            body = f"request completed status=200 duration_ms={rng.integers(1, 9999)} route=/v1/chat"
            sev = "INFO"
        out.append(LogRecord(ts_ns=ts, entity=f"service:s{i % 3}", severity=sev, body=body))
    return out


def _snapshot(window: Window, logs: list[LogRecord]) -> Snapshot:
    return Snapshot(window=window, metrics=MetricFrame((), np.array([], dtype=np.int64), np.empty((0, 0))),
                    logs=tuple(logs))


class _CountingMiner(LogTemplateMiner):
    fits = 0

    def fit(self, lines):  # noqa: ANN001, ANN201
        type(self).fits += 1
        return super().fit(lines)


def test_detector_reuses_templates_when_lines_coincide(monkeypatch: pytest.MonkeyPatch) -> None:
    import models.log_anomaly as la

    base, inc = Window(1000, 1590, 10), Window(1600, 1890, 10)
    logs = _records(300, 1000, 1) + _records(300, 1600, 2, failing=True)
    logs = [r for r in logs if r.ts_ns < 1900 * 10**9]
    snap = _snapshot(Window(1000, 1890, 10), logs)
    want = _log_findings(snap, base, inc)  # mines on its own (the old way)
    templates = LogTemplateMiner().fit_transform([r.body for r in logs])
    _CountingMiner.fits = 0
    monkeypatch.setattr(la, "LogTemplateMiner", _CountingMiner)
    got = _log_findings(snap, base, inc, templates)
    assert _CountingMiner.fits == 0  # reused, not mined again
    assert got == want and len(want) > 0


def test_detector_mines_again_when_lines_differ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines outside the baseline/incident windows: mining the subset may give other templates,
    so the detector mines it itself (and finds what it always found)."""
    import models.log_anomaly as la

    base, inc = Window(1000, 1590, 10), Window(1600, 1890, 10)
    logs = _records(100, 500, 3) + _records(300, 1000, 1) + _records(300, 1600, 2, failing=True)
    snap = _snapshot(Window(500, 2000, 10), logs)
    want = _log_findings(snap, base, inc)
    templates = LogTemplateMiner().fit_transform([r.body for r in logs])
    _CountingMiner.fits = 0
    monkeypatch.setattr(la, "LogTemplateMiner", _CountingMiner)
    assert _log_findings(snap, base, inc, templates) == want and len(want) > 0
    assert _CountingMiner.fits == 1


def test_score_log_templates_given_templates_equals_mined() -> None:
    base, inc = _records(200, 1000, 4), _records(200, 1600, 5, failing=True)
    mined = LogTemplateMiner().fit_transform([r.body for r in base + inc])
    want = score_log_templates(base, inc)
    assert want and score_log_templates(base, inc, templates=mined) == want
    with pytest.raises(Exception, match="templates"):
        score_log_templates(base, inc, templates=mined[:-1])


def test_one_analysis_mines_once_when_windows_hold_every_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Engine.analyze on a snapshot whose logs all lie in baseline + incident: one fit, and
    the same incident as when the detector mines its lines again."""
    import dataclasses

    import models.log_anomaly as la
    import rca.engine as engine_mod
    from rca.ask import parse_question
    from rca.engine import AnalysisRequest
    from rca.settings import Settings
    from rca.sim import simulate
    from rca.wiring import build_engine

    res = simulate("kv_cache_exhaustion", 0)
    q = parse_question(res.question, now=res.snapshot.window.end)
    req = AnalysisRequest(at=q.at, question=q.text, signal=q.signal, statistic=q.statistic, scope=q.scope)
    engine = build_engine(Settings(), [])
    engine.ranker.needs_anomalies = True  # this test is about detection reusing the engine's templates
    base, inc = engine.windows(req, res.snapshot.window.step)
    lo, hi = base.start * 10**9, (inc.end + inc.step) * 10**9
    kept = tuple(r for r in res.snapshot.logs if lo <= r.ts_ns < hi)
    assert 0 < len(kept) < len(res.snapshot.logs)
    snap = dataclasses.replace(res.snapshot, logs=kept)

    monkeypatch.setattr(engine_mod, "LogTemplateMiner", _CountingMiner)
    monkeypatch.setattr(la, "LogTemplateMiner", _CountingMiner)
    _CountingMiner.fits = 0
    fast = engine.analyze(req, snapshot=snap)
    assert _CountingMiner.fits == 1

    real_detect = engine_mod.detect

    def detect_mining_again(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        kwargs.pop("templates", None)
        return real_detect(*args, **kwargs)

    monkeypatch.setattr(engine_mod, "detect", detect_mining_again)
    _CountingMiner.fits = 0
    slow = engine.analyze(req, snapshot=snap)
    assert _CountingMiner.fits == 2
    assert fast.hypotheses and repr(fast.hypotheses) == repr(slow.hypotheses)


def test_detectors_are_skipped_for_a_ranker_that_does_not_read_anomalies(monkeypatch):
    import rca.engine as engine_mod
    from rca.answer import request_of
    from rca.ask import parse_question
    from rca.settings import Settings
    from rca.sim import simulate
    from rca.wiring import build_engine

    res = simulate("gpu_xid_79", 0)
    req = request_of(parse_question(res.question, now=res.snapshot.window.end))
    engine = build_engine(Settings(), [])
    assert engine.ranker.needs_anomalies is False
    calls = []
    real_detect = engine_mod.detect

    def counting(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        return real_detect(*args, **kwargs)

    monkeypatch.setattr(engine_mod, "detect", counting)
    skipped = engine.analyze(req, snapshot=res.snapshot)
    assert calls == []
    engine.ranker.needs_anomalies = True
    detected = engine.analyze(req, snapshot=res.snapshot)
    assert calls == [1]
    assert repr(skipped.hypotheses) == repr(detected.hypotheses)  # the graph ranker never read them
