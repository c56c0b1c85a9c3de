"""Telemetry emitters: engine types -> the files real tools read.

* :func:`write_openmetrics` — a ``MetricFrame`` as OpenMetrics 1.0 text (``promtool tsdb
  create-blocks-from openmetrics`` input);
* :func:`write_otlp_traces` / :func:`write_otlp_logs` — OTLP/JSON export requests, and the
  readers :func:`read_otlp_traces` / :func:`read_otlp_logs`;
* :func:`write_jsonl_logs` — log records as JSON Lines;
* :func:`write_case` — a ``Snapshot`` as a case folder (``connectors.files.read_case`` reads it);
* :func:`write_bundle` — all of the above for one simulation result (``rca simulate --out``).
"""

from rca.emit.bundle import write_bundle
from rca.emit.case import entity_token, write_case
from rca.emit.jsonl import write_jsonl_logs
from rca.emit.openmetrics import Exemplar, write_openmetrics
from rca.emit.otlp_json import (
    logs_to_otlp,
    read_otlp_logs,
    read_otlp_traces,
    spans_to_otlp,
    write_otlp_logs,
    write_otlp_traces,
)

__all__ = [
    "Exemplar",
    "entity_token",
    "logs_to_otlp",
    "read_otlp_logs",
    "read_otlp_traces",
    "spans_to_otlp",
    "write_bundle",
    "write_case",
    "write_jsonl_logs",
    "write_openmetrics",
    "write_otlp_logs",
    "write_otlp_traces",
]
