"""Evidence a human can check: anomalous series, change events, log templates that burst,
trace spans whose latency or errors shifted — plus what was checked and found normal and
what had no data.
"""

from __future__ import annotations

import weakref
from collections import Counter, defaultdict
from datetime import UTC, datetime
from heapq import merge
from typing import TYPE_CHECKING

import numpy as np

from rca.entities import aliases_from_inventory, span_entities
from rca.rank.scoring import THRESHOLD, SeriesScores
from rca.serialize import rfc3339
from rca.types import EntityId, Evidence, Snapshot, entity_kind

if TYPE_CHECKING:
    from rca.protocols import RankContext

__all__ = ["EXPECTED_FAMILIES", "build_evidence", "log_templates"]

MAX_METRIC_EVIDENCE = 6
EXPECTED_FAMILIES = {
    "gpu": ("gpu_xid", "gpu_thermal", "gpu_util", "gpu_memory"),
    "model": ("latency", "kv_cache", "token_loop", "input", "queue"),
    "pod": ("latency", "cpu", "memory"),
    "service": ("latency", "errors", "traffic"),
    "db": ("latency", "errors", "cpu"),
    "tool": ("latency", "errors"),
    "node": ("cpu", "memory"),
}
def log_templates(ctx: RankContext) -> tuple[str, ...]:
    """The template of every log line of the snapshot (Drain3 via ``LogTemplateMiner``); mined
    here only when the engine did not already put them in the context."""
    if len(ctx.log_templates) == len(ctx.snapshot.logs):
        return ctx.log_templates
    from models.log_templates import LogTemplateMiner

    return tuple(LogTemplateMiner().fit_transform([r.body for r in ctx.snapshot.logs]))


def _hhmm(ts: int) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%H:%M:%S")


def _fmt(v: float) -> str:
    if np.isnan(v):
        return "no data"
    return f"{v:.3g}"


def _series_text(key) -> str:
    stat = key.label("stat", "value")
    labels = {k: v for k, v in key.labels if k in ("finished_reason", "code", "le")}
    tail = f"{{{', '.join(f'{k}={v}' for k, v in labels.items())}}}" if labels else ""
    return f"{stat} {key.name}{tail}" if stat != "value" else f"{key.name}{tail}"


def build_evidence(root: EntityId, members: list[EntityId], rows: list[int], scores: SeriesScores,
                   ctx: RankContext, explained_by: EntityId | None
                   ) -> tuple[list[Evidence], list[str], list[str]]:
    ents = set(members) | {root}
    inc, base = ctx.incident, ctx.baseline
    ev: list[Evidence] = []
    if explained_by:
        ev.append(Evidence("graph", root, f"may be an effect of {explained_by}, anomalous no later",
                           {"explained_by": explained_by}, "anomalous", 0.0))
    for r in rows[:MAX_METRIC_EVIDENCE]:
        key = ctx.signals.keys[r]
        ent = ctx.signal_entities[r]
        if scores.vanished[r]:
            summ = f"{_series_text(key)} on {ent} stopped reporting at {_hhmm(int(scores.onset[r]))}Z"
        else:
            summ = (f"{_series_text(key)} on {ent} went {_fmt(scores.baseline[r])} → "
                    f"{_fmt(scores.observed[r])} from {_hhmm(int(scores.onset[r]))}Z "
                    f"({scores.score[r]:.1f}× normal spread)")
        ref = {"series": str(key), "entity": ent, "start": rfc3339(int(scores.onset[r])), "end": rfc3339(inc.end),
               "baseline": float(scores.baseline[r]), "observed": float(scores.observed[r]),
               "family": scores.infos[r].family}
        ev.append(Evidence("metric", ent, summ, ref, "anomalous", round(float(scores.score[r]), 3)))
    for c in ctx.changes:
        if c.entity in ents and base.start <= c.at <= inc.end:
            ev.append(Evidence("change", c.entity, f"{c.summary} at {_hhmm(c.at)}Z",
                               {"series": str(c.series), "at": rfc3339(c.at)}, "anomalous", 0.0))
    log_ev, has_logs = _log_evidence(ents, ctx)
    ev.extend(log_ev)
    trace_ev, has_spans = _trace_evidence(ents, ctx)
    ev.extend(trace_ev)

    # checked: families seen on these entities that stayed normal; no_data: expected but absent
    fam_best: dict[str, float] = defaultdict(float)
    ent_rows = [i for i, e in enumerate(ctx.signal_entities) if e in ents]
    for i in ent_rows:
        if not np.isnan(scores.score[i]):
            fam_best[scores.infos[i].family] = max(fam_best[scores.infos[i].family], float(scores.score[i]))
    checked = sorted(f"{f}: normal" for f, s in fam_best.items() if s < THRESHOLD and f != "other")
    kinds = {entity_kind(e) for e in ents}
    expected = {f for k in kinds for f in EXPECTED_FAMILIES.get(k, ())}
    no_data = sorted(f"{f}: no series" for f in expected - set(fam_best))
    if not has_logs:
        no_data.append("logs: none for this entity")
    if not has_spans:
        no_data.append("traces: none for this entity")
    return ev, checked, no_data


def _log_evidence(ents: set[EntityId], ctx: RankContext) -> tuple[list[Evidence], bool]:
    inc, base = ctx.incident, ctx.baseline
    counts_b: Counter[str] = Counter()
    counts_i: Counter[str] = Counter()
    examples: dict[str, list] = defaultdict(list)
    seen = False
    templates = log_templates(ctx)
    for rec, tpl in zip(ctx.snapshot.logs, templates, strict=True):
        if rec.entity not in ents:
            continue
        seen = True
        t = rec.ts_ns // 1_000_000_000
        if base.start <= t <= base.end:
            counts_b[tpl] += 1
        elif inc.start <= t <= inc.end:
            counts_i[tpl] += 1
            if len(examples[tpl]) < 3:
                examples[tpl].append(rec)
    dur_b = max(base.duration, 1)
    dur_i = max(inc.duration, 1)
    out = []
    for tpl, n in counts_i.most_common():
        rate_i, rate_b = n / dur_i, counts_b.get(tpl, 0) / dur_b
        if n >= 3 and rate_i >= 3 * rate_b + 1e-9:
            ex = examples[tpl]
            new = "new template" if counts_b.get(tpl, 0) == 0 else f"{rate_i / max(rate_b, 1e-9):.0f}× its normal rate"
            out.append(Evidence(
                "log", ex[0].entity, f"log '{tpl[:90]}' ×{n} in the incident ({new})",
                {"template": tpl, "count": n, "baseline_count": counts_b.get(tpl, 0),
                 "examples": [r.body[:300] for r in ex],
                 "trace_ids": [r.trace_id for r in ex if r.trace_id]},
                "anomalous", float(n)))
        if len(out) >= 3:
            break
    return out, seen


# per snapshot: (the span_entities tuple it was built from, entity -> its span indices ascending)
_BY_ENTITY: weakref.WeakKeyDictionary[Snapshot, tuple[tuple[EntityId, ...], dict[EntityId, list[int]]]] = \
    weakref.WeakKeyDictionary()


def _spans_by_entity(snap: Snapshot, aliases: dict[str, EntityId]
                     ) -> tuple[tuple[EntityId, ...], dict[EntityId, list[int]]]:
    """The entity of every span and the span indices grouped by entity, built once per snapshot
    (not per hypothesis)."""
    span_ent = span_entities(snap, aliases)
    hit = _BY_ENTITY.get(snap)
    if hit is not None and hit[0] is span_ent:
        return hit
    by: dict[EntityId, list[int]] = {}
    for i, e in enumerate(span_ent):
        by.setdefault(e, []).append(i)
    _BY_ENTITY[snap] = hit = (span_ent, by)
    return hit


def _trace_evidence(ents: set[EntityId], ctx: RankContext) -> tuple[list[Evidence], bool]:
    spans = ctx.snapshot.spans
    if not spans:
        return [], False
    inc, base = ctx.incident, ctx.baseline
    aliases = aliases_from_inventory(ctx.snapshot.inventory)
    groups = {r.src: r.dst for r in ctx.snapshot.inventory.relations if r.relation == "member_of"}
    stats: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: {"b": [], "i": [], "ids": []})
    span_ent, by_ent = _spans_by_entity(ctx.snapshot, aliases)
    picked = [by_ent[e] for e in by_ent if e in ents or groups.get(e) in ents]
    seen = bool(picked)
    # the spans of these entities in snapshot order (as a scan of every span would visit them)
    for i in merge(*picked):
        s, e = spans[i], span_ent[i]
        t = s.start_ns // 1_000_000_000
        k = (e if e in ents else groups[e], s.name)
        if base.start <= t <= base.end:
            stats[k]["b"].append((s.duration_s, s.status == "error"))
        elif inc.start <= t <= inc.end:
            stats[k]["i"].append((s.duration_s, s.status == "error"))
            stats[k]["ids"].append((s.duration_s, s.status == "error", s.trace_id))
    out = []
    for (ent, name), st in stats.items():
        if len(st["b"]) < 5 or len(st["i"]) < 3:
            continue
        db = np.median([d for d, _ in st["b"]])
        di = np.median([d for d, _ in st["i"]])
        eb = np.mean([e for _, e in st["b"]])
        ei = np.mean([e for _, e in st["i"]])
        if di >= 1.5 * db or ei >= eb + 0.05:
            worst = sorted(st["ids"], key=lambda x: (-x[1], -x[0]))[:3]
            out.append(Evidence(
                "trace", ent, f"span '{name}' median {db * 1e3:.0f} ms → {di * 1e3:.0f} ms, "
                f"errors {eb:.0%} → {ei:.0%}",
                {"span": name, "baseline_median_s": float(db), "incident_median_s": float(di),
                 "baseline_error_share": float(eb), "incident_error_share": float(ei),
                 "trace_ids": [w[2] for w in worst]}, "anomalous",
                float(max(di / max(db, 1e-9), 1.0) + 10 * max(ei - eb, 0.0))))
    out.sort(key=lambda x: -x.score)
    return out[:3], seen
