"""Helpers for the incident-bot tests: a real Alertmanager 0.25 and a capture server playing Slack.

A plain module (import it from a test), like ``tests/promservers.py``: a missing binary or missing
templates skip with a reason, except under ``CI=true`` where they fail.

* :func:`start_alertmanager` runs ``/usr/bin/prometheus-alertmanager`` on 127.0.0.1 (free port,
  cluster listener off, temp storage) with one webhook receiver; :class:`Alertmanager` posts
  alerts through ``POST /api/v2/alerts`` (reference §7.3) and stops the process.
* :class:`CaptureServer` is a tiny ``http.server`` in a thread that records every POST and
  answers ``fail_first`` of them with 503 (a notifier target that is down, then up).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from rca.bench.promserver import free_port, stop_process

__all__ = ["AM_BINARY", "Alertmanager", "CaptureServer", "require_alertmanager", "start_alertmanager"]

AM_BINARY = "/usr/bin/prometheus-alertmanager"
_TEMPLATES = ("/usr/share/prometheus/alertmanager/default.tmpl", "/usr/share/prometheus/alertmanager/email.tmpl")


def _missing(msg: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{msg} but CI=true: .ci/run must install it (apt-get install prometheus-alertmanager)")
    pytest.skip(msg)


def require_alertmanager() -> str:
    exe = AM_BINARY if os.access(AM_BINARY, os.X_OK) else shutil.which("prometheus-alertmanager")
    if not exe:
        _missing(f"{AM_BINARY} is not installed (Debian: apt-get install prometheus-alertmanager)")
    gone = [t for t in _TEMPLATES if not os.path.exists(t)]
    if gone:
        _missing(f"Alertmanager templates missing ({', '.join(gone)}); config loading would fail")
    return exe


@dataclass
class Alertmanager:
    proc: subprocess.Popen
    url: str
    log_path: Path

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        r = httpx.post(self.url + "/api/v2/alerts", json=alerts, timeout=10)
        assert r.status_code == 200, r.text

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        stop_process(self.proc)


def start_alertmanager(tmp: Path, webhook_url: str, bearer: str | None = None, *, group_by=("alertname",),
                       timeout_s: float = 30.0) -> Alertmanager:
    """Alertmanager with one webhook receiver to ``webhook_url`` (``Authorization: Bearer``
    ``bearer`` when given); ``group_wait: 1s, group_interval: 2s``."""
    exe = require_alertmanager()
    hook: dict[str, Any] = {"url": webhook_url, "send_resolved": True}
    if bearer:
        hook["http_config"] = {"authorization": {"type": "Bearer", "credentials": bearer}}
    cfg = {"route": {"receiver": "engine", "group_by": list(group_by), "group_wait": "1s",
                     "group_interval": "2s", "repeat_interval": "1h"},
           "receivers": [{"name": "engine", "webhook_configs": [hook]}]}
    tmp.mkdir(parents=True, exist_ok=True)
    conf = tmp / "alertmanager.yml"
    conf.write_text(yaml.safe_dump(cfg))
    port = free_port()
    log_path = tmp / "alertmanager.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([exe, f"--config.file={conf}", f"--storage.path={tmp / 'data'}",
                                 f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                                stdout=log, stderr=subprocess.STDOUT)
    am = Alertmanager(proc, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"alertmanager exited with {proc.returncode}: {am.log()[-2000:]}")
        try:
            if httpx.get(am.url + "/-/ready", timeout=2).status_code == 200:
                return am
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    am.stop()
    raise RuntimeError(f"alertmanager not ready within {timeout_s:g} s: {am.log()[-2000:]}")


@dataclass
class CaptureServer:
    """Records POSTs (path, headers, JSON body); the first ``fail_first`` get 503."""

    fail_first: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)  # every POST, refused ones too
    bodies: list[Any] = field(default_factory=list)  # the bodies answered 200
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> CaptureServer:
        cap = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 — http.server's name
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                with cap._lock:
                    cap.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    refuse = len(cap.requests) <= cap.fail_first
                    if not refuse:
                        cap.bodies.append(body)
                out = b"down" if refuse else b"ok"
                self.send_response(503 if refuse else 200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="capture", daemon=True).start()
        return self

    def delivered(self) -> list[Any]:
        with self._lock:
            return list(self.bodies)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> CaptureServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
