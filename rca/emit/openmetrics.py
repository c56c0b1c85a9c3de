"""A ``MetricFrame`` as OpenMetrics 1.0 text, the input of ``promtool tsdb create-blocks-from
openmetrics`` (Prometheus 2.42; telemetry reference §5.3 and §5.5).

Families (one ``# TYPE`` line each, written before its samples, never interleaved):

* ``x_total`` (and ``x_created`` next to it)        -> ``# TYPE x counter``
* ``x_bucket{le=..}`` / ``x_sum`` / ``x_count`` / ``x_created`` -> ``# TYPE x histogram``; every
  label set needs an ``le="+Inf"`` bucket, else the series are written as gauges
* everything else, ``*_info`` included              -> ``# TYPE <name> gauge``

When a counter or histogram family name would clash with a gauge of the same name, the
counter/histogram series fall back to gauge families named like their samples.

Layout: families sorted by name, series of a family sorted by label set, each series in time
order; a histogram is written point by point (all buckets, ``_count``, ``_sum`` of one timestamp
together, as OpenMetrics requires). Timestamps are integer unix **seconds**; a NaN sample is
left out (absent, never ``NaN``); values use Go float syntax (``+Inf``, ``-Inf``; integral
values as integers). The file ends with ``# EOF``. Output is streamed family by family.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from os import PathLike
from typing import IO

import numpy as np

from rca.errors import BadInput
from rca.types import MetricFrame, SeriesKey

__all__ = ["Exemplar", "write_openmetrics"]

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_MAX_EXACT_INT = 2.0 ** 53
_EXEMPLAR_MAX_CHARS = 128


@dataclass(frozen=True)
class Exemplar:
    """An exemplar for one counter (``_total``) or histogram (``_bucket``) sample.

    ``labels`` (usually ``{"trace_id": ..}``; names plus values at most 128 characters),
    ``value`` the observed value, ``timestamp`` unix seconds (float) or ``None``.
    """

    labels: Mapping[str, str] = field(default_factory=dict)
    value: float = 0.0
    timestamp: float | None = None


Exemplars = Mapping[SeriesKey, Mapping[int, Exemplar]]
"""Per series, the exemplar attached to the sample at that unix second."""


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def go_float(x: float) -> str:
    """A float in Go ``strconv.ParseFloat`` syntax (``+Inf``, ``-Inf``, ``NaN``, integers bare)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if x.is_integer() and abs(x) < _MAX_EXACT_INT:
        return str(int(x))
    return repr(x)


def _labels_text(labels: Sequence[tuple[str, str]]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels) + "}"


def _le_text(v: str) -> str:
    try:
        f = float(v)
    except ValueError:
        raise BadInput(f"le label {v!r} is not a number", field="le",
                       fix='use numeric bucket bounds and "+Inf"') from None
    return "+Inf" if f == math.inf else v


def _check_key(k: SeriesKey) -> None:
    if not _METRIC_NAME.match(k.name):
        raise BadInput(f"metric name {k.name!r} is not valid in OpenMetrics", field="metric",
                       fix="use [a-zA-Z_:][a-zA-Z0-9_:]*")
    for name, _ in k.labels:
        if not _LABEL_NAME.match(name) or name == "__name__":
            raise BadInput(f"label name {name!r} of {k.name} is not valid", field="labels",
                           fix="use [a-zA-Z_][a-zA-Z0-9_]* and not __name__")


def _families(keys: Sequence[SeriesKey]) -> dict[str, tuple[str, list[int]]]:
    """``{family: (type, row indices)}`` following the module docstring's rules."""
    names = {k.name for k in keys}
    groups: dict[str, dict[tuple, bool]] = defaultdict(dict)  # hist base -> {labels-le: has +Inf}
    for k in keys:
        le = k.label("le")
        if k.name.endswith("_bucket") and le is not None:
            g = groups[k.name[:-7]]
            rest = tuple(p for p in k.labels if p[0] != "le")
            g[rest] = g.get(rest, False) or _le_text(le) == "+Inf"
    hist = {b for b, g in groups.items() if all(g.values())}

    fam: dict[str, tuple[str, list[int]]] = {}
    demoted: list[int] = []
    for i, k in enumerate(keys):
        n = k.name
        base, _, suffix = n.rpartition("_")
        if suffix in ("bucket", "sum", "count", "created") and base in hist and (
                suffix != "bucket" or k.label("le") is not None):
            name, typ = base, "histogram"
        elif (suffix == "total" and base) or (suffix == "created" and base + "_total" in names):
            name, typ = base, "counter"
        else:
            name, typ = n, "gauge"
        if name in fam and fam[name][0] != typ:
            if typ != "gauge":
                demoted.append(i)
                continue
            _, rows = fam.pop(name)
            demoted.extend(rows)
        fam.setdefault(name, (typ, []))[1].append(i)
    for i in demoted:
        fam.setdefault(keys[i].name, ("gauge", []))[1].append(i)
    return fam


def _format_row(prefix: str, row: np.ndarray, tails: list[str]) -> list[str]:
    """One line per sample ("" for NaN), vectorised where numpy can help."""
    nan = np.isnan(row)
    if not np.isinf(row).any():
        r = np.where(nan, 0.0, row)
        if np.all(r == np.rint(r)) and np.all(np.abs(r) < _MAX_EXACT_INT):
            vals = list(map(str, r.astype(np.int64).tolist()))
        else:
            vals = list(map(repr, row.tolist()))
    else:
        vals = [go_float(x) for x in row.tolist()]
    lines = [f"{prefix}{v}{t}" for v, t in zip(vals, tails, strict=True)]
    if nan.any():
        for j in np.flatnonzero(nan).tolist():
            lines[j] = ""
    return lines


def _exemplar_text(ex: Exemplar, where: str) -> str:
    if sum(len(k) + len(str(v)) for k, v in ex.labels.items()) > _EXEMPLAR_MAX_CHARS:
        raise BadInput(f"exemplar labels of {where} exceed 128 characters", field="exemplars",
                       fix="keep only a trace_id label")
    for k in ex.labels:
        if not _LABEL_NAME.match(k):
            raise BadInput(f"exemplar label name {k!r} is not valid", field="exemplars",
                           fix="use [a-zA-Z_][a-zA-Z0-9_]*")
    out = f" # {{{','.join(f'{k}={chr(34)}{_escape(str(v))}{chr(34)}' for k, v in ex.labels.items())}}}"
    out += f" {go_float(float(ex.value))}"
    if ex.timestamp is not None:
        out += f" {ex.timestamp!r}" if isinstance(ex.timestamp, float) else f" {int(ex.timestamp)}"
    return out


class _Writer:
    def __init__(self, frame: MetricFrame, exemplars: Exemplars | None) -> None:
        self.frame = frame
        self.exemplars = exemplars or {}
        self.ts = frame.timestamps.tolist()
        self.tails = [f" {t}\n" for t in self.ts]
        self.col = {t: j for j, t in enumerate(self.ts)}
        self.samples = 0

    def lines(self, i: int, name: str, labels: Sequence[tuple[str, str]]) -> list[str]:
        key = self.frame.keys[i]
        row = self.frame.values[i]
        out = _format_row(name + _labels_text(labels) + " ", row, self.tails)
        self.samples += int(np.count_nonzero(~np.isnan(row)))
        for t, ex in (self.exemplars.get(key) or {}).items():
            j = self.col.get(int(t))
            if j is None or not out[j]:
                continue  # no sample at that time: the exemplar has nothing to ride on
            out[j] = out[j][:-1] + _exemplar_text(ex, str(key)) + "\n"
        return out

    def family(self, name: str, typ: str, rows: list[int]) -> Iterator[str]:
        """The family's text in chunks: one per series, or per label set for a histogram."""
        keys = self.frame.keys
        yield f"# TYPE {name} {typ}\n"
        if typ != "histogram":
            for i in sorted(rows, key=lambda i: (keys[i].labels, keys[i].name)):
                k = keys[i]
                yield "".join(self.lines(i, k.name, k.labels))
            return
        # histogram: one block per label set (minus le), written point by point
        order = {"_bucket": 0, "_count": 1, "_sum": 2, "_created": 3}
        blocks: dict[tuple, list[tuple[tuple[int, float], int]]] = defaultdict(list)
        for i in rows:
            k = keys[i]
            suffix = k.name[len(name):]
            le = k.label("le")
            rest = tuple(p for p in k.labels if p[0] != "le")
            bound = float(le) if le is not None and suffix == "_bucket" else 0.0
            blocks[rest].append(((order[suffix], bound), i))
        for rest in sorted(blocks):
            cols = []
            for _, i in sorted(blocks[rest]):
                k = keys[i]
                labels = [(a, _le_text(b) if a == "le" else b) for a, b in k.labels]
                if k.name.endswith("_bucket"):  # le last, as exporters write it
                    labels = [p for p in labels if p[0] != "le"] + [p for p in labels if p[0] == "le"]
                cols.append(self.lines(i, k.name, labels))
            yield "".join(chain.from_iterable(zip(*cols, strict=True)))


def write_openmetrics(frame: MetricFrame, path: str | PathLike[str] | IO[str],
                      exemplars: Exemplars | None = None) -> int:
    """Write ``frame`` (raw series) as OpenMetrics text to ``path`` (a path or a text stream).

    ``exemplars`` maps a series to ``{unix_second: Exemplar}``; an exemplar rides on the sample
    of that second and is allowed on ``_total`` (counter) and ``_bucket`` (histogram) series
    only. Returns the number of samples written (NaN samples are not written).
    Raises ``BadInput`` for metric/label names OpenMetrics cannot carry.
    """
    for k in frame.keys:
        _check_key(k)
    fams = _families(frame.keys)
    _check_exemplars(frame.keys, fams, exemplars or {})
    w = _Writer(frame, exemplars)
    if isinstance(path, str | PathLike):
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            _write_all(fh, w, fams)
    else:
        _write_all(path, w, fams)
    return w.samples


def _check_exemplars(keys: Sequence[SeriesKey], fams: Mapping[str, tuple[str, list[int]]],
                     exemplars: Exemplars) -> None:
    """Fail before writing anything: exemplars only on counter ``_total`` / histogram ``_bucket``."""
    allowed = {keys[i] for typ, rows in fams.values() for i in rows
               if (typ, keys[i].name.rpartition("_")[2]) in (("counter", "total"), ("histogram", "bucket"))}
    for key, by_time in exemplars.items():
        if key not in allowed:
            raise BadInput(f"exemplar on {key}: only counter _total and histogram _bucket series of the frame "
                           "carry exemplars", field="exemplars", fix="attach it to a _total or _bucket series")
        for ex in by_time.values():
            _exemplar_text(ex, str(key))


def _write_all(fh: IO[str], w: _Writer, fams: Mapping[str, tuple[str, list[int]]]) -> None:
    for name in sorted(fams):
        typ, rows = fams[name]
        for chunk in w.family(name, typ, rows):
            fh.write(chunk)
    fh.write("# EOF\n")
