"""api.bot notifiers: payload shapes (reference §8), Slack signatures and actions, delivery with retries
against a real capture server, the dispatcher's one-message rules, secrets kept out of logs and records."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode

import httpx
import pytest

from api.bot import (
    DeliveryRecord,
    Dispatcher,
    IncidentMessage,
    MemoryDeliveryLog,
    Notifier,
    NullNotifier,
    PagerDutyNotifier,
    RetryPolicy,
    SlackNotifier,
    SlackSignatureError,
    TeamsNotifier,
    WebhookNotifier,
    feedback_of,
    message_from_incident,
    pagerduty_payload,
    parse_block_actions,
    redact_target,
    sign_webhook,
    slack_payload,
    teams_payload,
    verify_slack_signature,
)
from api.shape import answer_public
from rca.bench.promserver import free_port
from rca.errors import BadInput

BASE = "https://rca.example.com"
FP = "fp-kv-0001"
SLACK_TOKEN = "T0001/B0002/SeCrEtToKeNxyz9"


@pytest.fixture(scope="module")
def sim():
    from connectors.memory import StaticConnector
    from rca.answer import request_of
    from rca.ask import parse_question
    from rca.settings import Settings
    from rca.sim import simulate
    from rca.wiring import build_engine

    result = simulate("kv_cache_exhaustion", 0)
    snap = result.snapshot
    engine = build_engine(Settings(), [StaticConnector(snap, name="simulator")])
    q = parse_question(result.question, now=snap.window.end)
    return engine.analyze(request_of(q), snapshot=snap), result.truth


@pytest.fixture(scope="module")
def msg(sim) -> IncidentMessage:
    return message_from_incident(sim[0], BASE + "/", FP, "open", "critical")


# --- capture server -------------------------------------------------------------------------------

class Capture:
    """A real HTTP server on 127.0.0.1 that records bodies and answers from a script."""

    def __init__(self, port: int) -> None:
        self.port, self.bodies, self.headers, self.script = port, [], [], []
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/{SLACK_TOKEN}"

    def start(self) -> None:
        if self.server:
            return
        cap = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                cap.bodies.append(body)
                cap.headers.append(dict(self.headers))
                status, text, extra = cap.script.pop(0) if cap.script else (200, "ok", {})
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text.encode())

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture()
def capture():
    cap = Capture(free_port())
    yield cap
    cap.stop()


@pytest.fixture()
def client():
    with httpx.Client() as c:
        yield c


def policy(sleeps: list, on_sleep=None, attempts: int = 5) -> RetryPolicy:
    def sleep(s: float) -> None:
        sleeps.append(s)
        if on_sleep:
            on_sleep()
    return RetryPolicy(attempts=attempts, base_s=0.01, max_s=0.05, max_retry_after_s=3.0, timeout_s=2.0,
                       sleep=sleep)


# --- the message ----------------------------------------------------------------------------------

def test_message_from_simulated_incident(sim, msg):
    incident, truth = sim
    assert msg.hypotheses[0].root == truth.root and truth.root in msg.headline
    assert msg.incident_url == f"{BASE}/v1/incidents/{incident.id}"
    assert 1 <= len(msg.hypotheses) <= 3 and all(len(h.evidence) <= 3 for h in msg.hypotheses)
    assert [h.rank for h in msg.hypotheses] == list(range(1, len(msg.hypotheses) + 1))
    # plot links use the API's global evidence numbering
    api_plots = {e["plot_url"] for h in answer_public(incident)["hypotheses"] for e in h["evidence"] if e["plot_url"]}
    shown = [u for h in msg.hypotheses for u in h.plot_urls]
    assert shown and all(u.startswith(BASE) and u[len(BASE):] in api_plots for u in shown)
    assert msg.content_hash() == message_from_incident(incident, BASE, FP, "open", "critical").content_hash()
    assert msg.content_hash() != replace(msg, status="updated").content_hash()


def test_message_rejects_bad_arguments(sim):
    with pytest.raises(BadInput):
        message_from_incident(sim[0], BASE, FP, "firing")
    with pytest.raises(BadInput):
        message_from_incident(sim[0], BASE, FP, severity="high")
    with pytest.raises(BadInput):
        message_from_incident(sim[0], BASE, "")


# --- payload shapes -------------------------------------------------------------------------------

def test_slack_blocks(msg):
    p = slack_payload(msg)
    assert p["text"] and len(p["blocks"]) <= 50
    assert p["blocks"][0]["type"] == "header" and p["blocks"][0]["text"]["type"] == "plain_text"
    assert len(p["blocks"][0]["text"]["text"]) <= 150
    text = json.dumps(p["blocks"])
    assert msg.hypotheses[0].root in text and msg.hypotheses[0].evidence[0][:20] in text
    assert msg.incident_url in text and msg.hypotheses[0].plot_urls[0] in text
    actions = [b for b in p["blocks"] if b["type"] == "actions"]
    assert len(actions) == 1
    buttons = actions[0]["elements"]
    ids = [b["action_id"] for b in buttons]
    assert len(set(ids)) == len(ids) and "rca_wrong" in ids and "rca_confirm_1" in ids
    for b in buttons:
        v = json.loads(b["value"])
        assert v["incident"] == msg.incident_id and 1 <= v["rank"] <= len(msg.hypotheses)
    assert all(len(b["text"]["text"]) <= 3000 for b in p["blocks"] if b["type"] == "section")


def test_slack_update_and_resolve_and_escaping(msg):
    prev = DeliveryRecord("slack", msg.incident_id, FP, "open", "x", ((1795200000.0, 200),), True)
    upd = slack_payload(replace(msg, status="updated"), prev)
    assert upd["blocks"][0]["text"]["text"].startswith("Update:")
    assert "2026-11-20 18:40 UTC" in json.dumps(upd["blocks"])  # names the previous message
    res = slack_payload(replace(msg, status="resolved"), prev)
    assert res["text"].startswith("Resolved:") and not [b for b in res["blocks"] if b["type"] == "actions"]
    weird = replace(msg, summary="p99 <5s & rising > 2x")
    sect = json.dumps(slack_payload(weird)["blocks"])
    assert "&lt;5s &amp; rising &gt; 2x" in sect and "<5s" not in sect


def test_teams_card(msg):
    p = teams_payload(msg)
    assert p["type"] == "message"
    att = p["attachments"][0]
    assert att["contentType"] == "application/vnd.microsoft.card.adaptive" and att["contentUrl"] is None
    card = att["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4" and card["$schema"].endswith("adaptive-card.json")
    assert card["body"][0]["type"] == "TextBlock" and card["body"][0]["weight"] == "Bolder"
    assert msg.hypotheses[0].root in json.dumps(card["body"])
    assert card["actions"][0] == {"type": "Action.OpenUrl", "title": "Open incident", "url": msg.incident_url}


def test_pagerduty_trigger_and_resolve(msg):
    key = "R0UT1NGKEY0123456789abcdefABCDEF"
    t = pagerduty_payload(msg, key, source="rca-test")
    assert t["routing_key"] == key and t["event_action"] == "trigger" and t["dedup_key"] == FP
    assert t["payload"]["summary"] == msg.headline and len(t["payload"]["summary"]) <= 1024
    assert t["payload"]["severity"] == "critical" and t["payload"]["source"] == "rca-test"
    assert t["payload"]["component"] == msg.hypotheses[0].root
    assert t["links"][0]["href"] == msg.incident_url
    r = pagerduty_payload(replace(msg, status="resolved"), key)
    assert r == {"routing_key": key, "event_action": "resolve", "dedup_key": FP}


# --- Slack signatures and actions -----------------------------------------------------------------

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def _sign(ts: str, body: bytes, secret: str = SECRET) -> str:
    return "v0=" + hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()


def test_slack_signature():
    body, now = b"payload=%7B%22type%22%3A%22block_actions%22%7D", 1795200000
    ts = str(now - 10)
    verify_slack_signature(SECRET, ts, body, _sign(ts, body), now=now)  # accepted
    bad = [(ts, body, _sign(ts, body, "other-secret")),  # wrong secret
           (ts, body + b"x", _sign(ts, body)),  # tampered body
           (str(now - 301), body, _sign(str(now - 301), body)),  # replay: too old
           (None, body, _sign(ts, body)), (ts, body, None), ("", body, ""),  # missing headers
           ("soon", body, _sign("soon", body))]
    for t, b, s in bad:
        with pytest.raises(SlackSignatureError) as e:
            verify_slack_signature(SECRET, t, b, s, now=now)
        assert e.value.status == 401
    with pytest.raises(SlackSignatureError):
        verify_slack_signature("", ts, body, _sign(ts, body, ""), now=now)


def _click(button: dict, user: str = "alice") -> bytes:
    payload = {"type": "block_actions", "user": {"id": "U1", "username": user}, "response_url": "https://x/y",
               "actions": [{"action_id": button["action_id"], "block_id": "b", "value": button["value"],
                            "type": "button"}]}
    return urlencode({"payload": json.dumps(payload)}).encode()


def test_parse_our_own_buttons(msg):
    buttons = next(b for b in slack_payload(msg)["blocks"] if b["type"] == "actions")["elements"]
    by_id = {b["action_id"]: b for b in buttons}
    a = parse_block_actions(_click(by_id["rca_confirm_1"]))
    assert (a.incident_id, a.action, a.rank, a.user) == (msg.incident_id, "confirm", 1, "alice")
    if len(msg.hypotheses) > 1:
        assert parse_block_actions(_click(by_id["rca_confirm_2"])).rank == 2
    w = parse_block_actions(_click(by_id["rca_wrong"], "bob"))
    assert (w.action, w.rank, w.user) == ("wrong", 1, "bob")
    fb = feedback_of(w, at=5)
    assert (fb.incident_id, fb.verdict, fb.hypothesis_rank, fb.author, fb.at) == (msg.incident_id, "reject", 1,
                                                                                 "slack:bob", 5)
    for junk in (b"", b"payload=notjson", urlencode({"payload": json.dumps({"type": "view_submission"})}).encode(),
                 _click({"action_id": "other", "value": "{}"}),
                 _click({"action_id": "rca_wrong", "value": json.dumps({"incident": "i"})})):
        with pytest.raises(BadInput):
            parse_block_actions(junk)


# --- delivery against a real server ---------------------------------------------------------------

@pytest.mark.integration
def test_down_then_up_delivered_once_and_recorded(msg, capture, client, caplog):
    caplog.set_level(logging.DEBUG)
    sleeps: list[float] = []
    # the endpoint is down for the first attempt and comes up during the first back-off
    slack = SlackNotifier(capture.url, client, policy(sleeps, on_sleep=capture.start))
    log = MemoryDeliveryLog()
    d = Dispatcher([slack], log, min_interval_s=60)
    [res] = d.dispatch(msg)
    assert res.outcome == "sent" and res.record.delivered
    att = res.record.attempts
    assert len(att) == 2 and "ConnectError" in str(att[0].result) and att[1].result == 200
    assert len(sleeps) == 1 and len(capture.bodies) == 1
    assert json.loads(capture.bodies[0])["blocks"][0]["type"] == "header"
    assert log.records == [res.record] and log.last(msg.incident_id, "slack") == res.record
    # never sent twice
    [again] = d.dispatch(msg)
    assert again.outcome == "duplicate" and len(capture.bodies) == 1 and len(log.records) == 1
    # secrets: not in the record, not in any log line (ours or httpx's)
    assert res.record.target == "127.0.0.1/…/xyz9" == redact_target(capture.url)
    assert "SeCrEtToKeN" not in repr(res.record) and "SeCrEtToKeN" not in repr(slack)
    lines = [r.getMessage() for r in caplog.records]
    assert any("HTTP Request: POST" in m and "127.0.0.1/…/xyz9" in m for m in lines)  # httpx's line, redacted
    assert not any("SeCrEtToKeN" in m for m in lines)


@pytest.mark.integration
def test_5xx_and_429_retried_with_retry_after(msg, capture, client):
    capture.start()
    capture.script = [(503, "rollup_error", {}), (429, "rate_limited", {"Retry-After": "2"}), (200, "ok", {})]
    sleeps: list[float] = []
    rec = SlackNotifier(capture.url, client, policy(sleeps)).send(msg, None)
    assert rec.delivered and [a.result for a in rec.attempts] == [503, 429, 200]
    assert len(capture.bodies) == 3 and sleeps[0] <= 0.05 and sleeps[1] == 2.0  # Retry-After honoured


@pytest.mark.integration
def test_4xx_not_retried_and_retried_on_next_dispatch(msg, capture, client):
    capture.start()
    capture.script = [(400, "invalid_blocks", {})]
    sleeps: list[float] = []
    log = MemoryDeliveryLog()
    d = Dispatcher([SlackNotifier(capture.url, client, policy(sleeps))], log, min_interval_s=60)
    [res] = d.dispatch(msg)
    assert res.outcome == "failed" and not res.record.delivered
    assert [a.result for a in res.record.attempts] == [400] and sleeps == [] and len(capture.bodies) == 1
    assert log.records == [res.record] and log.last(msg.incident_id, "slack") is None
    [res2] = d.dispatch(msg)  # a failure is not a delivery: the next dispatch tries again
    assert res2.outcome == "sent" and len(capture.bodies) == 2


@pytest.mark.integration
def test_gives_up_after_attempts_when_down(msg, client):
    sleeps: list[float] = []
    url = f"http://127.0.0.1:{free_port()}/hook"
    rec = TeamsNotifier(url, client, policy(sleeps, attempts=3)).send(msg, None)
    assert not rec.delivered and len(rec.attempts) == 3 and len(sleeps) == 2
    assert all("ConnectError" in str(a.result) for a in rec.attempts)


@pytest.mark.integration
def test_teams_pagerduty_webhook_over_http(msg, capture, client):
    capture.start()
    key = "R0UT1NGKEY0123456789abcdefABCDEF"
    capture.script = [(202, "", {}), (202, json.dumps({"status": "success", "message": "Event processed",
                                                      "dedup_key": FP}), {}), (200, "", {})]
    sleeps: list[float] = []
    teams = TeamsNotifier(capture.url, client, policy(sleeps))
    pd = PagerDutyNotifier(key, client, policy(sleeps), url=f"http://127.0.0.1:{capture.port}/v2/enqueue")
    hook = WebhookNotifier(capture.url, client, policy(sleeps), secret="whsec", headers={"Authorization": "Bearer t0k"})
    recs = [n.send(msg, None) for n in (teams, pd, hook)]
    assert all(r.delivered for r in recs)
    assert json.loads(capture.bodies[0])["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert json.loads(capture.bodies[1])["routing_key"] == key and recs[1].external_id == FP
    assert key not in repr(recs[1]) and recs[1].target.endswith("CDEF")
    h = capture.headers[2]
    assert h["Authorization"] == "Bearer t0k"
    assert h["X-RCA-Signature"] == sign_webhook("whsec", int(h["X-RCA-Timestamp"]), capture.bodies[2])
    doc = json.loads(capture.bodies[2])
    assert doc["event"] == "incident.open" and doc["incident"]["fingerprint"] == FP and doc["previous"] is None


# --- dispatcher rules -----------------------------------------------------------------------------

class Recorder:
    """A notifier that records what it was asked to send (no HTTP)."""

    def __init__(self, name: str, clock) -> None:
        self.name, self.clock, self.sent = name, clock, []

    def send(self, msg: IncidentMessage, previous: DeliveryRecord | None) -> DeliveryRecord:
        self.sent.append((msg.status, msg.content_hash(), previous))
        return DeliveryRecord(self.name, msg.incident_id, msg.fingerprint, msg.status, "mem",
                              ((self.clock(), 200),), True, msg.content_hash())


def test_dispatcher_one_message_per_incident_and_rate_limit(msg):
    now = [1000.0]
    clock = lambda: now[0]  # noqa: E731
    a, b = Recorder("a", clock), Recorder("b", clock)
    assert isinstance(a, Notifier)
    d = Dispatcher([a, b], MemoryDeliveryLog(), min_interval_s=300, clock=clock)
    assert [r.outcome for r in d.dispatch(msg)] == ["sent", "sent"]
    assert [r.outcome for r in d.dispatch(msg)] == ["duplicate", "duplicate"]
    upd = replace(msg, status="updated", summary=msg.summary + " (more evidence)")
    now[0] += 100
    assert [r.outcome for r in d.dispatch(upd)] == ["rate_limited", "rate_limited"]
    now[0] += 250
    assert [r.outcome for r in d.dispatch(upd)] == ["sent", "sent"]
    assert a.sent[1][2] is not None and a.sent[1][2].status == "open"  # the update knows the first message
    assert [r.outcome for r in d.dispatch(upd)] == ["duplicate", "duplicate"]
    now[0] += 1  # resolution is never rate-limited, and goes once
    res = replace(msg, status="resolved")
    assert [r.outcome for r in d.dispatch(res)] == ["sent", "sent"]
    assert [r.outcome for r in d.dispatch(replace(res, summary="x"))] == ["duplicate", "duplicate"]
    assert [s[0] for s in a.sent] == ["open", "updated", "resolved"]
    # another incident is independent of this one's rate limit
    other = replace(msg, incident_id="inc-other", fingerprint="fp-2")
    assert [r.outcome for r in d.dispatch(other)] == ["sent", "sent"] and a.sent[-1][2] is None


def test_null_notifier(msg):
    log = MemoryDeliveryLog()
    null = NullNotifier()
    assert isinstance(null, Notifier)
    rec = null.send(msg, None)
    assert not rec.attempts and not rec.delivered
    assert [r.outcome for r in Dispatcher([null], log).dispatch(msg)] == ["skipped"]
    assert log.records == []
