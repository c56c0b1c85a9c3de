"""OTLP/HTTP ingest throughput: protobuf trace batches through the receiver route into SQLite.

``bench_ingest`` builds ``n_spans`` spans shaped like an instrumented request path (four
services, server/client pairs, 6-8 attributes per span incl. ``http.*`` and ``gen_ai.*``, a
resource of four attributes per service), serialises them as ``ExportTraceServiceRequest``
protobuf bodies of ``batch`` spans — before the clock starts —, then posts every body to
``POST /v1/otlp/v1/traces`` of a fresh SQLite store (a file in a temporary folder, WAL,
``synchronous=FULL``: every 200 is a committed transaction), once per transport:

* ``testclient`` — FastAPI's in-process ``TestClient`` (no sockets);
* ``uvicorn`` — a real uvicorn server on 127.0.0.1 (free port) in a thread of this process,
  posted to by an ``httpx.Client`` with keep-alive, so client and server share the cores.

Reported per transport: wall seconds, spans/s, requests/s, bytes sent, and how many spans the
store holds afterwards (must equal ``n_spans``). Also reported once, without HTTP: decode-only
and store-only spans/s on the same bodies, to show where the time goes. Wall-clock numbers
depend on the machine; tests never assert them.
"""

from __future__ import annotations

import contextlib
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["TARGET_SPANS_PER_S", "bench_ingest", "make_trace_bodies"]

TARGET_SPANS_PER_S = 20_000
_SERVICES = ("api-gateway", "orchestrator", "llm-router", "vllm-llama-3-70b")


def make_trace_bodies(n_spans: int, batch: int = 512, seed: int = 0) -> list[bytes]:
    """``n_spans`` synthetic spans as serialized ``ExportTraceServiceRequest`` bodies of at most
    ``batch`` spans each (one ``ResourceSpans`` per service in every body)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    def kv(k: str, v: Any) -> KeyValue:
        if isinstance(v, bool):
            return KeyValue(key=k, value=AnyValue(bool_value=v))
        if isinstance(v, int):
            return KeyValue(key=k, value=AnyValue(int_value=v))
        if isinstance(v, float):
            return KeyValue(key=k, value=AnyValue(double_value=v))
        return KeyValue(key=k, value=AnyValue(string_value=str(v)))

    rng = np.random.default_rng(seed)
    t0 = 1_767_225_600 * 10**9
    bodies: list[bytes] = []
    done = 0
    while done < n_spans:
        n = min(batch, n_spans - done)
        req = ExportTraceServiceRequest()
        per: dict[int, Any] = {}
        for i, svc in enumerate(_SERVICES):
            rs = req.resource_spans.add()
            rs.resource.attributes.extend([kv("service.name", svc), kv("k8s.pod.name", f"{svc}-{i}"),
                                           kv("k8s.namespace.name", "serving"), kv("host.name", f"node-{i % 2}")])
            per[i] = rs.scope_spans.add()
            per[i].scope.name = "bench"
        tids = rng.bytes(16 * (n // 4 + 1))
        sids = rng.bytes(8 * n)
        for j in range(n):
            k = done + j
            svc_i = j % 4
            sp = per[svc_i].spans.add()
            sp.trace_id = tids[16 * (j // 4):16 * (j // 4) + 16]
            sp.span_id = sids[8 * j:8 * j + 8]
            if svc_i:
                sp.parent_span_id = sids[8 * (j - 1):8 * j]
            start = t0 + k * 1_000_000
            sp.start_time_unix_nano = start
            sp.end_time_unix_nano = start + int(rng.integers(1_000_000, 900_000_000))
            sp.name = "POST /v1/chat/completions" if svc_i < 3 else "chat llama-3-70b"
            sp.kind = 2 if svc_i % 2 == 0 else 3
            sp.status.code = 2 if k % 97 == 0 else 0
            attrs = [kv("http.request.method", "POST"), kv("http.route", "/v1/chat/completions"),
                     kv("http.response.status_code", 500 if k % 97 == 0 else 200),
                     kv("server.address", _SERVICES[(svc_i + 1) % 4]), kv("network.protocol.version", "1.1"),
                     kv("retry", False)]
            if svc_i == 3:
                attrs += [kv("gen_ai.usage.input_tokens", int(rng.integers(50, 4000))),
                          kv("gen_ai.request.temperature", 0.7)]
            sp.attributes.extend(attrs)
        bodies.append(req.SerializeToString())
        done += n
    return bodies


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _uvicorn(app: Any, timeout_s: float = 10.0) -> Iterator[str]:
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, lifespan="off"))
    th = threading.Thread(target=server.run, name="otlp-bench-uvicorn", daemon=True)
    th.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not th.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{port} within {timeout_s} s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        th.join(timeout_s)


def _run(transport: str, bodies: list[bytes], n_spans: int, folder: Path) -> dict[str, Any]:
    import httpx
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from api.otlp import TRACES_PATH, otlp_router
    from connectors.otlp_store import OtlpStore

    store = OtlpStore.open(f"sqlite:///{folder / f'{transport}.db'}")
    app = FastAPI()
    app.include_router(otlp_router(store))
    headers = {"Content-Type": "application/x-protobuf"}
    with contextlib.ExitStack() as stack:
        if transport == "testclient":
            client: Any = stack.enter_context(TestClient(app))
        else:
            base = stack.enter_context(_uvicorn(app))
            client = stack.enter_context(httpx.Client(base_url=base, timeout=30.0))
        bad = 0
        t0 = time.perf_counter()
        for body in bodies:
            if client.post(TRACES_PATH, content=body, headers=headers).status_code != 200:
                bad += 1
        wall = time.perf_counter() - t0
    stored = store.counts()["spans"]
    store.close()
    return {"transport": transport, "wall_s": round(wall, 3), "spans_per_s": round(n_spans / wall),
            "requests_per_s": round(len(bodies) / wall, 1), "bytes_sent": sum(map(len, bodies)),
            "non_200": bad, "stored_spans": stored, "meets_target": n_spans / wall >= TARGET_SPANS_PER_S}


def _stages(bodies: list[bytes], n_spans: int, folder: Path) -> dict[str, Any]:
    from connectors.otlp import PROTOBUF, decode_traces
    from connectors.otlp_store import OtlpStore

    t0 = time.perf_counter()
    decoded = [decode_traces(b, PROTOBUF).records for b in bodies]
    t_dec = time.perf_counter() - t0
    store = OtlpStore.open(f"sqlite:///{folder / 'stages.db'}")
    t0 = time.perf_counter()
    for spans in decoded:
        store.add_spans(spans)
    t_store = time.perf_counter() - t0
    store.close()
    return {"decode_spans_per_s": round(n_spans / t_dec), "store_spans_per_s": round(n_spans / t_store)}


def bench_ingest(n_spans: int = 50_000, batch: int = 512,
                 transports: tuple[str, ...] = ("testclient", "uvicorn")) -> dict[str, Any]:
    """Post ``n_spans`` spans in protobuf batches of ``batch`` through the receiver route into a
    fresh SQLite store per transport (module docstring); returns the numbers as a dict."""
    if n_spans < 1 or batch < 1:
        from rca.errors import BadInput
        raise BadInput(f"n_spans and batch must be >= 1, got {n_spans} and {batch}", field="n_spans",
                       fix="use e.g. n_spans=50000, batch=512")
    unknown = set(transports) - {"testclient", "uvicorn"}
    if unknown:
        from rca.errors import BadInput
        raise BadInput(f"unknown transport(s) {sorted(unknown)}", field="transports", fix="use testclient, uvicorn")
    bodies = make_trace_bodies(n_spans, batch)
    with tempfile.TemporaryDirectory(prefix="rca-otlp-bench-") as tmp:
        folder = Path(tmp)
        runs = [_run(t, bodies, n_spans, folder) for t in transports]
        stages = _stages(bodies, n_spans, folder)
    return {"n_spans": n_spans, "batch": batch, "requests": len(bodies), "target_spans_per_s": TARGET_SPANS_PER_S,
            "runs": runs, **stages}


if __name__ == "__main__":  # python -m rca.bench.otlp_bench
    import json

    print(json.dumps(bench_ingest(), indent=2))
