"""The graph-aware ranker: a root cause is an anomalous entity whose anomalies are *not
explained* by what it depends on, that started no later than what it explains, and that lies
on (or loads) a dependency path to the symptom.

Steps (all entity-level; series scores come from ``rca.rank.scoring``):

1. score every derived series, aggregate per entity (best series);
2. decide for every anomalous entity whether it is *explained*:
   * its own *intrinsic* anomalies (``load``, ``fault``, ``output``, a change event) make it
     a cause — unless its extra load is failover from a failing sibling or comes from an
     anomalous caller;
   * otherwise it is explained by an anomalous dependency that started no later, or by a
     dependent whose load rose first (load-induced saturation — a noisy neighbour);
3. roll a fault shared by most members of a group (replicas of a model or service, GPUs of
   a node) up to the group; a fault of one replica stays with the replica;
4. score = deviation × (explained ? 0.3 : 1) × (connected to the symptom ? 1 : 0.5);
5. category from the evidence (``rca.rank.categories``), confidence from strength and margin.
"""

from __future__ import annotations

import math
from collections import defaultdict

from rca.graph import DependencyGraph
from rca.protocols import RankContext
from rca.rank.categories import Facts, categorize
from rca.rank.evidence import build_evidence
from rca.rank.scoring import THRESHOLD, EntityScore, entity_scores, score_series
from rca.signals import Signals
from rca.types import EntityId, Hypothesis, entity_kind

__all__ = ["GraphRanker"]

INTRINSIC = ("load", "fault", "output")
EXPLAINED_PENALTY = 0.3
UNRELATED_PENALTY = 0.5
SHARED_KINDS = ("gpu", "node", "db")


def _deps(graph: DependencyGraph, e: EntityId) -> list[EntityId]:
    return [d for d in graph.dependencies(e) if graph.g[e][d].get("relation") != "member_of"]


def _dependents(graph: DependencyGraph, e: EntityId) -> list[EntityId]:
    return [u for u in graph.dependents(e) if graph.g[u][e].get("relation") != "member_of"]


class GraphRanker:
    name = "graph"

    def __init__(self, max_hypotheses: int = 5) -> None:
        self.max_hypotheses = max_hypotheses

    def rank(self, context: RankContext) -> list[Hypothesis]:
        sig = Signals(context.signals, context.signal_entities)
        scores = score_series(sig, context.baseline, context.incident)
        ents = entity_scores(sig, scores)
        graph = context.graph
        tol = 2 * max(context.incident.step, 1)
        anomalous = {e: es for e, es in ents.items() if es.score >= THRESHOLD}
        changes = defaultdict(list)
        for c in context.changes:
            changes[c.entity].append(c.at)

        groups: dict[EntityId, list[EntityId]] = defaultdict(list)
        for a, b, rel in graph.edges():
            if rel == "member_of":
                groups[a].append(b)
        group_of = {m: g for g, ms in groups.items() for m in ms}

        def change_near(e: EntityId, onset: int) -> bool:
            members = groups.get(e, []) + [e]
            return any(onset - 900 <= t <= onset + tol for m in members for t in changes.get(m, ()))

        def intrinsic(es: EntityScore) -> float:
            best = max((v for r, v in es.roles.items() if r in INTRINSIC), default=0.0)
            return es.score if change_near(es.entity, es.onset) else best

        def started_before(a: EntityScore, b: EntityScore) -> bool:
            return a.onset >= 0 and (b.onset < 0 or a.onset <= b.onset + tol)

        explained_by: dict[EntityId, EntityId | None] = {}
        shared_explainer: set[EntityId] = set()
        for e, es in anomalous.items():
            by = None
            if intrinsic(es) >= THRESHOLD:
                only_load = set(es.roles) & set(INTRINSIC) == {"load"} and not change_near(e, es.onset)
                if only_load:
                    g = group_of.get(e)
                    for sib in groups.get(g, []) if g else []:
                        s_es = anomalous.get(sib)
                        if sib != e and s_es and "down" in s_es.roles and started_before(s_es, es):
                            by = sib
                            break
                    for u in _dependents(graph, e) if by is None else []:
                        u_es = anomalous.get(u)
                        if u_es and "load" in u_es.roles and started_before(u_es, es):
                            by = u
                            break
            else:
                for d in _deps(graph, e):
                    d_es = anomalous.get(d)
                    if d_es and started_before(d_es, es):
                        by = d
                        break
                if by is None:
                    for u in _dependents(graph, e):
                        u_es = anomalous.get(u)
                        if u_es and intrinsic(u_es) >= THRESHOLD and "load" in u_es.roles \
                                and started_before(u_es, es):
                            by = u
                            if entity_kind(e) in SHARED_KINDS:
                                shared_explainer.add(u)
                            break
            explained_by[e] = by

        # roll shared faults up to groups
        candidates: dict[EntityId, EntityScore] = {}
        members_in: dict[EntityId, list[EntityId]] = {}
        absorbed: set[EntityId] = set()
        for g, ms in groups.items():
            hit = [m for m in ms if m in anomalous]
            if hit and (len(ms) == 1 or len(hit) * 2 > len(ms)):
                best = max((anomalous[m] for m in hit), key=lambda x: x.score)
                onsets = [anomalous[m].onset for m in hit if anomalous[m].onset >= 0]
                es = EntityScore(g, best.score, min(onsets) if onsets else -1,
                                 sorted({r for m in hit for r in anomalous[m].rows},
                                        key=lambda r: -scores.score[r]),
                                 {}, {})
                for m in hit:
                    for k, v in anomalous[m].roles.items():
                        es.roles[k] = max(es.roles.get(k, 0.0), v)
                    for k, v in anomalous[m].families.items():
                        es.families[k] = max(es.families.get(k, 0.0), v)
                candidates[g] = es
                members_in[g] = hit
                absorbed.update(hit)
                # explained only if every member's explanation leads outside the group
                ext = []
                for m in hit:
                    x, seen = explained_by.get(m), set()
                    while x in ms and x not in seen:
                        seen.add(x)
                        x = explained_by.get(x)
                    ext.append(x if x not in ms else None)
                explained_by[g] = ext[0] if all(ext) else None
                if any(m in shared_explainer for m in hit):
                    shared_explainer.add(g)
        for e, es in anomalous.items():
            if e not in absorbed and e not in candidates:
                candidates[e] = es
                members_in[e] = [e]

        symptom = context.symptom.entity if context.symptom else None
        relevant = set()
        if symptom and symptom in graph:
            import networkx as nx

            relevant = set(nx.descendants(graph.g, symptom)) | {symptom}
        final: list[tuple[float, EntityId]] = []
        for e, es in candidates.items():
            s = es.score
            if explained_by.get(e) is not None:
                s *= EXPLAINED_PENALTY
            if relevant and e not in relevant and not (e in shared_explainer):
                s *= UNRELATED_PENALTY
            final.append((s, e))
        final.sort(key=lambda x: (-x[0], x[1]))

        out: list[Hypothesis] = []
        top = final[: self.max_hypotheses]
        second = top[1][0] if len(top) > 1 else 0.0
        for rank_i, (s, e) in enumerate(top):
            es = candidates[e]
            rows = es.rows
            obs: dict[str, float] = {}
            for r in rows:
                fam = scores.infos[r].family
                v = scores.observed[r]
                if not math.isnan(v):
                    obs[fam] = max(obs.get(fam, float("-inf")), float(v))
            facts = Facts(e, es.families, es.roles, obs, change_near(e, es.onset) or any(
                change_near(m, es.onset) for m in members_in[e]), e in shared_explainer)
            category = categorize(facts)
            other = top[0][0] if rank_i else second
            strength = 1.0 - math.exp(-max(0.0, s - THRESHOLD) / 6.0)
            margin = s / (s + other) if (s + other) > 0 else 0.0
            confidence = round(strength * (0.4 + 0.6 * margin), 3)
            path = tuple(graph.path(e, symptom)) if symptom else (e,)
            evidence, checked, no_data = build_evidence(e, members_in[e], rows, scores, context,
                                                       explained_by.get(e))
            out.append(Hypothesis(root=e, category=category, score=round(float(s), 3),
                                  confidence=confidence, path=path, evidence=tuple(evidence),
                                  checked=tuple(checked), no_data=tuple(no_data)))
        return out
