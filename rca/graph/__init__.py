"""The dependency graph and its builders.

``DependencyGraph`` is a directed graph over ``EntityId`` strings. An edge ``a -> b`` reads
"a depends on b" (a calls b, a runs on b, a uses b, a is served by b): a fault in ``b`` can
explain symptoms in ``a``, never the other way round. Builders (``rca.graph.builders``) make
partial graphs from spans, inventory labels and ``dependency.csv``; partial graphs merge.
"""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx

from rca.types import EntityId

__all__ = ["DependencyGraph"]


class DependencyGraph:
    """Directed "depends on" graph. Edge attributes: ``relation`` (calls, runs_on, uses,
    part_of, member_of) and ``weight`` (call count or 1.0)."""

    def __init__(self, g: nx.DiGraph | None = None) -> None:
        self.g: nx.DiGraph = g if g is not None else nx.DiGraph()

    @classmethod
    def from_edges(cls, edges: Iterable[tuple[EntityId, EntityId, str]]) -> DependencyGraph:
        dg = cls()
        for src, dst, rel in edges:
            dg.add(src, dst, rel)
        return dg

    def add(self, src: EntityId, dst: EntityId, relation: str, weight: float = 1.0) -> None:
        if src == dst:
            return
        if self.g.has_edge(src, dst):
            self.g[src][dst]["weight"] += weight
        else:
            self.g.add_edge(src, dst, relation=relation, weight=weight)

    def add_node(self, node: EntityId) -> None:
        self.g.add_node(node)

    def merge(self, other: DependencyGraph) -> DependencyGraph:
        """A new graph with the nodes and edges of both (weights add up)."""
        out = DependencyGraph(self.g.copy())
        out.g.add_nodes_from(other.g.nodes)
        for a, b, d in other.g.edges(data=True):
            out.add(a, b, d.get("relation", "calls"), d.get("weight", 1.0))
        return out

    @property
    def nodes(self) -> list[EntityId]:
        return sorted(self.g.nodes)

    def edges(self) -> list[tuple[EntityId, EntityId, str]]:
        return sorted((a, b, d.get("relation", "calls")) for a, b, d in self.g.edges(data=True))

    def __len__(self) -> int:
        return self.g.number_of_nodes()

    def __contains__(self, node: object) -> bool:
        return node in self.g

    def dependencies(self, node: EntityId) -> list[EntityId]:
        """What ``node`` depends on (its possible causes, one hop)."""
        return sorted(self.g.successors(node)) if node in self.g else []

    def dependents(self, node: EntityId) -> list[EntityId]:
        """What depends on ``node`` (where its faults show up, one hop)."""
        return sorted(self.g.predecessors(node)) if node in self.g else []

    def path(self, root: EntityId, symptom: EntityId) -> list[EntityId]:
        """Shortest dependency path from ``symptom`` down to ``root``, returned root first
        (``[root, ..., symptom]``); ``[root]`` when there is none."""
        if root == symptom:
            return [root]
        if root in self.g and symptom in self.g:
            try:
                p = nx.shortest_path(self.g, symptom, root)
                return list(reversed(p))
            except nx.NetworkXNoPath:
                pass
        return [root]

    def reaches(self, src: EntityId, dst: EntityId) -> bool:
        """True when ``src`` (transitively) depends on ``dst``."""
        return src in self.g and dst in self.g and nx.has_path(self.g, src, dst)
