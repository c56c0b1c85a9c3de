"""Scheduled scans (issue 7, items 1-2): scan jobs from settings, scan runs recorded as
ok / partial / failed, incidents from scans (opened once, updated while they last, resolved when
the anomalies clear), the scheduler (overlapping runs skipped, a raising job survives) and state
that survives a restart."""

from __future__ import annotations

import threading
import time

import pytest

from api.scheduler import ScanScheduler
from connectors.memory import StaticConnector
from rca.errors import BadInput, SourceError
from rca.scan_incidents import fingerprint, open_states
from rca.scan_jobs import ScanJob, ScanRunner, load_scan_jobs
from rca.settings import Settings
from rca.sim import simulate
from rca.store import SqlStore
from rca.types import Health
from rca.wiring import build_engine


class Broken:
    """A source that is down: every fetch is a ``SourceError``."""

    name = "broken"
    series_selector = False

    def fetch(self, window, selector=None):
        raise SourceError(self.name, "connection refused")

    def check(self):
        return Health(self.name, "down", "connection refused")


@pytest.fixture(scope="module")
def fault():
    return simulate("kv_cache_exhaustion", 0)


@pytest.fixture(scope="module")
def clean():
    return simulate("no_fault", 0)


def _runner(url, snapshot, extra=(), **kw):
    store = SqlStore.open(url)
    engine = build_engine(Settings(database_url=url), [StaticConnector(snapshot, "prom"), *extra], store=store)
    return ScanRunner(engine, store, **kw), store


def _wait(cond, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


# ---- jobs from settings ---------------------------------------------------------------------


def test_jobs_load_from_json_and_yaml_and_mistakes_name_job_and_field():
    js = load_scan_jobs('[{"name": "fleet", "trigger": "*/5 * * * *", "window": "30m", "sources": ["prom"]},'
                        ' {"name": "gpu", "trigger": "90s", "selector": "{namespace=\\"serving\\"}"}]')
    assert [j.name for j in js] == ["fleet", "gpu"]
    assert js[0].trigger_kind() == "cron" and js[0].interval_s() == 300 and js[0].sources == ("prom",)
    assert js[1].trigger_kind() == "interval" and js[1].interval_s() == 90 and js[1].window_s == 1800
    ym = load_scan_jobs("- name: nightly\n  trigger: '0 3 * * *'\n  window: 1h\n  baseline: 1d\n  min_level: 0.995\n")
    assert ym == [ScanJob(name="nightly", trigger="0 3 * * *", window="1h", baseline="1d", min_level=0.995)]
    assert load_scan_jobs("") == [] and load_scan_jobs(None) == []
    bad = [
        ('[{"name": "a", "trigger": "every day"}]', "scan job a: trigger"),
        ('[{"name": "a", "trigger": "61 * * * *"}]', "scan job a: trigger"),
        ('[{"name": "a", "trigger": "5m", "window": "soon"}]', "scan job a: window"),
        ('[{"name": "a", "trigger": "5m", "min_level": 2}]', "scan job a: min_level"),
        ('[{"name": "a", "trigger": "5m", "colour": "red"}]', "scan job a: colour"),
        ('[{"name": "a"}]', "scan job a: trigger"),
        ('[{"name": "a", "trigger": "5m"}, {"name": "a", "trigger": "1h"}]', "scan job a: name"),
        ('[{"trigger": "5m"}]', "scan job #1: name"),
        ('{"name": "a"}', "scan_jobs"),
    ]
    for text, field in bad:
        with pytest.raises(BadInput) as e:
            load_scan_jobs(text)
        assert e.value.field == field, (text, e.value.field)


# ---- runs and incidents ---------------------------------------------------------------------


def test_two_jobs_one_source_failing_is_partial_and_a_bad_job_fails_recorded(tmp_path, fault):
    runner, store = _runner(f"sqlite:///{tmp_path}/rca.db", fault.snapshot, extra=[Broken()])
    now = fault.snapshot.window.end
    ok = runner.run(ScanJob("prom-only", sources=("prom",), incidents=False), now=now)
    partial = runner.run(ScanJob("everything", incidents=False), now=now)
    failed = runner.run(ScanJob("nowhere", sources=("nope",)), now=now)
    assert ok["status"] == "ok" and ok["result"]["warnings"] == [] and ok["result"]["anomalies"]
    assert partial["status"] == "partial" and any("broken" in w for w in partial["result"]["warnings"])
    assert partial["result"]["series_scanned"] == ok["result"]["series_scanned"] > 100
    assert failed["status"] == "failed" and "nope" in failed["result"]["error"]
    stored = {s["job"]: s for s in store.list_scans()}
    assert {k: v["status"] for k, v in stored.items()} == {"prom-only": "ok", "everything": "partial",
                                                           "nowhere": "failed"}
    assert all(s["finished_at"] >= s["started_at"] for s in stored.values())


def test_a_fault_opens_one_incident_updated_while_it_lasts_and_resolved_when_clear(tmp_path, fault, clean):
    url = f"sqlite:///{tmp_path}/rca.db"
    heard = []
    runner, store = _runner(url, fault.snapshot, on_change=lambda row, inc, ch: heard.append((ch, row, inc)))
    job = ScanJob("fleet", trigger="5m", window="30m", baseline="3h")
    onset, end = fault.truth.onset, fault.snapshot.window.end

    first = runner.run(job, now=onset + 600)  # the fault began 10 min before
    opened = first["result"]["incidents"]["opened"]
    assert first["status"] == "ok" and len(opened) == 1, first["result"]["incidents"]
    assert opened[0]["root"] == fault.truth.root and opened[0]["category"] == fault.truth.category
    fp, iid = opened[0]["fingerprint"], opened[0]["incident_id"]
    assert fp == fingerprint(fault.truth.root, fault.truth.category)
    incident = store.get_incident(iid)
    assert incident.hypotheses[0].root == fault.truth.root and incident.params["fingerprint"] == fp

    second = runner.run(job, now=end)  # a later window that overlaps the first
    inc2 = second["result"]["incidents"]
    assert inc2["opened"] == [] and [u["incident_id"] for u in inc2["updated"]] == [iid]
    states = open_states(store)
    assert [(s["fingerprint"], s["incident_id"]) for s in states] == [(fp, iid)]
    assert states[0]["window_start"] == onset + 600 - 1800 and states[0]["window_end"] == end
    assert states[0]["detail"]["scans"] == 2
    assert store.get_incident(iid).window.end == end  # re-saved under the same id with the new window
    assert [i.id for i in store.list_incidents()] == [iid]  # no incident per scan: one per fingerprint

    # the fleet is healthy again, but one source is down: no data proves nothing, stays open
    half_blind, _ = _runner(url, clean.snapshot, extra=[Broken()])
    blind = half_blind.run(job, now=clean.snapshot.window.end)
    assert blind["status"] == "partial" and blind["result"]["incidents"]["resolved"] == []
    assert [s["fingerprint"] for s in open_states(store)] == [fp]

    healthy, _ = _runner(url, clean.snapshot, on_change=lambda row, inc, ch: heard.append((ch, row, inc)))
    done = healthy.run(job, now=clean.snapshot.window.end)
    assert done["status"] == "ok" and done["result"]["incidents"]["opened"] == []
    assert [r["incident_id"] for r in done["result"]["incidents"]["resolved"]] == [iid]
    assert open_states(store) == []
    assert [(ch, row["fingerprint"], inc.id) for ch, row, inc in heard] == [
        ("opened", fp, iid), ("updated", fp, iid), ("resolved", fp, iid)]
    assert heard[-1][1]["resolved_at"] is not None


# ---- the scheduler --------------------------------------------------------------------------


class _Blocking:
    """A runner whose first run waits for ``release``; later runs return at once."""

    def __init__(self):
        self.release = threading.Event()
        self.calls = 0

    def run(self, job, now=None):
        self.calls += 1
        if self.calls == 1:
            self.release.wait(20)
        return {"id": f"scan-{self.calls}", "status": "ok", "result": {}}


class _Raising:
    def __init__(self):
        self.calls = 0

    def run(self, job, now=None):
        self.calls += 1
        raise RuntimeError("detector blew up")


def test_an_overlapping_run_is_skipped_not_stacked():
    runner = _Blocking()
    sched = ScanScheduler(runner, [ScanJob("slow", trigger="1s")], first_run_now=True)
    sched.start()
    try:
        assert _wait(lambda: sched.status()[0]["skipped"] >= 1), sched.status()
        assert runner.calls == 1  # the second fire was skipped while the first ran, not queued
        runner.release.set()
        assert _wait(lambda: sched.status()[0]["runs"] >= 2), sched.status()
        st = sched.status()[0]
        assert st["last_status"] == "ok" and st["next_run"] is not None
    finally:
        runner.release.set()
        sched.shutdown(wait=True)
    assert not sched.running


def test_the_scheduler_keeps_running_after_a_job_raises():
    bad, good = _Raising(), _Blocking()
    good.calls = 1  # never blocks
    sched = ScanScheduler(_Dispatch({"bad": bad, "good": good}),
                          [ScanJob("bad", trigger="1s"), ScanJob("good", trigger="1s")], first_run_now=True)
    sched.start()
    try:
        def errors(name: str) -> int:
            return next(s for s in sched.status() if s["name"] == name)["errors"] or 0

        # wait for what the scheduler *reports* (an error is counted after the call returns)
        assert _wait(lambda: errors("bad") >= 2 and good.calls >= 3), (bad.calls, good.calls, sched.status())
        st = {s["name"]: s for s in sched.status()}
        assert sched.running and st["bad"]["errors"] >= 2 and "detector blew up" in st["bad"]["last_error"]
        assert st["good"]["errors"] == 0 and st["good"]["last_status"] == "ok"
    finally:
        sched.shutdown(wait=True)


class _Dispatch:
    def __init__(self, by_name):
        self.by_name = by_name

    def run(self, job, now=None):
        return self.by_name[job.name].run(job, now)


def test_state_survives_a_restart_the_open_incident_is_updated_not_reopened(tmp_path, fault):
    url = f"sqlite:///{tmp_path}/rca.db"
    job = ScanJob("fleet", trigger="1h", window="30m", baseline="3h")
    before, store = _runner(url, fault.snapshot)
    first = before.run(job, now=fault.truth.onset + 600)
    [opened] = first["result"]["incidents"]["opened"]
    store.close()

    # a new process: new store, engine, runner and scheduler on the same database file
    end = fault.snapshot.window.end
    after, store2 = _runner(url, fault.snapshot, clock=lambda: end)
    sched = ScanScheduler(after, [job], first_run_now=True)
    sched.start()
    try:
        assert _wait(lambda: sched.status()[0]["runs"] >= 1, timeout=30), sched.status()
    finally:
        sched.shutdown(wait=True)
    scan = store2.get_scan(sched.status()[0]["last_scan_id"])
    assert scan["status"] == "ok" and scan["result"]["incidents"]["opened"] == []
    assert [u["incident_id"] for u in scan["result"]["incidents"]["updated"]] == [opened["incident_id"]]
    [state] = open_states(store2)
    assert state["incident_id"] == opened["incident_id"] and state["detail"]["scans"] == 2
