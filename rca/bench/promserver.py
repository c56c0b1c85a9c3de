"""Start and stop a local Prometheus 2.42 or VictoriaMetrics 1.79 holding a ``MetricFrame``.

Used by the connector benchmark (``rca.bench.connectors_bench``) and the integration tests
(``tests/promservers.py``). Everything listens on 127.0.0.1 on a free port and is killed by
``RunningServer.stop`` (also on ``with`` exit).

* Prometheus: the frame is written as OpenMetrics (``rca.emit.write_openmetrics``), backfilled
  with ``promtool tsdb create-blocks-from openmetrics`` into the data directory, and the server
  starts on it with a config that scrapes nothing and a 100 y retention (telemetry §5.5).
* VictoriaMetrics: the server starts empty (``-retentionPeriod=100y``,
  ``-search.latencyOffset=0s``); the frame is imported through ``/api/v1/import/prometheus``
  (text exposition with **millisecond** timestamps; it carries ``±Inf`` and colon names, which
  the JSON-lines import does not) and made searchable with ``/internal/force_flush``.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from rca.emit import write_openmetrics
from rca.errors import SourceError
from rca.types import MetricFrame

__all__ = ["BINARIES", "RunningServer", "backfill_prometheus", "find_binary", "free_port",
           "cleanup", "import_victoriametrics", "start_prometheus", "start_victoriametrics", "stop_process"]

BINARIES = {"prometheus": "prometheus", "promtool": "promtool", "victoriametrics": "victoria-metrics"}
_PROM_CONFIG = "global:\n  scrape_interval: 1m\n  evaluation_interval: 1m\nscrape_configs: []\n"


def find_binary(kind: str) -> str | None:
    """Path of ``prometheus`` / ``promtool`` / ``victoriametrics`` (PATH, then /usr/bin)."""
    exe = BINARIES[kind]
    found = shutil.which(exe)
    if found:
        return found
    candidate = Path("/usr/bin") / exe
    return str(candidate) if candidate.exists() else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    """A started server: ``kind`` (``prometheus`` | ``victoriametrics``), base ``url``."""

    kind: str
    url: str
    proc: subprocess.Popen
    data_dir: Path
    log_path: Path
    timings: dict[str, float] = field(default_factory=dict)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Terminate (then kill) the process; safe to call twice."""
        stop_process(self.proc, timeout_s)

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _need(kind: str) -> str:
    exe = find_binary(kind)
    if exe is None:
        raise FileNotFoundError(f"{BINARIES[kind]} is not installed (Debian: apt-get install "
                                f"{'victoria-metrics' if kind == 'victoriametrics' else 'prometheus'})")
    return exe


def backfill_prometheus(frame: MetricFrame, data_dir: Path, promtool: str | None = None,
                        timeout_s: float = 600.0) -> dict[str, float]:
    """Write ``frame`` as OpenMetrics and backfill it into ``data_dir`` (blocks land there
    directly). Returns timings ``{"write_s", "promtool_s", "openmetrics_mb"}``; the text file
    is deleted afterwards."""
    data_dir.mkdir(parents=True, exist_ok=True)
    om = data_dir.parent / f"{data_dir.name}.om"
    t0 = time.perf_counter()
    write_openmetrics(frame, om)
    t1 = time.perf_counter()
    size = om.stat().st_size / 1e6
    try:
        r = subprocess.run([promtool or _need("promtool"), "tsdb", "create-blocks-from", "openmetrics",
                            "-q", str(om), str(data_dir)], capture_output=True, text=True, timeout=timeout_s)
    finally:
        om.unlink(missing_ok=True)
    if r.returncode != 0:
        raise RuntimeError(f"promtool backfill failed: {r.stderr.strip() or r.stdout.strip()}")
    return {"write_s": t1 - t0, "promtool_s": time.perf_counter() - t1, "openmetrics_mb": size}


def _wait_ready(server: RunningServer, path: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last = ""
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise RuntimeError(f"{server.kind} exited with {server.proc.returncode}:\n{server.log_tail()}")
            try:
                r = client.get(server.url + path)
                if r.status_code == 200:
                    return
                last = f"HTTP {r.status_code}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{server.kind} not ready after {timeout_s:.0f} s ({last}):\n{server.log_tail()}")


def _spawn(kind: str, args: Sequence[str], url: str, data_dir: Path) -> RunningServer:
    log = data_dir.parent / f"{data_dir.name}.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(list(args), stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return RunningServer(kind, url, proc, data_dir, log)


def start_prometheus(data_dir: Path, *, binary: str | None = None, timeout_s: float = 60.0,
                     extra_args: Sequence[str] = ()) -> RunningServer:
    """Start Prometheus on ``data_dir`` (backfill it first), scraping nothing, on a free port."""
    data_dir.mkdir(parents=True, exist_ok=True)
    cfg = data_dir.parent / f"{data_dir.name}.yml"
    cfg.write_text(_PROM_CONFIG)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = _spawn("prometheus", [binary or _need("prometheus"), f"--config.file={cfg}",
                                   f"--storage.tsdb.path={data_dir}", f"--web.listen-address=127.0.0.1:{port}",
                                   "--storage.tsdb.retention.time=100y", *extra_args], url, data_dir)
    _wait_ready(server, "/-/ready", timeout_s)
    return server


def start_victoriametrics(data_dir: Path, *, binary: str | None = None, timeout_s: float = 60.0,
                          extra_args: Sequence[str] = ()) -> RunningServer:
    """Start an empty VictoriaMetrics on ``data_dir`` on a free port."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = _spawn("victoriametrics", [binary or _need("victoriametrics"), f"-storageDataPath={data_dir}",
                                        f"-httpListenAddr=127.0.0.1:{port}", "-retentionPeriod=100y",
                                        "-search.latencyOffset=0s", "-search.disableCache",
                                        "-loggerLevel=WARN", *extra_args], url, data_dir)
    _wait_ready(server, "/health", timeout_s)
    return server


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _fmt(x: float) -> str:
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return repr(float(x))


def _text_lines(frame: MetricFrame, rows: range) -> Iterator[str]:
    ts_ms = [str(t * 1000) for t in frame.timestamps.tolist()]
    for i in rows:
        k = frame.keys[i]
        head = k.name + ("{" + ",".join(f'{a}="{_escape(b)}"' for a, b in k.labels) + "}" if k.labels else "")
        row = frame.values[i]
        ok = np.flatnonzero(~np.isnan(row))
        yield "".join(f"{head} {_fmt(v)} {ts_ms[j]}\n" for j, v in zip(ok.tolist(), row[ok].tolist(), strict=True))


def import_victoriametrics(url: str, frame: MetricFrame, *, batch_series: int = 200,
                           client: httpx.Client | None = None) -> dict[str, float]:
    """Import ``frame`` into VictoriaMetrics at ``url`` and force a flush so it is searchable.
    Returns ``{"import_s": seconds, "samples": n}``."""
    own = client is None
    c = client or httpx.Client(timeout=120.0)
    t0 = time.perf_counter()
    try:
        for lo in range(0, len(frame), batch_series):
            body = "".join(_text_lines(frame, range(lo, min(lo + batch_series, len(frame)))))
            r = c.post(f"{url}/api/v1/import/prometheus", content=body.encode())
            if r.status_code >= 300:
                raise SourceError("victoriametrics", f"import failed: HTTP {r.status_code} {r.text[:200]}")
        r = c.get(f"{url}/internal/force_flush")
        if r.status_code >= 300:
            raise SourceError("victoriametrics", f"force_flush failed: HTTP {r.status_code}")
    finally:
        if own:
            c.close()
    return {"import_s": time.perf_counter() - t0, "samples": float(np.count_nonzero(~np.isnan(frame.values)))}


def stop_process(proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """Terminate ``proc``, kill it if it does not exit within ``timeout_s``; safe to call twice."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_s)


def cleanup(path: Path) -> None:
    """Remove a data directory (ignores errors)."""
    if path.exists() and os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
