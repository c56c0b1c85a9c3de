"""The incident bot: Alertmanager webhooks in (queued, replayed, idempotent), analyses on the
worker, one Slack message per incident out (retried, recorded), Slack button feedback in.

The first test is end to end over real processes: Alertmanager 0.25 -> `rca serve` on the
simulated kv-cache incident -> a capture server playing Slack. The others run the app in process
(TestClient runs its lifespan, so the worker thread is real) over the small simulated snapshot.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.parse
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from amserver import CaptureServer, start_alertmanager
from apiapp import assert_problem, make_app, question_at
from fastapi.testclient import TestClient

from rca.bench.ask_bench import ServeProcess
from rca.serialize import rfc3339
from rca.sim import simulate
from rca.store_schema import alert_queue, deliveries, feedback, incident_states

SCENARIO = "kv_cache_exhaustion"


def _wait(cond: Callable[[], object], timeout_s: float = 30.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


def _rows(engine: sa.Engine, table: sa.Table) -> list:
    with engine.connect() as c:
        return list(c.execute(sa.select(table)))


def _payload(status: str = "firing", group: str = '{}:{alertname="HighP99Latency"}', fp: str = "a1b2c3d4e5f60718",
             at: int | None = None, **labels: str) -> dict:
    labels = {"alertname": "HighP99Latency", "service": "api-gateway", **labels}
    starts = rfc3339(at or question_at())
    alert = {"status": status, "labels": labels, "annotations": {}, "startsAt": starts,
             "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else rfc3339(int(time.time())),
             "generatorURL": "", "fingerprint": fp}
    return {"version": "4", "groupKey": group, "truncatedAlerts": 0, "status": status, "receiver": "engine",
            "groupLabels": {"alertname": labels["alertname"]}, "commonLabels": labels, "commonAnnotations": {},
            "externalURL": "http://am.local", "alerts": [alert]}


# ---- end to end: real Alertmanager, real `rca serve`, a capture server playing Slack ----------

@pytest.mark.integration
def test_alertmanager_to_slack_names_the_ground_truth_once_and_resolves(tmp_path):
    truth = simulate(SCENARIO, 0)
    with CaptureServer() as slack:
        env = {"RCA_SLACK_WEBHOOK_URL": slack.url + "/services/T1/B2/secret", "RCA_BASE_URL": "https://rca.example",
               "RCA_BOT_POLL_S": "0.2", "RCA_NOTIFY_RETRY_BASE_S": "0.1"}
        with ServeProcess.start(tmp_path / "serve", [f"sim://{SCENARIO}?seed=0"], scope="write", env=env) as srv:
            am = start_alertmanager(tmp_path / "am", srv.url + "/v1/alerts/alertmanager", bearer=srv.key)
            try:
                labels = {"alertname": "HighP99Latency", "service": "api-gateway", "severity": "critical"}
                starts = rfc3339(truth.question_time)
                am.post_alerts([{"labels": labels, "startsAt": starts, "endsAt": rfc3339(int(time.time()) + 3600)}])
                _wait(lambda: slack.delivered(), 60, "the Slack message")
                first = slack.delivered()[0]
                assert truth.truth.root in first["text"], first["text"]
                assert not first["text"].startswith(("Update", "Resolved"))
                assert "https://rca.example/v1/incidents/inc-" in json.dumps(first["blocks"])

                am.post_alerts([{"labels": labels, "startsAt": starts, "endsAt": rfc3339(int(time.time()) - 1)}])
                _wait(lambda: len(slack.delivered()) >= 2, 30, "the resolve message")
                time.sleep(2.5)  # one more group_interval: a re-send would show up now
                msgs = slack.delivered()
                assert len(msgs) == 2, [m["text"] for m in msgs]
                assert msgs[1]["text"].startswith("Resolved: ")
                inc_id = _incident_link(first)
                assert inc_id == _incident_link(msgs[1])

                from rca.store import SqlStore

                store = SqlStore.open(f"sqlite:///{tmp_path / 'serve' / 'rca.db'}")
                try:
                    states = _rows(store.engine, incident_states)
                    assert [(s.status, s.source, s.incident_id) for s in states] == [("resolved", "alert", inc_id)]
                    queue = _rows(store.engine, alert_queue)
                    assert {q.state for q in queue} == {"done"} and len(queue) == 2
                    sent = [d for d in _rows(store.engine, deliveries) if d.delivered]
                    assert [d.status for d in sent] == ["open", "resolved"]
                    assert "secret" not in " ".join(d.target for d in sent)
                finally:
                    store.close()
                assert srv.key not in srv.log()
            finally:
                am.stop()


def _incident_link(msg: dict) -> str:
    text = json.dumps(msg["blocks"])
    i = text.index("/v1/incidents/") + len("/v1/incidents/")
    return text[i:].split("|")[0].split("/")[0].split('"')[0]


# ---- in process ------------------------------------------------------------------------------

def _app(tmp_path, **settings):
    return make_app(tmp_path, bot_poll_s=0.05, notify_retry_base_s=0.05, bot_retry_base_s=0.05, **settings)


def test_same_payload_twice_is_one_queue_row_and_one_analysis(tmp_path):
    with CaptureServer() as slack:
        a = _app(tmp_path, slack_webhook_url=slack.url + "/hook")
        with TestClient(a.app) as c:
            p = _payload()
            r1 = c.post("/v1/alerts/alertmanager", json=p, headers=a.headers("write"))
            r2 = c.post("/v1/alerts/alertmanager", json=p, headers=a.headers("write"))
            assert r1.status_code == 202 and r1.json()["queued"] and not r1.json()["duplicate"]
            assert r2.status_code == 202 and r2.json()["duplicate"] and r2.json()["seq"] == r1.json()["seq"]
            _wait(lambda: all(q.state == "done" for q in _rows(a.store.engine, alert_queue)), 30, "the analysis")
            # the group fires on and a new alert joins: analysed again under the same incident; the
            # update message waits for the per-incident rate limit (300 s by default)
            p2 = _payload(fp="ffff000011112222", pod="vllm-llama-3-70b-0")
            p2["alerts"] += p["alerts"]
            assert c.post("/v1/alerts/alertmanager", json=p2, headers=a.headers("write")).status_code == 202
            _wait(lambda: all(q.state == "done" for q in _rows(a.store.engine, alert_queue)), 30, "the update")
        queue = _rows(a.store.engine, alert_queue)
        assert len(queue) == 2 and [q.attempts for q in queue] == [1, 1]
        assert queue[0].incident_id and queue[0].incident_id == queue[1].incident_id
        states = _rows(a.store.engine, incident_states)
        assert len(states) == 1 and states[0].status == "open"
        assert states[0].fingerprint == hashlib.sha256(p["groupKey"].encode()).hexdigest()[:32]
        assert states[0].detail["scope"] == ["service:api-gateway"]
        assert sorted(states[0].detail["firing"]) == ["a1b2c3d4e5f60718", "ffff000011112222"]
        assert len(slack.delivered()) == 1


def test_a_new_alert_in_an_open_group_sends_an_update_for_the_same_incident(tmp_path):
    with CaptureServer() as slack:
        a = _app(tmp_path, slack_webhook_url=slack.url + "/hook", notify_min_interval_s=0)
        with TestClient(a.app) as c:
            p = _payload()
            assert c.post("/v1/alerts/alertmanager", json=p, headers=a.headers("write")).status_code == 202
            _wait(lambda: len(slack.delivered()) == 1, 30, "the first message")
            c.post("/v1/alerts/alertmanager", json=p, headers=a.headers("write"))  # a plain repeat
            p2 = _payload(fp="ffff000011112222", pod="vllm-llama-3-70b-0")
            p2["alerts"] += p["alerts"]
            assert c.post("/v1/alerts/alertmanager", json=p2, headers=a.headers("write")).status_code == 202
            _wait(lambda: len(slack.delivered()) == 2, 30, "the update")
            time.sleep(0.3)
        messages = slack.delivered()
        assert len(messages) == 2  # the open message and one update; the repeat sent nothing
        assert "Update" in json.dumps(messages[1])
        queue = _rows(a.store.engine, alert_queue)
        assert len({q.incident_id for q in queue}) == 1


@pytest.mark.parametrize(("body", "field"), [
    ({**_payload(), "version": "3"}, "version"),
    ({k: v for k, v in _payload().items() if k != "alerts"}, "alerts"),
    ({**_payload(), "alerts": [{**_payload()["alerts"][0], "startsAt": "yesterday"}]}, "alerts[0].startsAt"),
    (b"{not json", "body"),
])
def test_bad_payloads_are_problems_naming_the_field(tmp_path, body, field):
    a = _app(tmp_path, bot_worker=False)
    with TestClient(a.app) as c:
        kw = {"content": body} if isinstance(body, bytes) else {"json": body}
        r = c.post("/v1/alerts/alertmanager", headers={**a.headers("write"), "Content-Type": "application/json"}, **kw)
        assert_problem(r, 400, field)
        assert c.post("/v1/alerts/alertmanager", json=_payload()).status_code == 401
        assert c.post("/v1/alerts/alertmanager", json=_payload(), headers=a.headers("read")).status_code == 403
    assert _rows(a.store.engine, alert_queue) == []


def test_queued_alerts_are_replayed_on_start(tmp_path):
    a = _app(tmp_path, bot_worker=False)  # the process that took the webhooks dies before analysing
    with TestClient(a.app) as c:
        for i, group in enumerate(('{}:{alertname="A"}', '{}:{alertname="B"}')):
            r = c.post("/v1/alerts/alertmanager", json=_payload(group=group, fp=f"{i:016x}"), headers=a.headers())
            assert r.status_code == 202
    assert [q.state for q in _rows(a.store.engine, alert_queue)] == ["queued", "queued"]
    assert _rows(a.store.engine, incident_states) == []

    b = make_app(tmp_path, bot_poll_s=0.05)  # same store, worker on
    with TestClient(b.app):
        _wait(lambda: all(q.state == "done" for q in _rows(b.store.engine, alert_queue)), 30, "the replay")
    assert len(_rows(b.store.engine, incident_states)) == 2


def test_notifier_down_then_up_is_delivered_once_and_recorded(tmp_path):
    with CaptureServer(fail_first=2) as slack:
        a = _app(tmp_path, slack_webhook_url=slack.url + "/services/T/B/tok3n")
        with TestClient(a.app) as c:
            assert c.post("/v1/alerts/alertmanager", json=_payload(), headers=a.headers()).status_code == 202
            _wait(lambda: _rows(a.store.engine, deliveries), 30, "the delivery record")
        assert len(slack.requests) == 3 and len(slack.delivered()) == 1
        (rec,) = _rows(a.store.engine, deliveries)
        assert rec.delivered and rec.notifier == "slack" and rec.status == "open"
        assert [att[1] for att in rec.attempts] == [503, 503, 200]
        assert "tok3n" not in rec.target


def _signed(secret: str, body: bytes, ts: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if ts is None else ts
    sig = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": sig,
            "Content-Type": "application/x-www-form-urlencoded"}


def test_slack_actions_need_a_valid_signature_and_record_feedback(tmp_path):
    secret = "8f742231b10e8888abcd99yyyzzz85a5"
    a = _app(tmp_path, slack_signing_secret=secret)
    with TestClient(a.app) as c:
        assert c.post("/v1/alerts/alertmanager", json=_payload(), headers=a.headers()).status_code == 202
        _wait(lambda: all(q.state == "done" for q in _rows(a.store.engine, alert_queue)), 30, "the incident")
        inc = _rows(a.store.engine, incident_states)[0].incident_id
        doc = {"type": "block_actions", "user": {"id": "U1", "username": "oncall"},
               "actions": [{"action_id": "rca_confirm_1", "value": json.dumps({"incident": inc, "rank": 1})}]}
        body = urllib.parse.urlencode({"payload": json.dumps(doc)}).encode()

        bad = c.post("/v1/bot/slack/actions", content=body, headers=_signed("not-the-secret", body))
        assert_problem(bad, 401)
        stale = c.post("/v1/bot/slack/actions", content=body, headers=_signed(secret, body, int(time.time()) - 3600))
        assert_problem(stale, 401)
        assert _rows(a.store.engine, feedback) == []

        ok = c.post("/v1/bot/slack/actions", content=body, headers=_signed(secret, body))
        assert ok.status_code == 200, ok.text
        fbs = a.store.list_feedback(inc)
        assert [(f.verdict, f.hypothesis_rank, f.author) for f in fbs] == [("confirm", 1, "slack:oncall")]


def test_slack_actions_without_a_signing_secret_are_unavailable(tmp_path):
    a = _app(tmp_path, bot_worker=False)
    with TestClient(a.app) as c:
        body = b"payload=%7B%7D"
        assert_problem(c.post("/v1/bot/slack/actions", content=body, headers=_signed("x", body)), 503)


def test_two_groups_of_one_alert_name_are_two_incidents():
    from api.bot.alerts import request_of_alerts

    def doc(model):
        return {"version": "4", "groupKey": f'{{}}:{{alertname="HighTTFT", model_name="{model}"}}', "status": "firing",
                "groupLabels": {"alertname": "HighTTFT", "model_name": model},
                "alerts": [{"status": "firing", "fingerprint": model[:16], "labels": {"alertname": "HighTTFT"},
                            "startsAt": "2026-11-20T19:15:00Z", "endsAt": "0001-01-01T00:00:00Z"}]}

    a, b = request_of_alerts(doc("llama-3-70b"), []), request_of_alerts(doc("llama-3-8b"), [])
    assert a.question != b.question and "model_name=llama-3-70b" in a.question


def test_an_oversized_alert_payload_is_a_413_problem(tmp_path):
    a = _app(tmp_path, alert_max_body_bytes=1024)
    with TestClient(a.app) as c:
        p = _payload()
        p["commonAnnotations"] = {"description": "x" * 2000}
        r = c.post("/v1/alerts/alertmanager", json=p, headers=a.headers("write"))
    body = assert_problem(r, 413, "body")
    assert body["type"].endswith("/too-large") and "1024" in body["detail"]
