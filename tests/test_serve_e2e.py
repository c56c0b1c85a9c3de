"""End to end: `rca serve` (its own process) on the default simulated scenario answers
"why was p99 slow at <time>?" with the ground-truth root cause first, over real HTTP with a
real API key; evidence plots are PNGs; feedback is stored; the process shuts down cleanly."""

from __future__ import annotations

import pytest

from rca.bench.ask_bench import ServeProcess
from rca.sim import simulate

SCENARIO = "kv_cache_exhaustion"  # the default of `rca demo`


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with ServeProcess.start(tmp_path_factory.mktemp("serve"), [f"sim://{SCENARIO}?seed=0"]) as srv:
        yield srv


def test_ask_over_http_names_the_ground_truth_first(served):
    result = simulate(SCENARIO, 0)
    with served.client() as c:
        r = c.get("/v1/ask", params={"q": result.question, "now": str(result.snapshot.window.end)})
        assert r.status_code == 200, r.text
        assert r.headers["x-request-id"]
        ans = r.json()
        assert ans["hypotheses"][0]["root"] == result.truth.root
        assert ans["hypotheses"][0]["category"] == result.truth.category
        assert ans["question"] == result.question
        assert ans["interpreted"]["signal"] == "latency" and ans["interpreted"]["statistic"] == "p99"
        assert ans["summary"] and ans["symptom"]["entity"]

        plot = next(e["plot_url"] for h in ans["hypotheses"] for e in h["evidence"] if e["plot_url"])
        png = c.get(plot)
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        assert png.content[:8] == b"\x89PNG\r\n\x1a\n"

        fb = c.post(f"/v1/incidents/{ans['incident_id']}/feedback", json={"verdict": "confirm", "hypothesis_rank": 1})
        assert fb.status_code == 201, fb.text
        got = c.get(f"/v1/incidents/{ans['incident_id']}").json()
        assert [f["verdict"] for f in got["feedback"]] == ["confirm"]
        assert got["hypotheses"][0]["root"] == result.truth.root

        listed = c.get("/v1/incidents", params={"limit": 10}).json()
        assert ans["incident_id"] in [i["id"] for i in listed["items"]]

        metrics = c.get("/metrics").text
        assert 'rca_http_requests_total{method="GET",route="/v1/ask",status="200"}' in metrics
        assert "rca_analysis_duration_seconds_count" in metrics


def test_without_a_key_the_server_refuses(served):
    import httpx

    r = httpx.get(served.url + "/v1/ask", params={"q": "why was p99 slow?"})
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert httpx.get(served.url + "/healthz").status_code == 200


def test_the_key_never_reaches_the_log(served):
    with served.client() as c:
        c.get("/v1/incidents")
    secret = served.key.split("_", 2)[2]
    log = served.log()
    assert secret not in log and served.key not in log
    assert served.key.split("_")[1] in log  # the public id is what the access log names


def test_several_worker_processes_serve_the_same_store(tmp_path):
    with ServeProcess.start(tmp_path, [f"sim://{SCENARIO}?seed=0"], extra_args=["--workers", "2"]) as srv, \
            srv.client() as c:
        result = simulate(SCENARIO, 0)
        ids = set()
        for _ in range(4):  # the kernel spreads connections over the workers; all share one store
            r = c.get("/v1/ask", params={"q": result.question, "now": str(result.snapshot.window.end)},
                      headers={"Connection": "close"})
            assert r.status_code == 200, r.text
            assert r.json()["hypotheses"][0]["root"] == result.truth.root
            ids.add(r.json()["incident_id"])
        assert len(ids) == 1  # the same question is the same incident, whichever worker answered
        assert c.get(f"/v1/incidents/{ids.pop()}").status_code == 200
