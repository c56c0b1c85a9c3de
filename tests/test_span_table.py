"""Per-snapshot span memo (``rca.entities.span_entities``) and the consumers that use it: the
results must be exactly those of mapping / scanning every span again, as the code did before."""

from __future__ import annotations

import gc
import math
from collections import defaultdict
from types import SimpleNamespace

import numpy as np
import pytest

from models.drift import _GEN_KEYS, _PROMPT_KEYS, _num, span_token_samples
from rca import entities
from rca.entities import aliases_from_inventory, entity_of_span, span_entities
from rca.graph import DependencyGraph
from rca.graph.builders import SpanGraphBuilder
from rca.rank import evidence
from rca.rank.evidence import _trace_evidence
from rca.types import Evidence, Inventory, MetricFrame, Relation, Snapshot, Span, Window

T0 = 1_700_000_000
BASE = Window(T0, T0 + 599, 15)
INC = Window(T0 + 600, T0 + 1199, 15)


def _snapshot(seed: int, n_traces: int = 150) -> Snapshot:
    """Traces through frontend -> cart (pods of service cart) -> redis (aliased to db:redis)
    -> an unaliased service; in the incident half one cart pod is slow and redis fails."""
    rng = np.random.default_rng(seed)
    spans: list[Span] = []
    for k in range(n_traces):
        trace = f"{seed:04x}{k:028x}"
        t = T0 + int(rng.integers(0, 1200)) if k else T0 + 10
        slow = t >= INC.start
        pod = f"cart-{int(rng.integers(0, 3))}"
        calls = [("frontend", None, "GET /", {}, 0.05),
                 ("cart", pod, "cart.get", {}, 0.02 * (4 if slow and pod == "cart-1" else 1)),
                 ("redis", None, "HGET", {}, 0.004),
                 ("audit", None, "write", {}, 0.001)]
        parent = None
        chain = []
        for depth, (svc, pd_, name, attrs, dur) in enumerate(calls):
            sid = f"{k:08x}{depth:08x}"
            err = svc == "redis" and slow and rng.random() < 0.6
            chain.append(Span(trace, sid, parent, svc, name, t * 10**9 + depth * 1000,
                              t * 10**9 + depth * 1000 + int(dur * rng.uniform(0.8, 1.2) * 1e9),
                              "error" if err else "ok", "server", dict(attrs),
                              {"k8s.pod.name": pd_} if pd_ else {}))
            parent = sid
        if k % 7 == 0:  # a child listed before its parent: node order follows first sight
            chain.reverse()
        spans.extend(chain)
    inv = Inventory(entities={"db:redis": {"service": "redis"}, "service:cart": {}},
                    relations=(Relation("pod:cart-0", "member_of", "service:cart"),
                               Relation("pod:cart-1", "member_of", "service:cart"),
                               Relation("pod:cart-2", "member_of", "service:cart")))
    return Snapshot(Window(BASE.start, INC.end, 15), MetricFrame.empty(), tuple(spans), (), inv)


def _old_graph(snapshot: Snapshot) -> DependencyGraph:
    """The span graph as built before the memo: one node and one call per span."""
    g = DependencyGraph()
    aliases = aliases_from_inventory(snapshot.inventory)
    members = {r.src: r.dst for r in snapshot.inventory.relations if r.relation == "member_of"}
    ent = {s.span_id: members.get(e, e) for s in snapshot.spans for e in (entity_of_span(s, aliases),)}
    for s in snapshot.spans:
        g.add_node(ent[s.span_id])
        if s.parent and s.parent in ent and ent[s.parent] != ent[s.span_id]:
            g.add(ent[s.parent], ent[s.span_id], "calls")
    return g


def _old_trace_evidence(ents: set[str], ctx) -> tuple[list[Evidence], bool]:
    """The per-hypothesis scan of every span, as it was before the per-snapshot grouping."""
    spans = ctx.snapshot.spans
    if not spans:
        return [], False
    inc, base = ctx.incident, ctx.baseline
    aliases = aliases_from_inventory(ctx.snapshot.inventory)
    groups = {r.src: r.dst for r in ctx.snapshot.inventory.relations if r.relation == "member_of"}
    stats: dict = defaultdict(lambda: {"b": [], "i": [], "ids": []})
    seen = False
    for s in spans:
        e = entity_of_span(s, aliases)
        if e not in ents and groups.get(e) not in ents:
            continue
        seen = True
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


def test_span_entities_equal_entity_of_span_per_span_and_are_memoised():
    snap = _snapshot(1)
    aliases = aliases_from_inventory(snap.inventory)
    want = tuple(entity_of_span(s, aliases) for s in snap.spans)
    got = span_entities(snap, aliases)
    assert got == want
    assert {"pod:cart-1", "db:redis", "service:audit", "service:frontend"} <= set(got)
    assert span_entities(snap, dict(aliases)) is got  # same aliases by value: the memo
    assert span_entities(snap.spans, aliases) is got  # the snapshot's own spans tuple: the memo
    # other aliases: their own answer, the first one kept
    plain = span_entities(snap, None)
    assert plain == tuple(entity_of_span(s) for s in snap.spans) and "service:redis" in plain
    assert span_entities(snap, aliases) is got
    # a sequence that is not a snapshot's spans tuple is mapped afresh, still correctly
    as_list = list(snap.spans)
    assert span_entities(as_list, aliases) == want
    assert span_entities(as_list, aliases) is not got
    assert span_entities((), aliases) == ()


def test_span_entities_memo_does_not_leak_across_snapshots():
    a, b = _snapshot(2), _snapshot(3, n_traces=40)
    aliases = aliases_from_inventory(a.inventory)
    ea, eb = span_entities(a, aliases), span_entities(b, aliases)
    assert len(ea) == len(a.spans) and len(eb) == len(b.spans) != len(ea)
    assert eb == tuple(entity_of_span(s, aliases) for s in b.spans)
    # an equal-looking snapshot is another object: its own entry
    c = Snapshot(b.window, b.metrics, tuple(b.spans[:5]), (), b.inventory)
    assert span_entities(c, aliases) == eb[:5]
    ids = {id(a.spans), id(b.spans), id(c.spans)}
    assert ids <= set(entities._SPANS_OWNER)
    n = len(entities._SPAN_ENTS)
    del a, b, c, ea, eb
    gc.collect()
    assert len(entities._SPAN_ENTS) == n - 3  # dropped with the snapshots
    assert not ids & set(entities._SPANS_OWNER)


def test_span_graph_is_the_same_as_one_node_and_call_per_span():
    for seed in (4, 5):
        snap = _snapshot(seed)
        new, old = SpanGraphBuilder().build(snap), _old_graph(snap)
        assert list(new.g.nodes) == list(old.g.nodes)  # insertion order too
        assert list(new.g.edges(data=True)) == list(old.g.edges(data=True))
        w = new.g["service:frontend"]["service:cart"]["weight"]
        assert isinstance(w, float) and w == sum(1 for s in snap.spans if s.service == "cart")


@pytest.mark.parametrize("seed", [6, 7, 8])
def test_grouped_trace_evidence_equals_the_scan_of_every_span(seed):
    snap = _snapshot(seed)
    ctx = SimpleNamespace(snapshot=snap, baseline=BASE, incident=INC)
    hypotheses = [{"service:cart"}, {"pod:cart-1"}, {"pod:cart-2", "db:redis"}, {"db:redis"},
                  {"service:frontend", "service:audit"}, {"gpu:nowhere"}, {"service:cart", "pod:cart-1"}]
    found = 0
    for ents in hypotheses:
        new, old = _trace_evidence(ents, ctx), _old_trace_evidence(ents, ctx)
        assert new == old
        found += len(new[0])
    assert found >= 3  # the slow pod and the failing db are visible, so the comparison means something
    # grouped once per snapshot, whatever the number of hypotheses
    assert evidence._BY_ENTITY[snap][0] is span_entities(snap, aliases_from_inventory(snap.inventory))


def _old_token_samples(spans):
    spans = list(spans)
    with_usage = {(s.trace_id, s.span_id) for s in spans
                  if _num(s.attributes, _PROMPT_KEYS) is not None or _num(s.attributes, _GEN_KEYS) is not None}
    prompt, gen = [], []
    for s in spans:
        if (s.trace_id, s.span_id) not in with_usage or (s.trace_id, s.parent) in with_usage:
            continue
        p, g = _num(s.attributes, _PROMPT_KEYS), _num(s.attributes, _GEN_KEYS)
        if p is not None:
            prompt.append(p)
        if g is not None:
            gen.append(g)
    return {"prompt_tokens": np.asarray(prompt, dtype=np.float64),
            "generation_tokens": np.asarray(gen, dtype=np.float64)}


def test_span_token_samples_match_the_two_pass_scan():
    rng = np.random.default_rng(9)
    choices = [{}, {"gen_ai.usage.input_tokens": 10}, {"gen_ai.usage.output_tokens": 3.5},
               {"gen_ai.usage.prompt_tokens": 7, "gen_ai.usage.completion_tokens": 2},
               {"gen_ai.usage.input_tokens": math.nan}, {"gen_ai.usage.input_tokens": True}, {"x": 1}]
    spans = []
    for k in range(400):
        trace = f"{int(rng.integers(0, 30)):032x}"
        parent = f"{int(rng.integers(0, 60)):016x}" if rng.random() < 0.7 else None
        spans.append(Span(trace, f"{int(rng.integers(0, 60)):016x}", parent, "m", "chat", k, k + 1,
                          attributes=dict(choices[int(rng.integers(0, len(choices)))])))
    new, old = span_token_samples(iter(spans)), _old_token_samples(spans)
    assert new.keys() == old.keys()
    for k in new:
        assert new[k].dtype == old[k].dtype and np.array_equal(new[k], old[k])
    assert new["prompt_tokens"].size and new["generation_tokens"].size
