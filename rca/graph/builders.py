"""Graph builders (``rca.protocols.GraphBuilder``): partial graphs that merge.

* ``SpanGraphBuilder``      calls seen in traces: a child span in another entity than its
                            parent is a call parent-entity -> child-entity (weight = count).
* ``InventoryGraphBuilder`` relations from labels and configuration (``snapshot.inventory``):
                            ``calls``, ``runs_on``, ``uses``, ``part_of`` keep their direction;
                            ``member_of`` (pod of a group) becomes group -> pod, since a
                            group's health is its members'.
"""

from __future__ import annotations

from rca.entities import aliases_from_inventory, entity_of_span
from rca.graph import DependencyGraph
from rca.types import Snapshot

__all__ = ["BUILDERS", "InventoryGraphBuilder", "SpanGraphBuilder", "build_graph"]


class SpanGraphBuilder:
    def build(self, snapshot: Snapshot) -> DependencyGraph:
        g = DependencyGraph()
        if not snapshot.spans:
            return g
        aliases = aliases_from_inventory(snapshot.inventory)
        members = {r.src: r.dst for r in snapshot.inventory.relations if r.relation == "member_of"}
        ent = {s.span_id: members.get(e, e) for s in snapshot.spans
               for e in (entity_of_span(s, aliases),)}
        for s in snapshot.spans:
            g.add_node(ent[s.span_id])
            if s.parent and s.parent in ent and ent[s.parent] != ent[s.span_id]:
                g.add(ent[s.parent], ent[s.span_id], "calls")
        return g


class InventoryGraphBuilder:
    def build(self, snapshot: Snapshot) -> DependencyGraph:
        g = DependencyGraph()
        for e in snapshot.inventory.entities:
            g.add_node(e)
        for r in snapshot.inventory.relations:
            if r.relation == "member_of":
                g.add(r.dst, r.src, "member_of")
            else:
                g.add(r.src, r.dst, r.relation)
        return g


BUILDERS = {"spans": SpanGraphBuilder, "inventory": InventoryGraphBuilder}


def build_graph(snapshot: Snapshot, builders: list | None = None) -> DependencyGraph:
    """Merge the partial graphs of every builder (all registered ones by default)."""
    g = DependencyGraph()
    for b in builders if builders is not None else [cls() for cls in BUILDERS.values()]:
        g = g.merge(b.build(snapshot))
    return g
