"""Which entity a series, a span or a log line belongs to.

Rules, first match wins (labels as Prometheus stores them; see the telemetry reference):

1. ``DCGM_*`` series -> ``gpu:<Hostname|hostname>/<gpu>`` (``gpu:<UUID>`` without a host).
2. a ``pod`` label (vLLM, container, application series) -> ``pod:<pod>``.
3. ``node_*`` / ``kube_node_*`` series -> ``node:<node|instance>``; without either label but
   with a ``service`` one (a case-folder column ``frontend_node_cpu_usage_rate_pct``: the node
   that hosts the service) it stays with the service.
4. ``service`` / ``job`` / ``app`` label -> the alias from the inventory when one is declared
   (``db:vector-db`` for ``service="vector-db"``), else ``service:<name>``.
5. otherwise the metric name's first ``_``-free token as a service (case-folder columns
   are ``<service>_<metric>``).

Pods are grouped into their service, database, tool or model through ``member_of`` relations
in the inventory; rankers roll a fault shared by a group's members up to the group.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence

from rca.types import EntityId, Inventory, SeriesKey, Snapshot, Span

__all__ = ["aliases_from_inventory", "catalog_of", "entity_of_series", "entity_of_span", "span_entities"]


def aliases_from_inventory(inv: Inventory) -> dict[str, EntityId]:
    """``{"vector-db": "db:vector-db", ...}`` from entities that declare a ``service`` attr."""
    out: dict[str, EntityId] = {}
    for eid, attrs in inv.entities.items():
        svc = attrs.get("service")
        if svc:
            out[svc] = eid
    return out


def entity_of_series(key: SeriesKey, aliases: Mapping[str, EntityId] | None = None) -> EntityId:
    labels = key.as_dict()
    aliases = aliases or {}
    if key.name.startswith("DCGM_"):
        host = labels.get("Hostname") or labels.get("hostname")
        gpu = labels.get("gpu")
        if host and gpu is not None:
            return f"gpu:{host}/{gpu}"
        return f"gpu:{labels.get('UUID') or labels.get('uuid') or gpu or 'unknown'}"
    if labels.get("pod"):
        return f"pod:{labels['pod']}"
    if key.name.startswith(("node_", "kube_node_")) and (
            labels.get("node") or labels.get("instance") or not labels.get("service")):
        node = labels.get("node") or labels.get("instance", "unknown").split(":")[0]
        return f"node:{node}"
    for lab in ("service", "job", "app"):
        if labels.get(lab):
            name = labels[lab]
            return aliases.get(name, f"service:{name}")
    head = key.name.split("_", 1)[0] if "_" in key.name else key.name
    return aliases.get(head, f"service:{head}")


def entity_of_span(span: Span, aliases: Mapping[str, EntityId] | None = None) -> EntityId:
    """A span belongs to its pod when the resource names one, else to its service."""
    pod = span.resource.get("k8s.pod.name") if span.resource else None
    if pod:
        return f"pod:{pod}"
    aliases = aliases or {}
    return aliases.get(span.service, f"service:{span.service}")


def catalog_of(snap: Snapshot) -> list[EntityId]:
    """Every entity a snapshot mentions: inventory, metric series, spans, log lines (sorted)."""
    aliases = aliases_from_inventory(snap.inventory)
    ents = set(snap.inventory.entities)
    ents.update(entity_of_series(k, aliases) for k in snap.metrics.keys)
    ents.update(span_entities(snap, aliases))
    ents.update(r.entity for r in snap.logs if r.entity)
    return sorted(ents)


# span_entities memo: per Snapshot object (weakly held: gone with the snapshot), per aliases
_SPAN_ENTS: weakref.WeakKeyDictionary[Snapshot, dict[tuple, tuple[EntityId, ...]]] = weakref.WeakKeyDictionary()
# id(snapshot.spans) -> the snapshot, so a caller holding only the spans tuple finds the memo
_SPANS_OWNER: dict[int, weakref.ref[Snapshot]] = {}


def _forget_owner(key: int, ref: weakref.ref) -> None:
    if _SPANS_OWNER.get(key) is ref:
        del _SPANS_OWNER[key]


def span_entities(source: Snapshot | Sequence[Span],
                  aliases: Mapping[str, EntityId] | None = None) -> tuple[EntityId, ...]:
    """``entity_of_span(s, aliases)`` for every span, in order.

    Given a ``Snapshot`` the result is computed once per snapshot object and aliases (a
    snapshot is immutable; the memo is dropped with it). Given the ``spans`` tuple of a
    snapshot already seen here, the same memo is used; any other sequence is mapped afresh.
    """
    if isinstance(source, Snapshot):
        snap = source
    else:
        ref = _SPANS_OWNER.get(id(source))
        snap = ref() if ref is not None else None
        if snap is None or snap.spans is not source:
            return tuple(entity_of_span(s, aliases) for s in source)
    per = _SPAN_ENTS.get(snap)
    if per is None:
        per = _SPAN_ENTS[snap] = {}
        key_id = id(snap.spans)
        _SPANS_OWNER[key_id] = weakref.ref(snap, lambda r, k=key_id: _forget_owner(k, r))
    akey = tuple(sorted(aliases.items())) if aliases else ()
    got = per.get(akey)
    if got is None:
        got = per[akey] = tuple(entity_of_span(s, aliases) for s in snap.spans)
    return got
