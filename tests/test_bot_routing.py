"""Notification routing (api/bot/routing.py) and the bot's redelivery pass (never lost, never twice).

Unit tests pin the route semantics with an injected ``now``; the in-process tests run the app's
real worker thread (TestClient runs the lifespan) over the small simulated snapshot.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from amserver import CaptureServer
from apiapp import make_app, question_at
from fastapi.testclient import TestClient

from api.bot.notifiers import Attempt, DeliveryRecord, Dispatcher, IncidentMessage, MemoryDeliveryLog
from api.bot.routing import QUIET, Router, dispatch_routed, load_routes, scan_labels
from rca.errors import BadInput
from rca.serialize import rfc3339
from rca.store_schema import alert_queue, deliveries


class Recorder:
    """A notifier that keeps what it was sent; the first ``fail_first`` sends fail."""

    def __init__(self, name: str, fail_first: int = 0) -> None:
        self.name = name
        self.fail_first = fail_first
        self.calls = 0
        self.messages: list[IncidentMessage] = []

    def send(self, msg: IncidentMessage, previous: DeliveryRecord | None) -> DeliveryRecord:
        self.calls += 1
        ok = self.calls > self.fail_first
        if ok:
            self.messages.append(msg)
        return DeliveryRecord(self.name, msg.incident_id, msg.fingerprint, msg.status, "memory",
                              (Attempt(time.time(), 200 if ok else 503),), ok, msg.content_hash())


def _msg(severity: str = "error", status: str = "open", incident_id: str = "inc-1") -> IncidentMessage:
    return IncidentMessage(incident_id, "fp-1", status, "p99 of service:api: likely pod:x", "", (), "http://x",
                           severity)


def _router(routes: str, *names: str, default: float = 0.0) -> Router:
    return Router(load_routes(routes), {n: Recorder(n) for n in names}, default).check()


def _names(t) -> tuple[list[str], list[str]]:
    return [n.name for n in t.notifiers], [n.name for n in t.held]


def _utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


NOON = _utc(2026, 6, 1, 12, 0)

# ---- matching --------------------------------------------------------------------------------


def test_no_routes_means_every_notifier_above_the_default_confidence():
    r = _router("", "slack", "pagerduty", default=0.5)
    assert _names(r.targets(_msg(), {}, 0.7, NOON)) == (["slack", "pagerduty"], [])
    low = r.targets(_msg(), {}, 0.2, NOON)
    assert _names(low) == ([], []) and "0.20 < 0.50" in low.reason
    assert _names(r.targets(_msg(status="resolved"), {}, 0.2, NOON))[0] == ["slack", "pagerduty"]


def test_exact_regex_and_severity_matchers():
    r = _router("""
- match: {team: ml, service: "~vllm-.*"}
  notifiers: [pagerduty]
- match: {severity: critical}
  notifiers: [teams]
- match: {}
  notifiers: [slack]
""", "slack", "pagerduty", "teams")
    assert _names(r.targets(_msg(), {"team": "ml", "service": "vllm-llama"}, 0.9, NOON))[0] == ["pagerduty"]
    # regex is anchored on the whole value; a missing label is ""
    assert _names(r.targets(_msg(), {"team": "ml", "service": "my-vllm-x"}, 0.9, NOON))[0] == ["slack"]
    assert _names(r.targets(_msg(), {"service": "vllm-llama"}, 0.9, NOON))[0] == ["slack"]
    assert _names(r.targets(_msg(), {"team": "mlops", "service": "vllm-a"}, 0.9, NOON))[0] == ["slack"]
    # severity comes from the message, not from a label that says otherwise
    assert _names(r.targets(_msg("critical"), {"severity": "info"}, 0.9, NOON))[0] == ["teams"]
    assert _names(r.targets(_msg("warning"), {"severity": "critical"}, 0.9, NOON))[0] == ["slack"]


def test_continue_keeps_matching_and_without_it_the_first_match_wins():
    text = """[{"match": {"team": "ml"}, "notifiers": ["pagerduty"], "continue": %s},
               {"match": {"source": "alert"}, "notifiers": ["slack", "pagerduty"]},
               {"match": {}, "notifiers": ["teams"]}]"""
    cont = _router(text % "true", "slack", "pagerduty", "teams")
    stop = _router(text % "false", "slack", "pagerduty", "teams")
    labels = {"team": "ml", "source": "alert"}
    assert _names(cont.targets(_msg(), labels, 1.0, NOON))[0] == ["pagerduty", "slack"]  # each once
    assert _names(stop.targets(_msg(), labels, 1.0, NOON))[0] == ["pagerduty"]
    assert _names(cont.targets(_msg(), {"team": "ml", "source": "scan"}, 1.0, NOON))[0] == ["pagerduty", "teams"]
    nothing = _router('[{"match": {"team": "ml"}, "notifiers": ["slack"]}]', "slack")
    t = nothing.targets(_msg(), {"team": "web"}, 1.0, NOON)
    assert _names(t) == ([], []) and t.reason == "no route matched"


def test_min_confidence_per_route_passes_the_incident_on():
    r = _router("""
- {match: {team: ml}, notifiers: [pagerduty], min_confidence: 0.8}
- {match: {}, notifiers: [slack]}
""", "slack", "pagerduty", default=0.3)
    assert _names(r.targets(_msg(), {"team": "ml"}, 0.9, NOON))[0] == ["pagerduty"]
    t = r.targets(_msg(), {"team": "ml"}, 0.5, NOON)
    assert _names(t)[0] == ["slack"] and "route 0 skipped" in t.reason
    assert _names(r.targets(_msg(), {"team": "ml"}, 0.1, NOON))[0] == []  # below the default too
    assert _names(r.targets(_msg(), {"team": "ml"}, float("nan"), NOON))[0] == []
    assert _names(r.targets(_msg(status="resolved"), {"team": "ml"}, 0.1, NOON))[0] == ["pagerduty"]


# ---- quiet hours -----------------------------------------------------------------------------

PARIS = '[{"match": {}, "notifiers": ["slack"], "quiet_hours": "22:00-07:00 Europe/Paris"}]'


@pytest.mark.parametrize(("when", "quiet"), [
    (_utc(2026, 3, 28, 20, 30), False),  # 21:30 CET
    (_utc(2026, 3, 28, 21, 30), True),   # 22:30 CET
    (_utc(2026, 3, 28, 23, 30), True),   # 00:30 CET, after midnight
    (_utc(2026, 3, 29, 4, 30), True),    # 06:30 CEST: clocks went forward at 01:00 UTC
    (_utc(2026, 3, 29, 5, 30), False),   # 07:30 CEST (a fixed +01:00 would still say quiet)
    (_utc(2026, 10, 25, 5, 30), True),   # 06:30 CET: clocks went back that night
    (_utc(2026, 10, 25, 6, 0), False),   # 07:00 CET, the end is exclusive
])
def test_quiet_hours_cross_midnight_in_a_named_zone(when, quiet):
    r = _router(PARIS, "slack")
    t = r.targets(_msg("warning"), {}, 1.0, when)
    assert _names(t) == (([], ["slack"]) if quiet else (["slack"], []))
    assert _names(r.targets(_msg("critical"), {}, 1.0, when)) == (["slack"], [])  # critical always goes


def test_held_messages_are_recorded_once_and_never_sent_twice():
    slack = Recorder("slack")
    router = Router(load_routes(PARIS), {"slack": slack}, 0.0).check()
    dlog = MemoryDeliveryLog()
    d = Dispatcher([slack], dlog, min_interval_s=0)
    night, morning = _utc(2026, 6, 1, 23, 0), _utc(2026, 6, 2, 6, 0)
    for _ in range(3):
        res, reason = dispatch_routed(d, router, _msg("warning"), {}, 1.0, night)
        assert [r.outcome for r in res] == [QUIET] and "quiet hours" in reason
    assert slack.messages == [] and [(r.delivered, r.attempts[0].result) for r in dlog.records] == [(False, QUIET)]
    res, _ = dispatch_routed(d, router, _msg("warning"), {}, 1.0, morning)
    assert [r.outcome for r in res] == ["sent"]
    res, _ = dispatch_routed(d, router, _msg("warning"), {}, 1.0, morning + 60)
    assert [r.outcome for r in res] == ["duplicate"] and len(slack.messages) == 1
    res, _ = dispatch_routed(d, router, _msg("warning"), {}, 1.0, night + 86400)  # held again? no: duplicate
    assert [r.outcome for r in res] == ["duplicate"] and len(dlog.records) == 2


def test_scan_labels_route_like_alert_labels():
    r = _router('[{"match": {"service": "~vllm-.*", "source": "scan"}, "notifiers": ["slack"]}]', "slack")
    labels = scan_labels("service:vllm-llama", "saturation")
    assert labels == {"source": "scan", "entity": "service:vllm-llama", "category": "saturation",
                      "service": "vllm-llama"}
    assert _names(r.targets(_msg(), labels, 1.0, NOON))[0] == ["slack"]
    assert _names(r.targets(_msg(), scan_labels("pod:vllm-1", "x"), 1.0, NOON))[0] == []


# ---- loading ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "field"), [
    ("{not: [valid", "notify_routes"),
    ('{"match": {}}', "notify_routes"),
    ('[{"match": {}, "notifiers": []}]', "routes[0].notifiers"),
    ('[{"match": {}, "notifiers": ["slack"]}, {"match": ["team"], "notifiers": ["slack"]}]', "routes[1].match"),
    ('[{"match": {"service": "~vllm-("}, "notifiers": ["slack"]}]', "routes[0].match.service"),
    ('[{"match": {}, "notifiers": ["slack"], "min_confidence": 1.5}]', "routes[0].min_confidence"),
    ('[{"match": {}, "notifiers": ["slack"], "quiet_hours": "22-07"}]', "routes[0].quiet_hours"),
    ('[{"match": {}, "notifiers": ["slack"], "quiet_hours": "22:00-07:00 Mars/Olympus"}]', "routes[0].quiet_hours"),
    ('[{"match": {}, "notifiers": ["slack"], "continue": "yes"}]', "routes[0].continue"),
    ('[{"match": {}, "notifiers": ["slack"], "recievers": ["x"]}]', "routes[0].recievers"),
])
def test_load_errors_name_the_route_and_field(text, field):
    with pytest.raises(BadInput) as e:
        load_routes(text)
    assert e.value.field == field


def test_unknown_notifier_names_fail_at_start(tmp_path):
    with pytest.raises(BadInput) as e:
        _router('[{"match": {}, "notifiers": ["slack"]}, {"match": {}, "notifiers": ["pager"]}]', "slack")
    assert e.value.field == "routes[1].notifiers" and "pager" in str(e.value)
    a = make_app(tmp_path, notify_routes='[{"match": {}, "notifiers": ["pagerduty"]}]', bot_worker=False)
    with pytest.raises(BadInput), TestClient(a.app):
        pass


# ---- through the app's worker ----------------------------------------------------------------

def _wait(cond: Callable[[], object], timeout_s: float = 30.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if got := cond():
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


def _rows(engine: sa.Engine, table: sa.Table) -> list:
    with engine.connect() as c:
        return list(c.execute(sa.select(table).order_by(table.c.seq)))


def _alert(group: str, fp: str, **labels: str) -> dict:
    labels = {"alertname": "HighP99Latency", "service": "api-gateway", **labels}
    alert = {"status": "firing", "labels": labels, "annotations": {}, "startsAt": rfc3339(question_at()),
             "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": fp}
    return {"version": "4", "groupKey": group, "truncatedAlerts": 0, "status": "firing", "receiver": "engine",
            "groupLabels": {"alertname": labels["alertname"]}, "commonLabels": labels, "commonAnnotations": {},
            "externalURL": "http://am.local", "alerts": [alert]}


def _app(tmp_path, notifiers: list | None = None, **settings):
    a = make_app(tmp_path, bot_poll_s=0.05, notify_retry_base_s=0.05, bot_retry_base_s=0.05, **settings)
    if notifiers is not None:
        a.app.state.rca.extras["notifiers"] = notifiers
    return a


def _done(a) -> bool:
    rows = _rows(a.store.engine, alert_queue)
    return bool(rows) and all(q.state == "done" for q in rows)


def test_an_ml_alert_reaches_only_the_routed_notifier(tmp_path):
    slack, pd = Recorder("slack"), Recorder("pagerduty")
    routes = '[{"match": {"team": "ml"}, "notifiers": ["pagerduty"]}, {"match": {}, "notifiers": ["slack"]}]'
    a = _app(tmp_path, [slack, pd], notify_routes=routes)
    with TestClient(a.app) as c:
        r = c.post("/v1/alerts/alertmanager", json=_alert('{}:{team="ml"}', "00000000000000a1", team="ml"),
                   headers=a.headers())
        assert r.status_code == 202
        _wait(lambda: _done(a), 30, "the ml alert")
        assert len(pd.messages) == 1 and slack.messages == []
        r = c.post("/v1/alerts/alertmanager", json=_alert('{}:{team="web"}', "00000000000000b2", team="web"),
                   headers=a.headers())
        _wait(lambda: _done(a) and len(_rows(a.store.engine, alert_queue)) == 2, 30, "the web alert")
    assert len(pd.messages) == 1 and len(slack.messages) == 1
    assert pd.messages[0].fingerprint != slack.messages[0].fingerprint  # two alert groups
    assert {(d.notifier, d.delivered) for d in _rows(a.store.engine, deliveries)} == {("pagerduty", True),
                                                                                       ("slack", True)}


def test_a_failed_first_delivery_is_redelivered_exactly_once(tmp_path):
    with CaptureServer(fail_first=1) as server:
        a = _app(tmp_path, slack_webhook_url=server.url + "/services/T/B/tok3n", notify_retry_attempts=1,
                 notify_redeliver_s=0.2)
        with TestClient(a.app) as c:
            assert c.post("/v1/alerts/alertmanager", json=_alert("g", "00000000000000c3"),
                          headers=a.headers()).status_code == 202
            _wait(lambda: server.delivered(), 30, "the redelivered message")
            worker = a.app.state.rca.extras["bot_worker"]
            _wait(lambda: not worker.pending(), 10, "nothing pending")
            time.sleep(0.6)  # a few more redelivery passes: none may send again
        assert len(server.requests) == 2 and len(server.delivered()) == 1
        recs = _rows(a.store.engine, deliveries)
        assert [(d.status, d.delivered, [att[1] for att in d.attempts]) for d in recs] == [
            ("open", False, [503]), ("open", True, [200])]
        assert worker.pending() == {} and worker.redeliver() == 0


def test_a_message_held_by_quiet_hours_goes_out_when_they_end(tmp_path):
    h = datetime.now(UTC).hour
    quiet = f"{(h - 1) % 24:02d}:00-{(h + 2) % 24:02d}:00 UTC"  # the real now is inside
    slack = Recorder("slack")
    routes = f'[{{"match": {{}}, "notifiers": ["slack"], "quiet_hours": "{quiet}"}}]'
    a = _app(tmp_path, [slack], notify_routes=routes, notify_redeliver_s=3600)
    with TestClient(a.app) as c:
        assert c.post("/v1/alerts/alertmanager", json=_alert("q", "00000000000000d4", severity="warning"),
                      headers=a.headers()).status_code == 202
        _wait(lambda: _done(a), 30, "the analysis")
        worker = a.app.state.rca.extras["bot_worker"]
        assert slack.messages == []
        (held,) = _rows(a.store.engine, deliveries)
        assert not held.delivered and held.attempts[0][1] == QUIET
        assert worker.redeliver(time.time()) == 0 and slack.messages == []  # still quiet
        later = time.time() + 4 * 3600
        assert worker.redeliver(later) == 1
        assert worker.redeliver(later + 60) == 0 and worker.pending(later + 60) == {}
    assert [(m.status, m.severity) for m in slack.messages] == [("open", "warning")]
