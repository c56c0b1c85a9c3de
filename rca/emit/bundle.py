"""Everything ``rca simulate --scenario NAME --out DIR`` writes for one simulation result.

``result`` is taken duck-typed: ``snapshot``, ``truth.root`` / ``truth.category`` /
``truth.onset`` (``root`` and ``onset`` are ``None`` for a no-fault run), ``scenario.name``,
``seed``, ``question``, ``question_time``.

Files (see :data:`README` for what lands in ``DIR/README.txt``)::

    metrics.om        raw series, OpenMetrics 1.0 (promtool backfill input)
    traces.otlp.json  spans, OTLP/JSON ExportTraceServiceRequest
    logs.otlp.json    log records, OTLP/JSON ExportLogsServiceRequest
    logs.jsonl        log records, one JSON object per line
    case/             case folder (metrics.csv of derived signals, label.json, ...)
    README.txt

The case's ``dependency.csv`` holds the inventory's ``calls`` edges plus the structural edges
that connect them to the entities the metric columns are about: group -> member pod
(``member_of`` reversed: a service/model depends on its pods), pod -> node (``runs_on``) and
pod -> GPU (``uses``). Without them the call graph (services, models) and the metric columns
(mostly pods and GPUs) would share no node.
"""

from __future__ import annotations

from datetime import UTC, datetime
from os import PathLike
from pathlib import Path
from typing import Any

from rca.emit.case import write_case
from rca.emit.jsonl import write_jsonl_logs
from rca.emit.openmetrics import write_openmetrics
from rca.emit.otlp_json import log_resource, write_otlp_logs, write_otlp_traces
from rca.types import EntityId, Inventory, Snapshot

__all__ = ["README", "bundle_dependencies", "bundle_log_resources", "write_bundle"]

README = """\
Simulated telemetry: scenario {scenario}, seed {seed}
{window}
Question ({question_time_utc}): {question}
Truth: root {root}, category {category}, onset {onset}

Files
  metrics.om        raw metric series ({n_series} series, {n_samples} samples) in OpenMetrics 1.0 text;
                    timestamps in unix seconds, missing samples absent.
  traces.otlp.json  {n_spans} spans as one OTLP/JSON ExportTraceServiceRequest (hex ids, int64 as strings).
  logs.otlp.json    {n_logs} log records as one OTLP/JSON ExportLogsServiceRequest.
  logs.jsonl        the same log records, one JSON object per line (ts, ts_ns, entity, severity, body,
                    trace_id, span_id, attributes).
  case/             case folder (data README format): metrics.csv = derived signals
                    (<entity token>_<metric> columns), inject_time.txt, label.json, logs.csv,
                    traces.csv, dependency.csv (calls edges + group->pod, pod->node, pod->gpu).

Backfill the metrics into Prometheus (2.42):
  promtool tsdb create-blocks-from openmetrics metrics.om ./blocks
  # stop Prometheus (or let it reload blocks), move ./blocks/* into its --storage.tsdb.path, and
  # run it with --storage.tsdb.retention.time covering {start_utc} (e.g. 3650d), or the
  # blocks are deleted as too old.

Send traces / logs to an OTLP/HTTP receiver (port 4318):
  curl -sS -H 'Content-Type: application/json' --data-binary @traces.otlp.json http://127.0.0.1:4318/v1/traces
  curl -sS -H 'Content-Type: application/json' --data-binary @logs.otlp.json http://127.0.0.1:4318/v1/logs
  (receivers usually cap a request at 64 MiB; split larger files per resource.)

Read the case folder back:
  python -c 'from connectors.files import read_case; c = read_case("case"); print(c.label, c.inject_time)'
"""


def _utc(t: int | None) -> str:
    return "-" if t is None else datetime.fromtimestamp(int(t), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def bundle_dependencies(inv: Inventory) -> list[tuple[EntityId, EntityId]]:
    """``(depends, dependency)`` pairs: ``calls`` edges, group -> member pod, pod -> node, pod -> GPU."""
    out: list[tuple[EntityId, EntityId]] = []
    for r in inv.relations:
        if r.relation in ("calls", "runs_on", "uses"):
            out.append((r.src, r.dst))
        elif r.relation == "member_of" and r.src.startswith("pod:"):
            out.append((r.dst, r.src))
    return list(dict.fromkeys(out))


def bundle_log_resources(snapshot: Snapshot) -> dict[EntityId, dict[str, Any]]:
    """Per pod entity the resource its spans carry (so logs and traces of a pod share one
    resource); for other log entities the default of ``rca.emit.otlp_json.log_resource``."""
    out: dict[EntityId, dict[str, Any]] = {}
    for s in snapshot.spans:
        pod = s.resource.get("k8s.pod.name")
        if pod and f"pod:{pod}" not in out:
            out[f"pod:{pod}"] = {"service.name": s.service, **s.resource}
    for r in snapshot.logs:
        if r.entity not in out:
            out[r.entity] = log_resource(r)
    return out


def write_bundle(result: Any, out_dir: str | PathLike[str]) -> dict[str, Path]:
    """Write the bundle of one simulation ``result`` into ``out_dir``; returns ``{name: path}``
    (``metrics``, ``traces``, ``logs_otlp``, ``logs_jsonl``, ``case``, ``readme``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    snap: Snapshot = result.snapshot
    truth = result.truth
    paths = {"metrics": out / "metrics.om", "traces": out / "traces.otlp.json",
             "logs_otlp": out / "logs.otlp.json", "logs_jsonl": out / "logs.jsonl", "case": out / "case",
             "readme": out / "README.txt"}
    n_samples = write_openmetrics(snap.metrics, paths["metrics"])
    n_spans = write_otlp_traces(snap.spans, paths["traces"])
    n_logs = write_otlp_logs(snap.logs, paths["logs_otlp"], resources=bundle_log_resources(snap))
    write_jsonl_logs(snap.logs, paths["logs_jsonl"])

    root = getattr(truth, "root", None)
    onset = getattr(truth, "onset", None)
    inject = int(onset) if root is not None and onset is not None else int(result.question_time)
    label = {"root_cause_service": root, "fault": getattr(truth, "category", None),
             "scenario": result.scenario.name, "seed": int(result.seed), "question": result.question,
             "question_time": int(result.question_time)}
    write_case(paths["case"], snap, inject, label, bundle_dependencies(snap.inventory))

    w = snap.window
    paths["readme"].write_text(README.format(
        scenario=result.scenario.name, seed=result.seed,
        window=f"Window {_utc(w.start)} .. {_utc(w.end)} (unix {w.start}..{w.end}, step {w.step} s)",
        question_time_utc=_utc(result.question_time), question=result.question, root=root,
        category=getattr(truth, "category", None), onset=_utc(onset), n_series=len(snap.metrics),
        n_samples=n_samples, n_spans=n_spans, n_logs=n_logs, start_utc=_utc(w.start)))
    return paths
