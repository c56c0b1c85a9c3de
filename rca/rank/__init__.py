"""Rankers (``rca.protocols.Ranker``): ``rank(context) -> list[Hypothesis]``."""

from rca.rank.graph_ranker import GraphRanker

RANKERS = {"graph": GraphRanker}

__all__ = ["RANKERS", "GraphRanker"]
