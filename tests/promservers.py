"""Helpers for integration tests that need a real Prometheus 2.42 / VictoriaMetrics 1.79.

A plain module (import it from a test): the start/stop and data-loading code lives in
``rca.bench.promserver`` (the benchmark uses it too); this adds the test policy — a missing
binary skips with a reason, except under ``CI=true`` where it fails.

Typical use, one server per module and kind::

    @pytest.fixture(scope="module", params=SERVER_KINDS)
    def server(request, tmp_path_factory):
        srv = serve_frames(request.param, [frame], tmp_path_factory.mktemp(request.param))
        yield srv
        srv.stop()
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from rca.bench.promserver import (
    BINARIES,
    RunningServer,
    backfill_prometheus,
    find_binary,
    import_victoriametrics,
    start_prometheus,
    start_victoriametrics,
)
from rca.types import MetricFrame

__all__ = ["SERVER_KINDS", "require_binary", "serve_frames"]

SERVER_KINDS = ("prometheus", "victoriametrics")


def require_binary(kind: str) -> str:
    """The binary's path; skip the test without it (fail under ``CI=true``)."""
    exe = find_binary(kind)
    if exe is None:
        pkg = "victoria-metrics" if kind == "victoriametrics" else "prometheus"
        msg = f"{BINARIES[kind]} is not installed (Debian: apt-get install {pkg})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{msg} but CI=true: .ci/run must install it")
        pytest.skip(msg)
    return exe


def serve_frames(kind: str, frames: Sequence[MetricFrame], tmp: Path) -> RunningServer:
    """Start ``kind`` (``prometheus`` | ``victoriametrics``) holding ``frames`` (raw series);
    ``server.timings`` records seconds spent loading and starting. The caller stops it."""
    t0 = time.perf_counter()
    data = tmp / "data"
    if kind == "prometheus":
        promtool = require_binary("promtool")
        binary = require_binary("prometheus")
        for f in frames:
            backfill_prometheus(f, data, promtool=promtool)
        t1 = time.perf_counter()
        server = start_prometheus(data, binary=binary)
        server.timings.update(load_s=t1 - t0, start_s=time.perf_counter() - t1)
        return server
    if kind != "victoriametrics":
        raise ValueError(f"unknown server kind {kind!r}")
    server = start_victoriametrics(data, binary=require_binary("victoriametrics"))
    t1 = time.perf_counter()
    try:
        for f in frames:
            import_victoriametrics(server.url, f)
    except BaseException:
        server.stop()
        raise
    server.timings.update(start_s=t1 - t0, load_s=time.perf_counter() - t1)
    return server
