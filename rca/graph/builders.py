"""Graph builders (``rca.protocols.GraphBuilder``): partial graphs that merge.

* ``SpanGraphBuilder``      calls seen in traces: a child span in another entity than its
                            parent is a call parent-entity -> child-entity (weight = count).
* ``InventoryGraphBuilder`` relations from labels and configuration (``snapshot.inventory``):
                            ``calls``, ``runs_on``, ``uses``, ``part_of`` keep their direction;
                            ``member_of`` (pod of a group) becomes group -> pod, since a
                            group's health is its members'.
"""

from __future__ import annotations

from rca.entities import aliases_from_inventory, span_entities
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
        ent = {s.span_id: members.get(e, e)
               for s, e in zip(snapshot.spans, span_entities(snapshot, aliases), strict=True)}
        # nodes in the order they first appear, calls counted per (caller, callee) in the order
        # they first appear: the same graph as adding a node and a call per span
        added: set[str] = set()
        calls: dict[tuple[str, str], int] = {}
        for s in snapshot.spans:
            e = ent[s.span_id]
            if e not in added:
                g.add_node(e)
                added.add(e)
            if s.parent and s.parent in ent and ent[s.parent] != e:
                pe = ent[s.parent]
                if pe not in added:
                    g.add_node(pe)
                    added.add(pe)
                calls[(pe, e)] = calls.get((pe, e), 0) + 1
        for (pe, e), n in calls.items():
            g.add(pe, e, "calls", float(n))
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
