"""``rca bench ask``: latency of ``GET /v1/ask`` from a concurrent client on loopback.

``rca serve`` runs as its own process on a simulated scenario (``sim://``) with the embedded
SQLite store and a real API key; the client (this process) first warms it up (sources,
catalogue, embeddings, one analysis), then sends the requests from ``concurrency`` threads.

Two workloads, both reported:

* ``mixed``  — what on-call traffic looks like: a few people asking about the same incident in
  different words and at nearby times (``distinct`` different analyses, repeated). Repeats
  reuse the analysis cache (``RCA_ASK_CACHE_TTL_S``); rewordings still get their own incident.
* ``distinct`` — every request a different minute, so every request is a fresh analysis: the
  cost of the engine itself under concurrency.

``ServeProcess`` is reused by the end-to-end tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from rca.bench.promserver import free_port, stop_process

__all__ = ["ServeProcess", "run_ask_bench"]

_PHRASINGS = ("why was p99 slow at {t}?", "Why was P99 latency high at {t}", "what caused the slowdown at {t}",
              "why was p95 slow at {t} UTC?", "why were requests slow around {t}?")


@dataclass
class ServeProcess:
    """``rca serve`` in a subprocess on 127.0.0.1 with an API key of ``scope``."""

    proc: subprocess.Popen
    url: str
    key: str
    log_path: Path

    @classmethod
    def start(cls, workdir: str | Path, sources: Sequence[str], scope: str = "admin",
              env: dict[str, str] | None = None, timeout_s: float = 120.0,
              extra_args: Sequence[str] = ()) -> ServeProcess:
        from rca.apikeys import create_key
        from rca.store import SqlStore

        workdir = Path(workdir)
        db = f"sqlite:///{workdir / 'rca.db'}"
        store = SqlStore.open(db)
        _, key = create_key(store, scope, name="bench")
        store.close()
        port = free_port()
        log_path = workdir / "serve.log"
        args = [sys.executable, "-m", "rca.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--db", db]
        for s in sources:
            args += ["--source", s]
        args += list(extra_args)
        full_env = {**os.environ, "RCA_DATABASE_URL": db, **(env or {})}
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=full_env)
        srv = cls(proc, f"http://127.0.0.1:{port}", key, log_path)
        srv.wait_ready(timeout_s)
        return srv

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rca serve exited with {self.proc.returncode}: {self.log()[-2000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"rca serve was not ready within {timeout_s:g} s: {self.log()[-2000:]}")

    def client(self, timeout_s: float = 60.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout_s, headers={"Authorization": f"Bearer {self.key}"})

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        stop_process(self.proc)

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _hhmm(ts: int) -> str:
    return time.strftime("%H:%M", time.gmtime(ts))


def _run(client: httpx.Client, questions: list[tuple[str, int]], concurrency: int) -> dict[str, Any]:
    def one(item: tuple[str, int]) -> tuple[float, int]:
        q, now = item
        t0 = time.perf_counter()
        try:
            r = client.get("/v1/ask", params={"q": q, "now": str(now)})
            status = r.status_code
        except httpx.HTTPError:
            status = 0
        return time.perf_counter() - t0, status

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, questions))
    wall = time.perf_counter() - t0
    lat = np.array([r[0] for r in results])
    errors = sum(1 for r in results if r[1] != 200)
    return {"requests": len(results), "concurrency": concurrency, "errors": errors,
            "p50_ms": round(float(np.percentile(lat, 50)) * 1000, 1),
            "p95_ms": round(float(np.percentile(lat, 95)) * 1000, 1),
            "max_ms": round(float(lat.max()) * 1000, 1), "requests_per_s": round(len(results) / wall, 1),
            "statuses": sorted({r[1] for r in results})}


def run_ask_bench(workdir: str | Path, scenario: str = "kv_cache_exhaustion", seed: int = 0,
                  requests: int = 200, concurrency: int = 8, distinct: int = 10, workers: int = 1) -> dict[str, Any]:
    """Start ``rca serve`` on ``sim://scenario``, warm it, and time both workloads."""
    from rca.sim import simulate

    result = simulate(scenario, seed)
    end = result.snapshot.window.end
    at = result.question_time
    with ServeProcess.start(workdir, [f"sim://{scenario}?seed={seed}"], extra_args=["--workers", str(workers)]) as srv, \
            srv.client() as client:
        t0 = time.perf_counter()
        warm = client.get("/v1/ask", params={"q": f"why was p99 slow at {_hhmm(at)}?", "now": str(end)})
        warm_s = time.perf_counter() - t0
        if warm.status_code != 200:
            raise RuntimeError(f"warm-up request failed: {warm.status_code} {warm.text[:500]}")
        top = warm.json()["hypotheses"][0]["root"] if warm.json()["hypotheses"] else None
        mixed = [(_PHRASINGS[i % len(_PHRASINGS)].format(t=_hhmm(at - 60 * ((i // len(_PHRASINGS)) % distinct))), end)
                 for i in range(requests)]
        fresh = [(f"why was p99 slow at {_hhmm(at - 60 * (i + 1))}?", end) for i in range(requests)]
        out = {"scenario": scenario, "seed": seed, "server": f"rca serve (uvicorn, {workers} process(es))",
               "analysis_workers": int(os.environ.get("RCA_ANALYSIS_WORKERS", "2")),
               "warmup_s": round(warm_s, 3), "top_root": top, "truth_root": result.truth.root,
               "mixed": _run(client, mixed, concurrency), "distinct": _run(client, fresh, concurrency)}
        out["mixed"]["distinct_analyses"] = distinct
    return out
