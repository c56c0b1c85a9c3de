"""Log template mining: Drain3 with one masking configuration for every log type.

``LogTemplateMiner().fit(lines)`` groups messages into templates; ``transform`` maps new lines
onto the learned templates without changing them. Pipeline per message:

1. mask parameters (``models.log_masking``: URLs, UUIDs, timestamps, IPs with ports, paths,
   hex, sizes/durations with units, ``key=value`` values, booleans, numbers and any token that
   carries a digit), applied before Drain3 (its own masker is left empty);
2. Drain3's fixed-depth prefix tree with similarity threshold ``sim_th`` (configured in code via
   ``TemplateMinerConfig``: no .ini file, no persistence, no pickling);
3. a generic post-merge: clusters that are equal except at one word position taking many
   values (``OPEN_SLOT_MIN_VALUES``) get ``<*>`` there, and clusters whose printed templates
   are equal (adjacent ``<*>`` collapsed) are one template.

Choices (one configuration for every log type, measured with ``rca bench logs``): masking
catches nearly every parameter that has a digit or a known shape, so what is left is mostly
words, and words that differ are mostly different events; hence a strict ``sim_th=0.8``
(Drain's default is 0.4) and, as a safety net for word parameters (user names), the
open-slot merge. A ``<*>`` is always a token of its own, so ``[<*>]`` does not count as a
literal token in Drain's similarity.

Template ids are a short hash of the template text (``template_id``), so the same template
has the same id in every window and every process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from drain3 import TemplateMiner
from drain3.template_miner_config import TemplateMinerConfig

from models.log_masking import MASK, glue, mask, normalise_template, render, tokens

__all__ = ["LogTemplateMiner", "MinedTemplate", "mine_templates", "template_id"]


def template_id(template: str) -> str:
    """Stable short id of a template text: ``T`` + 10 hex chars of its blake2b hash."""
    return "T" + hashlib.blake2b(template.encode("utf-8"), digest_size=5).hexdigest()


@dataclass(frozen=True)
class MinedTemplate:
    """One learned template: its text and how many fitted lines it covers."""

    id: str
    template: str
    count: int


def _config(sim_th: float, depth: int, max_children: int) -> TemplateMinerConfig:
    cfg = TemplateMinerConfig()
    cfg.profiling_enabled = False
    cfg.drain_sim_th = sim_th
    cfg.drain_depth = depth
    cfg.drain_max_children = max_children
    cfg.parametrize_numeric_tokens = True
    cfg.mask_prefix, cfg.mask_suffix = "<", ">"
    cfg.masking_instructions = []  # masking is ours (models.log_masking), done before Drain
    return cfg


OPEN_SLOT_MIN_VALUES = 5


def _open_slot_buckets(toks: dict[int, tuple[str, ...]]) -> dict[tuple, list[int]]:
    """Clusters that are equal except at one literal position: ``(len, pos, rest) -> [ids]``."""
    buckets: dict[tuple, list[int]] = {}
    for cid, t in toks.items():
        for j, tok in enumerate(t):
            if tok != MASK:
                buckets.setdefault((len(t), j, t[:j] + t[j + 1:]), []).append(cid)
    return {k: v for k, v in buckets.items() if len(v) > 1}


def _merge_open_slots(toks: dict[int, tuple[str, ...]]) -> dict[int, tuple[str, ...]]:
    """Generalise a position to ``<*>`` where >= ``OPEN_SLOT_MIN_VALUES`` clusters differ only there.

    A word slot that takes many values while >= 2 other literal words stay fixed is a
    parameter Drain could not see at a strict ``sim_th`` (user names, service names); a slot
    with a few values (``VM Started`` / ``VM Paused``) stays literal: those are different events.
    """
    out = dict(toks)
    for (_, j, _), ids in sorted(_open_slot_buckets(toks).items(), key=lambda kv: -len(kv[1])):
        if any(out[c] != toks[c] for c in ids):
            continue  # already generalised through another position
        literal_rest = sum(tok != MASK for tok in toks[ids[0]]) - 1
        if literal_rest >= 2 and len(ids) >= OPEN_SLOT_MIN_VALUES:
            for c in ids:
                out[c] = toks[c][:j] + (MASK,) + toks[c][j + 1:]
    return out


class LogTemplateMiner:
    """Drain3 template miner with generic masking and post-merging.

    ``sim_th``: Drain similarity threshold (share of equal non-parameter tokens needed to join a
    cluster); ``depth``: Drain tree depth (root and length layers included); ``max_children``:
    fan-out of a tree node; ``merge``: apply the open-slot post-merge of step 3.
    """

    def __init__(self, sim_th: float = 0.8, depth: int = 4, max_children: int = 100, merge: bool = True) -> None:
        self.sim_th = sim_th
        self.depth = depth
        self.max_children = max_children
        self.merge = merge

    def get_params(self) -> dict[str, Any]:
        return {"sim_th": self.sim_th, "depth": self.depth, "max_children": self.max_children,
                "merge": self.merge}

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, lines: Sequence[str]) -> LogTemplateMiner:
        """Learn templates from ``lines`` (message text, header already stripped)."""
        miner = TemplateMiner(config=_config(self.sim_th, self.depth, self.max_children))
        first: dict[str, int] = {}
        by_masked: dict[str, int] = {}
        spacing: dict[int, tuple[bool, ...]] = {}
        for line in lines:
            if line not in first:
                masked = mask(str(line))
                m = " ".join(tokens(masked))
                cid = by_masked.get(m)
                if cid is None:
                    cid = by_masked[m] = miner.add_log_message(m)["cluster_id"]
                    spacing.setdefault(cid, glue(masked))
                first[line] = cid
        toks = {c.cluster_id: tuple(c.log_template_tokens) for c in miner.drain.clusters}
        if self.merge:
            toks = _merge_open_slots(toks)
        final = {cid: render(t, spacing[cid]) for cid, t in toks.items()}
        self.miner_ = miner
        self.cluster_template_ = final
        self.line_template_ = {line: final[cid] for line, cid in first.items()}
        counts: dict[str, int] = {}
        for line in lines:
            t = self.line_template_[line]
            counts[t] = counts.get(t, 0) + 1
        self.templates_ = {template_id(t): MinedTemplate(template_id(t), t, n) for t, n in counts.items()}
        self.labels_ = [self.line_template_[line] for line in lines]
        return self

    # -- mapping -----------------------------------------------------------------------------
    def transform(self, lines: Sequence[str]) -> list[str]:
        """Template text per line; a line no learned template covers gets its own masked text."""
        known = self.line_template_
        cache: dict[str, str] = {}
        out = []
        for line in lines:
            t = known.get(line)
            if t is None:
                t = cache.get(line)
                if t is None:
                    t = cache[line] = self._match(str(line))
            out.append(t)
        return out

    def _match(self, line: str) -> str:
        masked = " ".join(tokens(mask(line)))
        cluster = self.miner_.match(masked, full_search_strategy="fallback")
        if cluster is not None:
            return self.cluster_template_[cluster.cluster_id]
        return normalise_template(masked)

    def fit_transform(self, lines: Sequence[str]) -> list[str]:
        return list(self.fit(lines).labels_)

    def transform_ids(self, lines: Sequence[str]) -> list[str]:
        """``template_id`` per line (stable across windows)."""
        return [template_id(t) for t in self.transform(lines)]


def mine_templates(lines: Sequence[str]) -> list[str]:
    """Template text per line with the default configuration (fit and map in one go)."""
    return LogTemplateMiner().fit_transform(lines)
