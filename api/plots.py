"""PNG plots of evidence series (``GET /v1/incidents/{id}/evidence/{n}/plot.png``).

``render_png(series)`` draws one ``rca.evidence_data.EvidenceSeries``: the series (NaN gaps stay
gaps), the baseline band (median ± IQR of the baseline window, shaded over the baseline and
lightly across the incident), the incident window, the onset, a UTC time axis. An empty or
all-NaN series still gives a valid PNG that says "no data".

Safe under a threaded web server: a ``matplotlib.figure.Figure`` on its own ``FigureCanvasAgg``,
never pyplot (no global figure registry, no GUI backend, no ``matplotlib.use``). That is not
enough on its own: matplotlib is not thread-safe (its mathtext parser, used by log-axis tick
labels, shares parser state and fails under concurrent renders), so renders take one process-wide
lock (~0.1 s each), and user text is drawn with ``parse_math=False`` (a ``$`` in a log template
is text, not TeX). matplotlib is imported on first use so ``import api`` stays light.
"""

from __future__ import annotations

import io
import math
import threading
import warnings
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from rca.evidence_data import EvidenceSeries

__all__ = ["DPI", "HEIGHT_RANGE", "LOG_RATIO", "WIDTH_RANGE", "render_png"]

DPI = 100
WIDTH_RANGE = (300, 2400)
HEIGHT_RANGE = (160, 1200)
LOG_RATIO = 100.0
_LOCK = threading.Lock()
_LINE, _BAND, _INCIDENT, _ONSET = "#1f77b4", "#2ca02c", "#d62728", "#9467bd"


def _clamp(v: int, lo_hi: tuple[int, int], default: int) -> int:
    try:
        v = int(v)
    except (TypeError, ValueError, OverflowError):
        v = default
    return max(lo_hi[0], min(lo_hi[1], v))


def _fmt(v: float | None, unit: str) -> str:
    if v is None or not math.isfinite(v):
        return "n/a"
    return f"{v:.3g}" + (f" {unit}" if unit else "")


def _wants_log(finite_vals: np.ndarray, baseline_vals: np.ndarray) -> bool:
    """Log y when every value is positive and the series spans >= 2 decades beyond its baseline:
    otherwise a 0.3 s -> 275 s jump flattens the whole baseline (and its band) onto the axis."""
    if not len(finite_vals) or not len(baseline_vals) or finite_vals.min() <= 0:
        return False
    return float(finite_vals.max()) >= LOG_RATIO * float(np.median(baseline_vals))


def render_png(s: EvidenceSeries, *, width_px: int = 900, height_px: int = 320) -> bytes:
    """``s`` as a PNG of ``width_px`` x ``height_px`` pixels (clamped to :data:`WIDTH_RANGE` and
    :data:`HEIGHT_RANGE`)."""
    with _LOCK, np.errstate(divide="ignore", invalid="ignore"):
        return _render(s, width_px, height_px)


def _render(s: EvidenceSeries, width_px: int, height_px: int) -> bytes:
    from matplotlib import dates as mdates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter

    def d(t):  # unix seconds (scalar or array) -> matplotlib date numbers, whatever rcParams' epoch
        return mdates.date2num(np.asarray(t, dtype=np.int64).astype("datetime64[s]"))

    w = _clamp(width_px, WIDTH_RANGE, 900)
    h = _clamp(height_px, HEIGHT_RANGE, 320)
    fig = Figure(figsize=(w / DPI, h / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    compact = w < 600 or h < 240  # no legend or value box: they would cover the series
    small = 7 if compact else 8
    room = max(20, int((w - 30) / (0.62 * (small + 1) * DPI / 72)))  # title characters that fit
    ax.set_title(s.title if len(s.title) <= room else s.title[: room - 1] + "…", fontsize=small + 1,
                 loc="left", parse_math=False)
    ax.set_ylabel(s.unit or "value", fontsize=small, parse_math=False)
    ax.tick_params(labelsize=small)
    ax.grid(True, alpha=0.25, linewidth=0.6)
    ax.margins(x=0, y=0.05 if compact else 0.16)  # headroom for the legend and the value box

    ts = np.asarray(s.timestamps, dtype=np.int64)
    vals = np.asarray(s.values, dtype=np.float64)
    finite = np.isfinite(vals)
    b0, b1 = s.baseline
    i0, i1 = s.incident
    lo = min([b0, i0] + ([int(ts[0])] if len(ts) else []))
    hi = max([b1, i1] + ([int(ts[-1])] if len(ts) else []))
    hi = hi if hi > lo else lo + 60
    ax.set_xlim(d(lo), d(hi))
    ax.axvspan(d(i0), d(i1), color=_INCIDENT, alpha=0.08, linewidth=0, label="incident window")

    if not finite.any():
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center",
                fontsize=small + 6, color="0.4")
        ax.set_yticks([])
    else:
        in_b = (ts >= b0) & (ts <= b1) & finite
        log_y = _wants_log(vals[finite], vals[in_b])
        if log_y:
            ax.set_yscale("log")
            ax.set_ylabel(f"{s.unit or 'value'} (log scale)", fontsize=small, parse_math=False)
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))  # plain text, no mathtext
            ax.yaxis.set_minor_formatter(NullFormatter())
        x = d(ts)
        ax.plot(x, vals, color=_LINE, linewidth=1.1, label="series", zorder=3)
        if in_b.any():  # drawn after the series, so the y range is never degenerate while it is added
            q25, med, q75 = np.percentile(vals[in_b], [25, 50, 75])
            iqr = max(q75 - q25, 0.0)
            band = (max(med - iqr, med / 2) if log_y else med - iqr, med + iqr)
            ax.fill_between([d(b0), d(b1)], *band, color=_BAND, alpha=0.22, linewidth=0,
                            label="baseline (median ± IQR)")
            ax.fill_between([d(b1), d(max(i1, b1))], *band, color=_BAND, alpha=0.09, linewidth=0)
            ax.hlines(med, d(b0), d(max(i1, b1)), colors=_BAND, linestyles="dashed", linewidth=0.8)
        # a sample between two gaps draws no line segment: mark it so it is not lost
        lone = finite & ~np.concatenate([[False], finite[:-1]]) & ~np.concatenate([finite[1:], [False]])
        if lone.any():
            ax.plot(x[lone], vals[lone], linestyle="none", marker="o", markersize=2.5, color=_LINE,
                    zorder=3)
        if not compact and s.observed_value is not None and math.isfinite(s.observed_value):
            text = f"baseline {_fmt(s.baseline_value, s.unit)} → observed {_fmt(s.observed_value, s.unit)}"
            ax.annotate(text, xy=(0.995, 0.97), xycoords="axes fraction", ha="right", va="top",
                        fontsize=small, color="0.25", parse_math=False,
                        bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "0.8", "alpha": 0.85})
    if s.onset is not None:
        xo = d(s.onset)
        ax.axvline(xo, color=_ONSET, linewidth=1.2, linestyle="-", label="onset")
        ax.annotate(f"onset {datetime.fromtimestamp(s.onset, UTC):%H:%M:%S}Z", xy=(xo, 0.02),
                    xycoords=("data", "axes fraction"), xytext=(3, 0), textcoords="offset points",
                    ha="left", va="bottom", fontsize=small, color=_ONSET, rotation=90)

    span_s = hi - lo
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(tz=UTC, minticks=3, maxticks=max(3, w // 110)))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M" if span_s >= 300 else "%H:%M:%S", tz=UTC))
    ax.set_xlabel(f"UTC, {datetime.fromtimestamp(lo, UTC):%Y-%m-%d}", fontsize=small)
    if finite.any() and not compact:
        ax.legend(loc="upper left", fontsize=small - 1, frameon=True, framealpha=0.8, edgecolor="none",
                  ncol=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # tight_layout on a tiny canvas: best effort
        fig.tight_layout(pad=0.4)
    buf = io.BytesIO()
    fig.canvas.print_png(buf)  # type: ignore[attr-defined]
    return buf.getvalue()
