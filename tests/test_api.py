"""The REST API in process (FastAPI TestClient): the question path, incidents and paging,
plots, feedback, scans, readiness, metrics, the analysis cache, timeouts and failing sources.
Auth and schema fuzzing have their own files (test_api_auth.py, test_api_fuzz.py)."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient

from api import create_app
from connectors.memory import StaticConnector
from rca.apikeys import create_key
from rca.errors import SourceError, StoreError
from rca.serialize import rfc3339
from rca.settings import Settings
from rca.sim import simulate
from rca.wiring import build_engine

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def sim():
    return simulate("kv_cache_exhaustion", 0)


def _app(tmp_path, snap, **settings):
    s = Settings(database_url=f"sqlite:///{tmp_path}/rca.db", **settings)
    engine = build_engine(s, [StaticConnector(snap, name="sim")])
    app = create_app(engine, s)
    _, key = create_key(engine.store, "admin")
    return app, {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def api(tmp_path_factory, sim):
    app, headers = _app(tmp_path_factory.mktemp("api"), sim.snapshot)
    with TestClient(app) as c:
        c.headers.update(headers)
        c.now = str(sim.snapshot.window.end)
        yield c


def _problem(r, status, field=None):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["status"] == status and body["title"] and body["detail"] and body["type"].startswith("https://")
    if field is not None:
        assert body.get("field") == field, body
    return body


def test_ask_answers_with_the_truth_and_says_what_it_understood(api, sim):
    r = api.get("/v1/ask", params={"q": sim.question, "now": api.now})
    assert r.status_code == 200, r.text
    ans = r.json()
    assert ans["hypotheses"][0]["root"] == sim.truth.root
    i = ans["interpreted"]
    assert i["at"] == rfc3339(sim.question_time) and i["tz"] == "UTC"
    assert i["window"]["start"] < i["at"] <= i["window"]["end"]
    ns = [e["n"] for h in ans["hypotheses"] for e in h["evidence"]]
    assert ns == list(range(1, len(ns) + 1))  # numbered across the incident, as plot URLs are
    assert ans["links"]["self"] == f"/v1/incidents/{ans['incident_id']}"


def test_ask_reads_ranges_and_time_zones(api, sim):
    r = api.get("/v1/ask", params={"q": "why was p95 TTFT high between 19:00 and 19:30?", "now": api.now})
    assert r.status_code == 200, r.text
    i = r.json()["interpreted"]
    assert (i["statistic"], i["signal"]) == ("p95", "latency") and "time_to_first_token" in (i["metric"] or "")
    assert i["window"] == {"start": "2026-11-20T19:00:00Z", "end": "2026-11-20T19:30:00Z"}
    r = api.get("/v1/ask", params={"q": "why was p99 slow at 20:20?", "tz": "Europe/Paris", "now": api.now})
    assert r.status_code == 200, r.text
    assert r.json()["interpreted"]["at"] == "2026-11-20T19:20:00Z"  # 20:20 in Paris (CET) is 19:20 UTC
    assert r.json()["interpreted"]["tz"] == "Europe/Paris"


def test_bad_questions_are_problems_naming_the_field(api):
    _problem(api.get("/v1/ask", params={"q": "why was p99 slow at 25:00?", "now": api.now}), 400, "q")
    _problem(api.get("/v1/ask", params={"q": "why slow at 20:00", "tz": "Mars/Olympus", "now": api.now}), 400, "tz")
    _problem(api.get("/v1/ask", params={"q": "why slow", "now": "the day after"}), 400, "now")
    _problem(api.get("/v1/ask"), 422, "q")
    body = _problem(api.get("/v1/ask", params={"q": "why was p99 slow in the last 3 days?", "now": api.now}), 400, "q")
    assert "72.0 h" in body["detail"]  # the engine's window limit, reported against the question


def test_an_ambiguous_scope_lists_the_candidates(api, sim):
    pods = sorted(e for e in sim.snapshot.inventory.entities if e.startswith("pod:vllm-llama"))
    assert len(pods) >= 2
    r = api.get("/v1/ask", params={"q": "why was the llama pod slow at 19:20?", "now": api.now})
    body = _problem(r, 422, "q")
    assert len(body["candidates"]) >= 2 and set(body["candidates"]) <= set(pods) | {"model:llama-3-70b"}


def test_a_scoped_question_analyses_that_entity(api, sim):
    pod = sorted(e for e in sim.snapshot.inventory.entities if e.startswith("pod:vllm-llama"))[0]
    r = api.get("/v1/ask", params={"q": f"why was {pod.split(':', 1)[1]} slow at 19:20?", "now": api.now})
    assert r.status_code == 200, r.text
    assert r.json()["interpreted"]["scope"] == [pod]
    assert r.json()["symptom"]["entity"] == pod


def test_identical_questions_share_one_analysis_and_rewordings_get_their_own_incident(tmp_path, sim):
    app, headers = _app(tmp_path, sim.snapshot)
    engine = app.state.rca.engine
    calls = []
    real = engine.analyze

    def counting(req, snapshot=None):
        calls.append(req)
        return real(req, snapshot)

    engine.analyze = counting
    with TestClient(app, headers=headers) as c:
        params = {"q": "why was p99 slow at 19:20?", "now": str(sim.snapshot.window.end)}
        results = []

        def ask():
            results.append(c.get("/v1/ask", params=params))

        threads = [threading.Thread(target=ask) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [r.status_code for r in results] == [200] * 4
        assert len(calls) == 1  # four concurrent identical questions, one analysis
        a = results[0].json()
        b = c.get("/v1/ask", params={**params, "q": "Why was P99 latency slow at 19:20"}).json()
        assert len(calls) == 1
        assert b["incident_id"] != a["incident_id"] and b["question"] == "Why was P99 latency slow at 19:20"
        assert [h["root"] for h in b["hypotheses"]] == [h["root"] for h in a["hypotheses"]]
        assert c.get(f"/v1/incidents/{b['incident_id']}").status_code == 200  # the rewording is stored
        c.get("/v1/ask", params={**params, "q": "why was p99 slow at 19:25?"})
        assert len(calls) == 2
        m = c.get("/metrics").text
        assert 'rca_analysis_cache_total{result="miss"} 2.0' in m
        assert "rca_analysis_queue_depth 0.0" in m


def test_incidents_page_with_a_cursor(api, sim):
    end = sim.snapshot.window.end
    ids = []
    for k in range(3):
        r = api.post("/v1/incidents", json={"start": rfc3339(end - 3600 - 600 * k), "end": rfc3339(end - 3000 - 600 * k),
                                            "signal": "errors", "statistic": "error_ratio"})
        assert r.status_code == 201, r.text
        assert r.headers["location"] == f"/v1/incidents/{r.json()['incident_id']}"
        assert r.json()["interpreted"]["signal"] == "errors"
        ids.append(r.json()["incident_id"])
    page1 = api.get("/v1/incidents", params={"limit": 2}).json()
    assert len(page1["items"]) == 2 and page1["next_cursor"] == page1["items"][-1]["id"]
    page2 = api.get("/v1/incidents", params={"limit": 2, "cursor": page1["next_cursor"]}).json()
    seen = [i["id"] for i in page1["items"] + page2["items"]]
    assert len(seen) == len(set(seen))
    assert ids[-1] == page1["items"][0]["id"]  # newest first
    _problem(api.get("/v1/incidents", params={"cursor": "inc-doesnotexist"}), 400, "cursor")


def test_create_incident_needs_a_window_or_a_question(api, sim):
    _problem(api.post("/v1/incidents", json={}), 400, "at")
    _problem(api.post("/v1/incidents", json={"start": "2026-11-20T19:00:00Z"}), 400, "end")
    _problem(api.post("/v1/incidents", json={"start": "2026-11-20T19:30:00Z", "end": "2026-11-20T19:00:00Z"}),
             400, "end")
    _problem(api.post("/v1/incidents", json={"at": "2026-11-20T19:00:00Z", "colour": "red"}), 422, "colour")
    r = api.post("/v1/incidents", json={"question": sim.question, "now": rfc3339(sim.snapshot.window.end)})
    assert r.status_code == 201 and r.json()["hypotheses"][0]["root"] == sim.truth.root


def test_plots_and_their_errors(api, sim):
    ans = api.get("/v1/ask", params={"q": sim.question, "now": api.now}).json()
    iid = ans["incident_id"]
    items = [e for h in ans["hypotheses"] for e in h["evidence"]]
    metric = next(e for e in items if e["kind"] == "metric")
    r = api.get(metric["plot_url"])
    assert r.status_code == 200 and r.content.startswith(b"\x89PNG")
    _problem(api.get(f"/v1/incidents/{iid}/evidence/{len(items) + 1}/plot.png"), 404, "n")
    unplottable = [e for e in items if e["plot_url"] is None]
    if unplottable:
        _problem(api.get(f"/v1/incidents/{iid}/evidence/{unplottable[0]['n']}/plot.png"), 404, "n")
    _problem(api.get("/v1/incidents/inc-nope/evidence/1/plot.png"), 404, "incident_id")


def test_feedback_is_validated_and_idempotent(api, sim):
    iid = api.get("/v1/ask", params={"q": sim.question, "now": api.now}).json()["incident_id"]
    url = f"/v1/incidents/{iid}/feedback"
    first = api.post(url, json={"verdict": "reject", "hypothesis_rank": 2, "note": "not the orchestrator"})
    assert first.status_code == 201 and first.json()["created"] is True
    again = api.post(url, json={"verdict": "reject", "hypothesis_rank": 2, "note": "not the orchestrator"})
    assert again.status_code == 200 and again.json()["created"] is False
    assert len(api.get(url).json()) == 1
    _problem(api.post(url, json={"verdict": "confirm", "hypothesis_rank": 99}), 400, "hypothesis_rank")
    _problem(api.post(url, json={"verdict": "confirm"}), 400, "hypothesis_rank")
    _problem(api.post(url, json={"verdict": "maybe", "hypothesis_rank": 1}), 422, "verdict")
    _problem(api.post(url, json={"verdict": "correct", "correct_root": "checkout"}), 422, "correct_root")
    ok = api.post(url, json={"verdict": "correct", "correct_root": "gpu:gpu-node-1/0", "correct_category": "gpu_hw_fault"})
    assert ok.status_code == 201 and ok.json()["author"]  # defaults to the key's name
    _problem(api.post("/v1/incidents/inc-nope/feedback", json={"verdict": "confirm", "hypothesis_rank": 1}),
             404, "incident_id")


def test_scans_run_are_stored_and_listed(api):
    r = api.post("/v1/scans", json={"window": "30m", "baseline": "2h", "now": rfc3339(int(api.now))})
    assert r.status_code == 201, r.text
    scan = r.json()
    assert scan["status"] == "ok" and scan["result"]["series_scanned"] > 0 and scan["finished_at"]
    assert api.get(f"/v1/scans/{scan['id']}").json()["id"] == scan["id"]
    assert scan["id"] in [s["id"] for s in api.get("/v1/scans").json()["items"]]
    _problem(api.post("/v1/scans", json={"window": "soon"}), 400, "window")
    _problem(api.get("/v1/scans/scan-nope"), 404, "scan_id")


def test_readiness_reports_store_and_sources(tmp_path, sim):
    app, _ = _app(tmp_path, sim.snapshot)
    with TestClient(app) as c:
        ready = c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ok"
        assert {ch["name"] for ch in ready.json()["checks"]} == {"store", "source:sim"}
        app.state.rca.extras.clear()

        def down():
            raise StoreError("database is locked")

        app.state.rca.store.ping = down
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["status"] == "down"
        assert c.get("/healthz").status_code == 200  # alive, not ready


class _DownSource:
    name = "prom-down"

    def fetch(self, window, selector=None):
        raise SourceError(self.name, "connection refused")

    def check(self):
        raise SourceError(self.name, "connection refused")


def test_a_down_source_is_no_data_and_a_warning_not_an_error(tmp_path, sim):
    s = Settings(database_url=f"sqlite:///{tmp_path}/rca.db")
    engine = build_engine(s, [StaticConnector(sim.snapshot, name="sim"), _DownSource()])
    app = create_app(engine, s, auth=False)
    with TestClient(app) as c:
        r = c.get("/v1/ask", params={"q": sim.question, "now": str(sim.snapshot.window.end)})
        assert r.status_code == 200, r.text
        assert any("prom-down" in x for x in r.json()["no_data"])
        ready = c.get("/readyz").json()
        assert ready["status"] == "degraded"
        assert {ch["name"]: ch["status"] for ch in ready["checks"]}["source:prom-down"] == "down"


def test_a_slow_analysis_is_a_503_problem(tmp_path, sim):
    app, headers = _app(tmp_path, sim.snapshot, analysis_timeout_s=0.2)
    engine = app.state.rca.engine
    engine.analyze = lambda req, snapshot=None: time.sleep(1.0)
    with TestClient(app, headers=headers) as c:
        r = c.get("/v1/ask", params={"q": "why was p99 slow at 19:20?", "now": str(sim.snapshot.window.end)})
        body = _problem(r, 503)
        assert r.headers["retry-after"] and "took longer" in body["detail"]


def test_request_ids_and_cors(tmp_path, sim):
    app, headers = _app(tmp_path, sim.snapshot)
    with TestClient(app, headers=headers) as c:
        assert c.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
        assert len(c.get("/healthz", headers={"X-Request-ID": "x" * 200}).headers["x-request-id"]) == 32
        body = _problem(c.get("/v1/incidents/inc-nope", headers={"X-Request-ID": "req-7"}), 404)
        assert body["request_id"] == "req-7"
        pre = c.options("/v1/ask", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
        assert "access-control-allow-origin" not in pre.headers  # CORS off by default
    app2, _ = _app(tmp_path / "cors", sim.snapshot, cors_origins=["https://grafana.example"])
    with TestClient(app2) as c:
        pre = c.options("/v1/ask", headers={"Origin": "https://grafana.example", "Access-Control-Request-Method": "GET"})
        assert pre.headers["access-control-allow-origin"] == "https://grafana.example"


class _Recording(StaticConnector):
    def __init__(self, snapshot, name, series_selector):
        super().__init__(snapshot, name=name)
        self.series_selector = series_selector
        self.selectors = []

    def fetch(self, window, selector=None):
        self.selectors.append(selector)
        return super().fetch(window, selector)


def test_a_selector_reaches_the_metric_sources_only(tmp_path, sim):
    s = Settings(database_url=f"sqlite:///{tmp_path}/rca.db")
    metrics, traces = _Recording(sim.snapshot, "prom", True), _Recording(sim.snapshot, "tempo", False)
    app = create_app(build_engine(s, [metrics, traces]), s, auth=False)
    sel = '{namespace="serving"}'
    with TestClient(app) as c:
        r = c.post("/v1/incidents", json={"at": rfc3339(sim.question_time), "selector": sel})
        assert r.status_code == 201, r.text
        scan = c.post("/v1/scans", json={"window": "30m", "selector": sel, "now": rfc3339(sim.snapshot.window.end)})
        assert scan.status_code == 201 and scan.json()["params"]["selector"] == sel
    assert metrics.selectors == [sel, sel] and traces.selectors == [None, None]


def test_a_waiter_that_times_out_does_not_cancel_the_queued_analysis(tmp_path, sim):
    app, headers = _app(tmp_path, sim.snapshot, analysis_timeout_s=0.3, analysis_workers=1)
    engine = app.state.rca.engine
    real = engine.analyze
    started = []

    def slow(req, snapshot=None):
        started.append(req.at)
        time.sleep(0.5)
        return real(req, snapshot)

    engine.analyze = slow
    now = str(sim.snapshot.window.end)
    with TestClient(app, headers=headers) as c:
        results = {}

        def ask(t):
            results[t] = c.get("/v1/ask", params={"q": f"why was p99 slow at {t}?", "now": now}).status_code

        threads = [threading.Thread(target=ask, args=(t,)) for t in ("19:10", "19:20")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results.values()) == [503, 503]  # one ran too long, the other waited too long
        deadline = time.monotonic() + 10
        while len(started) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        service = app.state.rca.service
        while service._inflight and time.monotonic() < deadline + 20:  # the queued analysis still runs
            time.sleep(0.05)
        assert not service._inflight  # ... to completion; its result is cached
        assert c.get("/v1/ask", params={"q": "why was p99 slow at 19:20?", "now": now}).status_code == 200
        assert len(started) == 2


def test_received_spans_older_than_the_retention_are_dropped_at_start(tmp_path, sim):
    from rca.types import Span

    app, _ = _app(tmp_path, sim.snapshot, otlp_retention_s=7200)
    otlp = app.state.rca.otlp_store
    now_ns = int(time.time()) * 10**9
    otlp.add_spans([Span("a" * 32, "1" * 16, None, "gateway", "old", now_ns - 3 * 3600 * 10**9,
                         now_ns - 3 * 3600 * 10**9 + 10**6),
                    Span("b" * 32, "2" * 16, None, "gateway", "new", now_ns - 60 * 10**9, now_ns - 59 * 10**9)])
    assert otlp.counts()["spans"] == 2
    with TestClient(app):
        deadline = time.monotonic() + 5
        while otlp.counts()["spans"] != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert otlp.counts()["spans"] == 1


def test_the_summary_speaks_in_the_questions_time_zone(api, sim):
    r = api.get("/v1/ask", params={"q": "why was p99 slow at 20:20?", "tz": "Europe/Paris", "now": api.now})
    assert r.status_code == 200, r.text
    assert "between 20:05 and 20:25 CET" in r.json()["summary"]  # the window 19:05–19:25 UTC, read in Paris
    r = api.post("/v1/incidents", json={"start": "2026-11-20T19:05:00Z", "end": "2026-11-20T19:25:00Z",
                                        "tz": "America/New_York"})
    assert r.status_code == 201 and "between 14:05 and 14:25 EST" in r.json()["summary"]
    _problem(api.post("/v1/incidents", json={"at": "2026-11-20T19:05:00Z", "tz": "Mars/Base"}), 400, "tz")


class _RecordingNotifier:
    """A notifier that keeps what it was asked to send (the Notifier protocol)."""

    name = "recording"

    def __init__(self):
        self.messages = []

    def send(self, msg, previous=None):
        from api.bot.notifiers import Attempt, DeliveryRecord

        self.messages.append(msg)
        return DeliveryRecord(self.name, msg.incident_id, msg.fingerprint, msg.status, "memory",
                              (Attempt(time.time(), 200),), True, msg.content_hash())


def test_scheduled_scans_in_the_app_open_an_incident_and_notify(tmp_path, sim):
    jobs = '[{"name": "fleet", "trigger": "1s", "window": "30m", "baseline": "3h"}]'
    app, _headers = _app(tmp_path, sim.snapshot, scan_jobs=jobs, bot_worker=False)
    notifier = _RecordingNotifier()
    app.state.rca.extras["notifiers"] = [notifier]
    with TestClient(app) as c:
        deadline = time.monotonic() + 30
        while not notifier.messages and time.monotonic() < deadline:
            time.sleep(0.2)
        status = app.state.rca.extras["scheduler"].status()
        jobs = c.get("/v1/scans/jobs", headers=_headers).json()
    assert notifier.messages, status
    assert [j["name"] for j in jobs] == ["fleet"] and jobs[0]["trigger"] == "1s" and jobs[0]["next_run"]
    first = notifier.messages[0]
    assert first.status == "open" and sim.truth.root in first.headline
    assert len({m.incident_id for m in notifier.messages}) == 1  # later scans update the same incident
    scans = c.app.state.rca.store.list_scans(10)
    assert scans and all(s["job"] == "fleet" for s in scans)
