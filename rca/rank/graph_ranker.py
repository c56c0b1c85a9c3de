"""The graph-aware ranker: a root cause is an anomalous entity whose anomalies are *not
explained* by what it depends on, that started no later than what it explains, and that lies
on (or loads) a dependency path to the symptom.

Steps (all entity-level; series scores come from ``rca.rank.scoring``):

1. score every derived series, aggregate per entity (best series); a call-edge series measured
   by callers is about the callee when most of the callee's callers see it (``_edge_owners``);
2. decide for every anomalous entity whether it is *explained*:
   * its own *intrinsic* anomalies (``load``, ``fault``, ``output``, a change event) make it
     a cause — unless its extra load is failover from a failing sibling or comes from an
     anomalous caller;
   * otherwise it is explained by an anomalous dependency that started no later, or by a
     dependent whose load rose first (load-induced saturation — a noisy neighbour); a
     dependency that only got *quieter* (fewer calls, less I/O) explains nothing — that is
     what a failing caller does to its callees;
3. roll a fault shared by most members of a group (replicas of a model or service, GPUs of
   a node) up to the group; a fault of one replica stays with the replica;
4. score = deviation × (explained ? 0.3 : 1) × (connected to the symptom ? 1 : 0.5)
   × exp(-lateness of the onset in the window);
5. category from the evidence (``rca.rank.categories``), confidence from strength and margin;
6. the first ``pool`` candidates are logged with their features (``rca.rank.features``) and,
   when a learned re-ranker is active (``reranker``, see ``rca.learn``), put in its order.
"""

from __future__ import annotations

import math
from collections import defaultdict

import networkx as nx

from rca.graph import DependencyGraph
from rca.protocols import RankContext, RerankerSource
from rca.rank.categories import Facts, categorize
from rca.rank.evidence import build_evidence
from rca.rank.features import CandidateFacts, features_of
from rca.rank.scoring import THRESHOLD, EntityScore, entity_scores, score_series
from rca.signals import Signals
from rca.types import Candidate, EntityId, Hypothesis, entity_kind

__all__ = ["GraphRanker"]

INTRINSIC = ("load", "fault", "output")
EXPLAINED_PENALTY = 0.3
UNRELATED_PENALTY = 0.5
SHARED_KINDS = ("gpu", "node", "db")
# an anomaly that starts late in the incident window is more likely an effect than the
# cause: the score is multiplied by exp(-LATE_PENALTY * lateness), lateness in [0, 1] of the
# window after the first onset
LATE_PENALTY = 1.0
LOAD_CAUSE_MIN = 2 * THRESHOLD
AGREEMENT_BONUS = 0.25
DEMAND_DRIVEN = frozenset({"traffic", "work", "cpu", "syscall", "network", "latency", "memory", "queue",
                           "token_throughput"})
RESOURCE_FAMILIES = frozenset({"cpu", "memory", "disk", "syscall", "socket", "network_loss"})
# families that describe what an entity does by itself, never a side effect of a sibling's trouble
DISTINCTIVE = frozenset({"input", "token_loop", "kv_cache", "kv_preempt", "gpu_xid", "gpu_thermal", "errors"})


_REPLICA_LABELS = frozenset({"pod", "instance", "container_id", "uid", "pod_uid", "image", "id", "name",
                             "version", "pod_template_hash"})


def _peer_keys(sig: Signals, member_group: dict[EntityId, EntityId]) -> list:
    """Rows of replicas of one group measuring the same thing share a peer key."""
    out = []
    for key, ent in zip(sig.frame.keys, sig.entities, strict=True):
        g = member_group.get(ent)
        out.append(None if g is None else
                   (g, key.name, tuple(p for p in key.labels if p[0] not in _REPLICA_LABELS)))
    return out


def _deps(graph: DependencyGraph, e: EntityId) -> list[EntityId]:
    return [d for d in graph.dependencies(e) if graph.g[e][d].get("relation") != "member_of"]


def _dependents(graph: DependencyGraph, e: EntityId) -> list[EntityId]:
    return [u for u in graph.dependents(e) if graph.g[u][e].get("relation") != "member_of"]


def _latency_rise(sig: Signals, scores) -> dict[EntityId, tuple[float, str]]:
    """Per entity: the largest absolute rise (observed peak - baseline median) among its
    significant latency series, with their unit."""
    out: dict[EntityId, tuple[float, str]] = {}
    for r, ent in enumerate(sig.entities):
        info = scores.infos[r]
        if info.family != "latency" or scores.score[r] < THRESHOLD:
            continue
        rise = float(scores.observed[r] - scores.baseline[r])
        if math.isfinite(rise) and rise > out.get(ent, (0.0, ""))[0]:
            out[ent] = (rise, info.unit)
    return out


def _edge_owners(sig: Signals, scores) -> tuple[EntityId, ...]:
    """Who a caller-side call-edge measurement (labels ``peer``, ``side="client"``) is about.

    A call from X to Y got slower: the time is spent in Y, on the link, or in X's client.
    When most callers of Y see it and X's calls to its other callees do not, it is about Y
    (a slow link into Y or Y itself); when X sees it on most of its calls, it is about X.
    Rows are re-attributed to the peer entity only in the first case.
    """
    ents = list(sig.entities)
    of_service = {}
    for k, e in zip(sig.frame.keys, ents, strict=True):
        if k.label("service") and not k.label("peer"):
            of_service.setdefault(k.label("service"), e)
    edges = [(r, e, of_service.get(k.label("peer"))) for r, (k, e) in enumerate(zip(sig.frame.keys, ents, strict=True))
             if k.label("side") == "client" and k.label("peer") in of_service]
    if not edges:
        return sig.entities
    hot = {r: bool(scores.score[r] >= THRESHOLD) for r, _, _ in edges}
    by_callee: dict[EntityId, list[bool]] = defaultdict(list)
    by_caller: dict[EntityId, list[bool]] = defaultdict(list)
    for r, x, y in edges:
        by_callee[y].append(hot[r])
        by_caller[x].append(hot[r])
    for r, x, y in edges:
        if hot[r]:
            into_y = sum(by_callee[y]) / len(by_callee[y])
            out_of_x = sum(by_caller[x]) / len(by_caller[x])
            if into_y > out_of_x or (into_y == out_of_x and len(by_callee[y]) > 1):
                ents[r] = y
    return tuple(ents)


class GraphRanker:
    name = "graph"
    needs_anomalies = False  # scores every signal row itself (score_series); context.anomalies unused

    def __init__(self, max_hypotheses: int = 5, pool: int = 20, reranker: RerankerSource | None = None) -> None:
        self.max_hypotheses = max_hypotheses
        self.pool = pool
        self.reranker = reranker

    def rank(self, context: RankContext) -> list[Hypothesis]:
        return self.rank_candidates(context)[0]

    def rank_candidates(self, context: RankContext) -> tuple[list[Hypothesis], list[Candidate]]:
        """The hypotheses and the first ``pool`` candidates with their features (best first in
        the base order), so that feedback on the incident can train a re-ranker."""
        sig = Signals(context.signals, context.signal_entities, context.changes, context.resolution)
        graph = context.graph
        member_group = {b: a for a, b, rel in graph.edges() if rel == "member_of"}
        scores = score_series(sig, context.baseline, context.incident, _peer_keys(sig, member_group))
        if any(k.label("side") == "client" for k in sig.frame.keys):
            sig = Signals(sig.frame, _edge_owners(sig, scores), sig.changes, sig.resolution)
        ents = entity_scores(sig, scores)
        tol = max(2 * context.incident.step, 60)  # onsets are only known to a sample or two
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
            # a demand change must be clear to make an entity a cause (demand wobbles daily)
            best = max((v for r, v in es.roles.items()
                        if r in INTRINSIC and (r != "load" or v >= LOAD_CAUSE_MIN)), default=0.0)
            return es.score if change_near(es.entity, es.onset) else best

        def started_before(a: EntityScore, b: EntityScore) -> bool:
            return a.onset >= 0 and (b.onset < 0 or a.onset <= b.onset + tol)

        # group-level view (needed to judge a dependency that is a group, e.g. db:vector-db)
        agg: dict[EntityId, EntityScore] = {}
        for g, ms in groups.items():
            hit = [anomalous[m] for m in ms if m in anomalous]
            if hit:
                onsets = [h.onset for h in hit if h.onset >= 0]
                roles: dict[str, float] = {}
                for h in hit:
                    for k, v in h.roles.items():
                        roles[k] = max(roles.get(k, 0.0), v)
                agg[g] = EntityScore(g, max(h.score for h in hit), min(onsets) if onsets else -1, [], roles, {})

        def look(x: EntityId) -> EntityScore | None:
            return anomalous.get(x) or agg.get(x)

        def deps_of(e: EntityId) -> list[EntityId]:
            own = _deps(graph, e)
            g = group_of.get(e)
            up = [d for d in _deps(graph, g) if d not in groups.get(g, [])] if g else []
            return own + [d for d in up if d not in own and d != e]

        def dependents_of(e: EntityId) -> list[EntityId]:
            own = _dependents(graph, e)
            g = group_of.get(e)
            return own + ([u for u in _dependents(graph, g) if u not in own] if g else [])

        explained_by: dict[EntityId, EntityId | None] = {}
        shared_explainer: set[EntityId] = set()
        loaders: dict[EntityId, EntityId] = {}  # shared resource -> the consumer that loads it

        def consumer_explains(e: EntityId, es: EntityScore) -> EntityId | None:
            """A shared resource (GPU, node, DB) saturated by a consumer whose own demand rose,
            or that went down, or whose use of the same resource rose."""
            for u in dependents_of(e):
                u_es = look(u)
                if not u_es or not started_before(u_es, es):
                    continue
                same_use = bool(set(u_es.families) & set(es.families))
                # a load change explains a saturation only when it is of a comparable size
                big_enough = math.log1p(max(u_es.roles.get("load", 0.0), u_es.score if same_use else 0.0)) \
                    >= 0.5 * math.log1p(es.score)
                if ((intrinsic(u_es) >= THRESHOLD and "load" in u_es.roles)
                        or "down" in u_es.roles or (same_use and big_enough)):
                    if "load" in u_es.roles:
                        loaders[e] = u
                    return u
            return None

        lat_rise = _latency_rise(sig, scores)

        def quieter(d_es: EntityScore) -> bool:
            """Every significant move of the entity is *less* activity (fewer calls, less I/O
            or CPU): that is what a caller in trouble does to its callees, not the other way."""
            rows = d_es.rows or [r for m in groups.get(d_es.entity, []) if m in anomalous for r in anomalous[m].rows]
            return bool(rows) and all(
                scores.direction[r] < 0 and scores.infos[r].bad_direction == "up" and not scores.vanished[r]
                and scores.infos[r].role not in ("errors", "fault") for r in rows)

        def too_small_to_explain(d: EntityId, e: EntityId) -> bool:
            """A callee whose latency rose by 1 ms cannot explain a caller that got 1 s slower
            (the latency budget): compared only when both have latency series in one unit."""
            de, dd = lat_rise.get(e), lat_rise.get(d)
            if not de or not dd or de[1] != dd[1] or de[0] <= 0:
                return False
            return dd[0] < 0.2 * de[0]

        def explains_back(d: EntityId, e: EntityId) -> bool:
            x, seen = explained_by.get(d), set()
            while x is not None and x not in seen:
                if x == e or group_of.get(x) == e or x == group_of.get(e):
                    return True
                seen.add(x)
                x = explained_by.get(x)
            return False

        # pass 1: shared resources explained by their consumers
        for e, es in anomalous.items():
            if entity_kind(e) in SHARED_KINDS and intrinsic(es) < THRESHOLD:
                explained_by[e] = consumer_explains(e, es)
        def failover_from(e: EntityId, es: EntityScore) -> EntityId | None:
            """A replica that went down, or degraded much more and earlier, pushes its share of
            the traffic onto its siblings."""
            g = group_of.get(e)
            for sib in groups.get(g, []) if g else []:
                s_es = anomalous.get(sib)
                if sib != e and s_es and started_before(s_es, es) and (
                        "down" in s_es.roles or (s_es.score >= 2 * es.score and not DISTINCTIVE & set(es.families))):
                    return sib
            return None

        # pass 2: everything else
        for e, es in anomalous.items():
            if e in explained_by:
                continue
            by = None
            if intrinsic(es) >= THRESHOLD:
                only_load = set(es.roles) & set(INTRINSIC) == {"load"} and not change_near(e, es.onset)
                if only_load:
                    by = failover_from(e, es)
                    for u in dependents_of(e) if by is None else []:
                        u_es = look(u)
                        if u_es and "load" in u_es.roles and started_before(u_es, es) and \
                                math.log1p(u_es.roles["load"]) >= 0.5 * math.log1p(es.roles.get("load", 0.0)):
                            by = u
                            break
            else:
                for d in deps_of(e):
                    d_es = look(d)
                    if not d_es or not started_before(d_es, es) or explains_back(d, e):
                        continue
                    if quieter(d_es):
                        continue
                    # a slightly busier host (or a slightly odd dependency) does not explain a
                    # hundredfold slowdown
                    if not {"down", "fault"} & set(d_es.roles) \
                            and math.log1p(d_es.score) < 0.5 * math.log1p(es.score):
                        continue
                    top_role = max(es.roles, key=es.roles.get)
                    if top_role == "latency" and "down" not in d_es.roles and too_small_to_explain(d, e):
                        continue
                    # failing requests are explained by a dependency that fails (or is gone),
                    # not by one that is merely busier or a little slower
                    if top_role == "errors" and not {"errors", "down", "fault"} & set(d_es.roles):
                        continue
                    # a service's own CPU, memory, disk or sockets filling up is not something a
                    # busier or slower dependency does to it (a failed one might)
                    top_fam = max(es.families, key=es.families.get) if es.families else ""
                    if top_fam in RESOURCE_FAMILIES and entity_kind(d) not in SHARED_KINDS \
                            and not {"down", "fault"} & set(d_es.roles) and top_fam not in d_es.families:
                        continue
                    by = d
                    break
                if by is None and "down" not in es.roles:
                    by = failover_from(e, es)
            explained_by[e] = by

        # a noisy neighbour loads a shared resource that in turn slows *another* consumer
        for res, u in loaders.items():
            if any(explained_by.get(v) == res for v in dependents_of(res) if v != u):
                shared_explainer.add(u)

        # roll shared faults up to groups
        candidates: dict[EntityId, EntityScore] = {}
        members_in: dict[EntityId, list[EntityId]] = {}
        absorbed: set[EntityId] = set()
        for g, ms in groups.items():
            hit = [m for m in ms if m in anomalous and explained_by.get(m) not in ms]
            if hit:  # a member far weaker than the worst one does not share its fault
                top_log = max(math.log1p(anomalous[m].score) for m in hit)
                hit = [m for m in hit if math.log1p(anomalous[m].score) >= 0.5 * top_log]
            if hit and (len(ms) == 1 or len(hit) * 2 > len(ms)):
                # the group's own series (a service's metrics beside its pods' spans) count too
                parts = hit + ([g] if g in anomalous else [])
                best = max((anomalous[m] for m in parts), key=lambda x: x.score)
                onsets = [anomalous[m].onset for m in parts if anomalous[m].onset >= 0]
                es = EntityScore(g, best.score, min(onsets) if onsets else -1,
                                 sorted({r for m in parts for r in anomalous[m].rows},
                                        key=lambda r: -scores.score[r]),
                                 {}, {})
                for m in parts:
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
                own_cause = g in anomalous and explained_by.get(g) is None
                explained_by[g] = ext[0] if all(ext) and not own_cause else None
                if any(m in shared_explainer for m in hit):
                    shared_explainer.add(g)
        for e, es in anomalous.items():
            if e not in absorbed and e not in candidates:
                candidates[e] = es
                members_in[e] = [e]

        symptom = context.symptom.entity if context.symptom else None
        relevant = set()
        if symptom and symptom in graph:
            relevant = set(nx.descendants(graph.g, symptom)) | {symptom}
        def chain_root(e: EntityId) -> EntityId:
            """Follow "explained by" to the entity that explains everything on the way."""
            seen = {e}
            x = e
            while True:
                nxt = explained_by.get(x)
                if nxt is None and x in agg and x not in candidates:
                    hit = sorted((anomalous[m] for m in groups[x] if m in anomalous),
                                 key=lambda h: (h.onset < 0, h.onset))
                    nxt = explained_by.get(hit[0].entity) if hit else None
                if nxt is None or nxt in seen:
                    return x
                seen.add(nxt)
                x = nxt

        sym = context.symptom
        sym_rise = (float(sym.observed - sym.baseline), sym.unit) if sym is not None and sym.series is not None \
            and math.isfinite(sym.observed - sym.baseline) else None

        def es_of(e: EntityId) -> EntityScore:
            return candidates.get(e) or anomalous.get(e) or agg[e]

        def cannot_carry_symptom(e: EntityId, es: EntityScore) -> bool:
            """Only slower: an entity whose anomaly is its latency, risen by a tenth of the
            symptom's rise (same unit), cannot be what made the symptom slow."""
            if sym_rise is None or sym_rise[0] <= 0 or not es.roles or max(es.roles, key=es.roles.get) != "latency":
                return False
            mine = max((lat_rise[m] for m in members_in.get(e, [e]) + [e] if m in lat_rise),
                       key=lambda x: x[0], default=None)
            return mine is not None and mine[1] == sym_rise[1] and mine[0] < 0.1 * sym_rise[0]

        # order: deviation; an explained entity never outranks what explains it
        compressed = {e: es.score for e, es in candidates.items()}
        for g, es in agg.items():
            compressed.setdefault(g, es.score)
        for e, es in anomalous.items():
            compressed.setdefault(e, es.score)
        final: list[tuple[float, EntityId]] = []
        first = max(context.incident.start,
                    min((es.onset for es in candidates.values() if es.onset >= 0), default=context.incident.start))

        def lateness(onset: int) -> float:
            """0 for the first onset among the candidates, 1 at the end of the window."""
            return min(1.0, max(0.0, (onset - first) / max(context.incident.end - first, 1)))

        sources: dict[EntityId, frozenset[str]] = {}
        flagged: dict[EntityId, tuple[bool, bool]] = {}  # off the symptom's paths, cannot carry it
        for e in candidates:
            f = compressed[e]
            if explained_by.get(e) is not None:
                r = chain_root(e)
                f = min(f * EXPLAINED_PENALTY, 0.9 * compressed.get(r, f)) if r != e else f * EXPLAINED_PENALTY
            sources[e] = frozenset(context.signals.keys[r].label("source") or "metrics" for r in candidates[e].rows)
            f *= 1.0 + AGREEMENT_BONUS * max(0, len(sources[e]) - 1)  # metrics, logs and traces agree
            if es_of(e).onset >= 0:
                f *= math.exp(-LATE_PENALTY * lateness(es_of(e).onset))
            off_path = bool(relevant) and e not in relevant and e not in shared_explainer
            flagged[e] = (off_path, e != symptom and cannot_carry_symptom(e, es_of(e)))
            if any(flagged[e]):
                f *= UNRELATED_PENALTY
            final.append((f, e))
        below: set[EntityId] = set()
        if context.params.get("rank_all"):
            # a full order for benchmarks: entities below threshold follow every anomalous one
            taken = set(candidates) | absorbed
            floor = min((f for f, _ in final), default=THRESHOLD)
            for e, es in ents.items():
                if e not in taken:
                    candidates[e] = es
                    members_in[e] = [e]
                    below.add(e)
                    final.append((floor * es.score / (es.score + THRESHOLD), e))
        final.sort(key=lambda x: (-x[0], x[1]))

        def facts_of(e: EntityId) -> Facts:
            es = candidates[e]
            obs: dict[str, float] = {}
            for r in es.rows:
                v = scores.observed[r]
                if not math.isnan(v):
                    fam = scores.infos[r].family
                    obs[fam] = max(obs.get(fam, float("-inf")), float(v))
            return Facts(e, es.families, es.roles, obs, change_near(e, es.onset) or any(
                change_near(m, es.onset) for m in members_in[e]), e in shared_explainer)

        hops = {}
        if symptom and symptom in graph:
            hops = nx.single_source_shortest_path_length(graph.g, symptom)
        pool = final[: max(self.pool, self.max_hypotheses)]
        onsets = sorted(es_of(e).onset for _, e in pool if es_of(e).onset >= 0)
        top_f = pool[0][0] if pool else 0.0
        facts = {e: facts_of(e) for _, e in pool}
        categories = {e: categorize(facts[e], context.params.get("categories", "fleet")) for _, e in pool}
        pool_out = []
        for i, (f, e) in enumerate(pool):
            es = es_of(e)
            cf = CandidateFacts(
                entity=e, category=categories[e], base_score=f, top_score=top_f, base_rank=i,
                deviation=compressed.get(e, es.score),
                onset_known=es.onset >= 0, lateness=lateness(es.onset) if es.onset >= 0 else 1.0,
                onset_order=(sum(o < es.onset for o in onsets) / len(onsets)) if onsets and es.onset >= 0 else 1.0,
                roles=es.roles, n_families=len(es.families), sources=sources.get(e, frozenset()),
                explained=explained_by.get(e) is not None, off_path=flagged.get(e, (False, False))[0],
                cannot_carry=flagged.get(e, (False, False))[1], shared_explainer=e in shared_explainer,
                change_near=facts[e].change_near_onset, intrinsic=intrinsic(es) >= THRESHOLD, is_symptom=e == symptom,
                hops=hops.get(e), n_dependents=len(dependents_of(e)), n_dependencies=len(deps_of(e)),
                group_size=len(members_in.get(e, [e])), below_threshold=e in below)
            pool_out.append(Candidate(e, categories[e], round(float(f), 3), features_of(cf)))

        # the learned re-ranker (if one is active) reorders the pool; margins are then its
        # pairwise probabilities (sigmoid of the decision difference), else score ratios
        learned = self.reranker.get() if self.reranker is not None else None
        if learned is not None and len(pool) > 1:
            d = [float(x) for x in learned.model.decision_function([c.features for c in pool_out])]
            order = learned.model.order([c.features for c in pool_out])
            ranked = [(pool[k][0], pool[k][1], d[k]) for k in order] + [(f, e, None) for f, e in final[len(pool):]]
        else:
            ranked = [(f, e, None) for f, e in final]

        def margin(i: int) -> float:
            j = 1 if i == 0 else 0
            if j >= min(len(ranked), self.max_hypotheses):
                return 1.0
            (s, _, d), (so, _, do) = ranked[i][:3], ranked[j][:3]
            if d is not None and do is not None:
                return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, d - do))))
            return s / (s + so) if (s + so) > 0 else 0.0

        out: list[Hypothesis] = []
        for rank_i, (s, e, _) in enumerate(ranked[: self.max_hypotheses]):
            es = candidates[e]
            category = categories.get(e) or categorize(facts_of(e), context.params.get("categories", "fleet"))
            fams = set(es.families)
            if es.roles.get("load", 0.0) >= 0.5 * es.score:
                # more demand moves CPU, network, latency and request counts together: one
                # cause seen many times is not agreement
                fams -= DEMAND_DRIVEN
                fams.add("demand")
            agreement = 3.0 * min(3, max(0, len(fams) - 1))
            strength = 1.0 - math.exp(-max(0.0, es.score + agreement - THRESHOLD) / 6.0)
            confidence = strength * (0.5 + 0.5 * margin(rank_i))
            if explained_by.get(e) is not None:
                confidence *= 0.5
            confidence = round(confidence, 3)
            path = tuple(graph.path(e, symptom)) if symptom else (e,)
            evidence, checked, no_data = build_evidence(e, members_in[e], es.rows, scores, context,
                                                       explained_by.get(e))
            out.append(Hypothesis(root=e, category=category, score=round(float(s), 3),
                                  confidence=confidence, path=path, evidence=tuple(evidence),
                                  checked=tuple(checked), no_data=tuple(no_data)))
        return out, pool_out

