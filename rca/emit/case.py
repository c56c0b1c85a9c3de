"""A ``Snapshot`` as a case folder (the RCAEval-compatible format of the data README), readable
by ``connectors.files.read_case``.

* ``metrics.csv``: the **derived** signals (``rca.signals.derive``) pivoted wide: ``time`` then one
  column ``<service>_<metric>`` per derived row. ``<service>`` is the row's entity as a token
  without underscores (:func:`entity_token`); ``<metric>`` is the metric name (``:`` -> ``_``,
  ``_total`` dropped) + the stat (``p99``, ``rate``, ``error_ratio``, ``ratio_<label>_<value>``;
  none for a gauge's ``value``) + ``<label>_<value>`` for each label that tells rows of the same
  entity, metric and stat apart. Values with 6 significant digits, a missing value empty.
  ``*_info`` change events have no column (the format cannot carry them).
* ``inject_time.txt``, ``label.json`` (root causes given as entity ids become tokens).
* ``logs.csv`` (``timestamp`` ns, ``service`` = entity token, ``level``, ``message``, ``traceID``,
  ``spanID``), ``traces.csv`` (µs; ``serviceName`` = token of the span's service entity, ``pod``),
  ``dependency.csv`` (``caller, callee`` tokens), each only when there is something to write.

Two entities with the same token (``service:x`` and ``db:x``) are told apart by prefixing
their kind (``service-x``, ``db-x``).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rca.entities import aliases_from_inventory
from rca.errors import BadInput
from rca.signals import derive
from rca.types import EntityId, SeriesKey, Snapshot, entity_kind, entity_name

__all__ = ["entity_token", "metric_columns", "token_map", "write_case"]

_NOT_TOKEN = re.compile(r"[^A-Za-z0-9.\-]+")
_NOT_METRIC = re.compile(r"[^A-Za-z0-9]+")
_STATUS = {"unset": "0", "ok": "1", "error": "2"}


def entity_token(eid: EntityId) -> str:
    """``pod:vllm-llama-3-70b-1`` -> ``vllm-llama-3-70b-1``; ``gpu:gpu-node-2/3`` ->
    ``gpu-node-2-gpu3``; ``db:vector-db`` -> ``vector-db``; ``_`` and other odd characters -> ``-``."""
    kind, name = entity_kind(eid), entity_name(eid)
    if kind == "gpu" and "/" in name:
        host, _, idx = name.rpartition("/")
        name = f"{host}-gpu{idx}"
    return _NOT_TOKEN.sub("-", name).strip("-") or "unknown"


def token_map(entities: Iterable[EntityId]) -> dict[EntityId, str]:
    """Token per entity, unique: colliding tokens get their kind as prefix."""
    by_token: dict[str, list[EntityId]] = defaultdict(list)
    for e in dict.fromkeys(entities):
        by_token[entity_token(e)].append(e)
    out: dict[EntityId, str] = {}
    for tok, ents in by_token.items():
        for e in ents:
            out[e] = tok if len(ents) == 1 else f"{_NOT_TOKEN.sub('-', entity_kind(e))}-{tok}"
    return out


def _clean(s: str) -> str:
    return _NOT_METRIC.sub("_", s).strip("_")


def _stat_token(stat: str) -> str:
    return "" if stat == "value" else _clean(stat.replace(":", "_").replace("=", "_"))


def metric_columns(keys: Sequence[SeriesKey], tokens: Sequence[str]) -> list[str]:
    """Column names ``<token>_<metric>`` for derived rows (see the module docstring); unique."""
    groups: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for i, (k, tok) in enumerate(zip(keys, tokens, strict=True)):
        groups[(tok, k.name, k.label("stat", "value") or "value")].append(i)
    cols = [""] * len(keys)
    for (tok, name, stat), rows in groups.items():
        base = _clean(name.removesuffix("_total") if name.endswith("_total") else name) or "value"
        labels = [dict(keys[i].labels) for i in rows]
        names = sorted({n for d in labels for n in d if n != "stat"})
        varying = [n for n in names if len({d.get(n) for d in labels}) > 1]
        for i, d in zip(rows, labels, strict=True):
            parts = [base, _stat_token(stat)] + [f"{n}_{d.get(n, '')}" for n in varying]
            cols[i] = f"{tok}_{_clean('_'.join(p for p in parts if p))}"
    seen: dict[str, int] = {}
    for i, c in enumerate(cols):
        n = seen.get(c, 0)
        seen[c] = n + 1
        if n:
            while f"{c}_{n + 1}" in seen:
                n += 1
            cols[i] = f"{c}_{n + 1}"
            seen[cols[i]] = 1
    return cols


def _root_tokens(label: Mapping[str, Any], tokens: Mapping[EntityId, str]) -> dict[str, Any]:
    """The label with entity ids turned into tokens; the README keys first, then the rest."""
    rest = dict(label)
    out: dict[str, Any] = {"root_cause_service": rest.pop("root_cause_service", None),
                           "fault": rest.pop("fault", None),
                           "root_cause_metric": rest.pop("root_cause_metric", None),
                           "source": rest.pop("source", "rca-sim")}
    root = out["root_cause_service"]
    if root is not None and ":" in str(root):
        out["root_cause_service"] = tokens[root]
        out["root_cause_entity"] = root
    roots = rest.pop("root_cause_services", None)
    if roots:
        out["root_cause_services"] = [tokens[r] if ":" in str(r) else r for r in roots]
        out["root_cause_entities"] = [r for r in roots if ":" in str(r)]
    out.update(rest)
    return out


def write_case(dir: str | PathLike[str], snapshot: Snapshot, inject_time: int, label: Mapping[str, Any],
               dependency: Iterable[tuple[EntityId, EntityId]] | None = None) -> dict[str, Path]:
    """Write ``snapshot`` as a case folder in ``dir`` (created if needed); returns the files.

    ``label`` holds ``root_cause_service`` (an entity id, turned into its token; ``None`` for
    a no-fault case), ``fault`` and any extra keys, copied as they are (they must be JSON
    values). ``dependency`` holds ``(caller, callee)`` entity pairs ("caller depends on callee").
    """
    out = Path(dir)
    out.mkdir(parents=True, exist_ok=True)
    inv = snapshot.inventory
    aliases = aliases_from_inventory(inv)
    sig = derive(snapshot.metrics, aliases)
    deps = [(a, b) for a, b in dependency or () if a != b]
    span_ents = [aliases.get(s.service, f"service:{s.service}") for s in snapshot.spans]
    span_pods = {str(s.resource.get("k8s.pod.name")) for s in snapshot.spans if s.resource.get("k8s.pod.name")}
    roots = [label.get("root_cause_service"), *(label.get("root_cause_services") or ())]
    tokens = token_map([*sig.entities, *(r for r in roots if r and ":" in str(r)),
                        *(e for ab in deps for e in ab), *(r.entity for r in snapshot.logs),
                        *span_ents, *(f"pod:{p}" for p in sorted(span_pods))])
    files: dict[str, Path] = {}

    cols = metric_columns(sig.frame.keys, [tokens[e] for e in sig.entities])
    df = pd.DataFrame(sig.frame.values.T, columns=cols)
    df.insert(0, "time", sig.frame.timestamps.astype(np.int64))
    files["metrics"] = out / "metrics.csv"
    df.to_csv(files["metrics"], index=False, float_format="%.6g", na_rep="")

    files["inject_time"] = out / "inject_time.txt"
    files["inject_time"].write_text(f"{int(inject_time)}\n")
    files["label"] = out / "label.json"
    try:
        text = json.dumps(_root_tokens(label, tokens), indent=2, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise BadInput(f"label is not JSON: {e}", field="label", fix="use str, int, float, bool, None, lists, dicts") from None
    files["label"].write_text(text + "\n")

    if snapshot.logs:
        files["logs"] = out / "logs.csv"
        pd.DataFrame({
            "timestamp": [int(r.ts_ns) for r in snapshot.logs],
            "service": [tokens[r.entity] for r in snapshot.logs],
            "level": [r.severity for r in snapshot.logs],
            "message": [r.body for r in snapshot.logs],
            "traceID": [r.trace_id or "" for r in snapshot.logs],
            "spanID": [r.span_id or "" for r in snapshot.logs],
        }).to_csv(files["logs"], index=False)
    if snapshot.spans:
        files["traces"] = out / "traces.csv"
        sp = snapshot.spans
        pods = [str(s.resource.get("k8s.pod.name") or "") for s in sp]
        pd.DataFrame({
            "traceID": [s.trace_id for s in sp],
            "spanID": [s.span_id for s in sp],
            "parentSpanID": [s.parent or "" for s in sp],
            "serviceName": [tokens[e] for e in span_ents],
            "operationName": [s.name for s in sp],
            "startTime": [int(s.start_ns) // 1000 for s in sp],
            "duration": [(int(s.end_ns) - int(s.start_ns)) // 1000 for s in sp],
            "statusCode": [_STATUS.get(s.status, "") for s in sp],
            "pod": [tokens[f"pod:{p}"] if p else "" for p in pods],
        }).to_csv(files["traces"], index=False)
    if deps:
        files["dependency"] = out / "dependency.csv"
        pairs = list(dict.fromkeys((tokens[a], tokens[b]) for a, b in deps))
        pd.DataFrame(pairs, columns=["caller", "callee"]).to_csv(files["dependency"], index=False)
    return files
