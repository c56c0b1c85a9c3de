"""SqlStore, API keys and the OTLP store on a real PostgreSQL (and, for parity, on SQLite): round
trips, replace, paging, idempotent and concurrent feedback, schema versions, scans, keys, and one
REST round trip (``GET /v1/ask`` then ``GET /v1/incidents``) over a PostgreSQL store.

Each PostgreSQL test gets a fresh database of its own (``pg_db_url`` in ``pgserver``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
from concurrent.futures import ThreadPoolExecutor

import pgserver
import pytest
import sqlalchemy as sa
from apiapp import question_at, small_snapshot

from connectors.memory import StaticConnector
from connectors.otlp_store import OtlpStore
from rca.apikeys import create_key, list_keys, revoke_key, verify_key
from rca.engine import AnalysisRequest
from rca.errors import BadInput, NotFound, StoreError
from rca.serialize import to_jsonable
from rca.settings import Settings
from rca.store import SCHEMA_VERSION, SqlStore
from rca.types import Evidence, Feedback, Hypothesis, Incident, LogRecord, SeriesKey, Span, Symptom, Window
from rca.wiring import build_engine

T0 = 1795204320
T0_NS = T0 * 10**9
# the throwaway server's fixtures, under the names the tests ask for
postgres_server, postgres_url, pg_db_url = pgserver.postgres_server, pgserver.postgres_url, pgserver.pg_db_url
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.integration)]


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'rca.db'}"
    return request.getfixturevalue("pg_db_url")


@pytest.fixture()
def store(db_url):
    s = SqlStore.open(db_url)
    yield s
    s.close()


def _incident(iid: str = "", created_at: int = T0, root: str = "service:db-ü") -> Incident:
    ref = {"series": 'cpu{service="db"}', "start": T0, "end": T0 + 60,
           "nested": {"list": [1, 2.5, None, {"deep": ["x", "ключ", "🚀"]}], "big": 2**62, "empty": {}},
           "quote": "it's \"quoted\" \\ back"}
    ev1 = Evidence("metric", root, "cpu at 98% — 東京 ⚠", ref, "anomalous", 9.5)
    ev2 = Evidence("log", root, "no logs", {}, "no_data", float("nan"))
    ev3 = Evidence("trace", root, "inf score", {"trace_ids": ["ab" * 16]}, "anomalous", float("inf"))
    h1 = Hypothesis(root, "resource_cpu", 4.0, float("nan"), (root, "service:checkout"), (ev1, ev2, ev3),
                    checked=("latency",), no_data=("logs",), unknown=("gpu",))
    h2 = Hypothesis("service:checkout", "bad_deploy", float("-inf"), 0.2)
    return Incident(iid, "warum war p99 langsam um 20:00? 🐢", Window(T0, T0 + 3600, 15),
                    Symptom("service:checkout", "latency_p99", SeriesKey.of("lat", service="checkout"),
                            float("nan"), 1.5, "s"),
                    (h1, h2), {"detector": "robust_z", "k": [1, 2], "nan": float("nan"), "ñ": {"a": None}},
                    ("a",), ("b",), "db cpu saturated ✓", created_at)


@functools.lru_cache(maxsize=1)
def _simulated_incident() -> Incident:
    eng = build_engine(Settings(), [StaticConnector(small_snapshot(), name="sim")])
    return eng.analyze(AnalysisRequest(at=question_at(), question="why was p99 slow?"))


# ---- incidents ----------------------------------------------------------------------------------


def test_round_trip_of_a_simulated_incident(store):
    inc = _simulated_incident()
    assert inc.hypotheses and any(h.evidence for h in inc.hypotheses)
    iid = store.save_incident(inc)
    back = store.get_incident(iid)
    assert to_jsonable(back) == to_jsonable(dataclasses.replace(inc, id=iid))


def test_round_trip_keeps_nan_unicode_and_nested_refs(store):
    inc = _incident()
    iid = store.save_incident(inc)
    back = store.get_incident(iid)
    assert to_jsonable(back) == to_jsonable(dataclasses.replace(inc, id=iid))
    h1 = back.hypotheses[0]
    assert math.isnan(h1.confidence) and math.isnan(h1.evidence[1].score)
    assert math.isnan(h1.evidence[2].score)  # inf is not storable: it comes back as NaN, like SQLite
    assert h1.evidence[0].ref["nested"]["list"][3]["deep"] == ["x", "ключ", "🚀"]
    assert h1.evidence[0].ref["nested"]["big"] == 2**62 and h1.evidence[0].ref["quote"] == "it's \"quoted\" \\ back"
    assert back.question == inc.question and back.summary == "db cpu saturated ✓"
    assert back.window == inc.window and math.isnan(back.symptom.baseline) and back.symptom.observed == 1.5
    assert back.symptom.series == inc.symptom.series
    assert back.params["nan"] is None and back.params["ñ"] == {"a": None}


def test_save_again_replaces(store):
    iid = store.save_incident(_incident("inc-fixed000001"))
    store.save_incident(dataclasses.replace(_incident("inc-fixed000001", root="service:cache"), hypotheses=(
        Hypothesis("service:cache", "resource_memory", 2.0, 0.5),)))
    back = store.get_incident(iid)
    assert [h.root for h in back.hypotheses] == ["service:cache"] and back.hypotheses[0].evidence == ()
    assert [i.id for i in store.list_incidents()] == [iid]
    with pytest.raises(NotFound):
        store.get_incident("inc-nope")


def test_list_newest_first_with_cursor(store):
    ids = [store.save_incident(_incident(created_at=T0 + i)) for i in (0, 1, 2, 3, 4)]
    ids.insert(1, store.save_incident(_incident(created_at=T0)))  # tie with the oldest
    ids.append(store.save_incident(_incident(created_at=T0 + 4)))  # tie with the newest
    newest_first = ids[::-1]  # ties: the later insert first
    assert [i.id for i in store.list_incidents()] == newest_first
    pages, before = [], None
    while True:
        page = store.list_incidents(limit=3, before=before)
        if not page:
            break
        pages.append([i.id for i in page])
        before = page[-1].id
    assert [len(p) for p in pages] == [3, 3, 1] and sum(pages, []) == newest_first
    with pytest.raises(NotFound):
        store.list_incidents(before="inc-missing")


def test_text_the_database_cannot_hold_is_bad_input(store):
    # PostgreSQL text cannot hold NUL (SQLite can): a bad value, not a store outage
    inc = dataclasses.replace(_incident(), question="a\x00b")
    if store.engine.dialect.name == "postgresql":
        with pytest.raises(BadInput, match="NUL"):
            store.save_incident(inc)
        assert store.list_incidents() == []
    else:
        assert store.get_incident(store.save_incident(inc)).question == "a\x00b"


# ---- feedback -----------------------------------------------------------------------------------


def test_feedback_is_idempotent(store):
    iid = store.save_incident(_incident())
    fb = Feedback(iid, "confirm", 1, note="ja ✓", author="ana", at=T0 + 10)
    assert store.add_feedback(fb) is True
    assert store.add_feedback(dataclasses.replace(fb, note="again", at=T0 + 99)) is False
    assert store.add_feedback(dataclasses.replace(fb, author="bo")) is True
    other = Feedback(iid, "correct", correct_root="service:cache", correct_category="resource_memory",
                     author="ana", at=T0 + 20)
    assert store.add_feedback(other) is True and store.add_feedback(other) is False
    assert store.list_feedback(iid) == [fb, dataclasses.replace(fb, author="bo"), other]
    with pytest.raises(NotFound):
        store.add_feedback(Feedback("inc-missing", "confirm", 1))


def test_concurrent_writers_of_the_same_verdict(store):
    """Both writers pass the "already stored?" check before either inserts (a barrier holds each
    INSERT), so the second insert hits the unique key: one True, one False, no exception."""
    iid = store.save_incident(_incident())
    fb = Feedback(iid, "reject", 2, author="ana", at=T0 + 5)
    barrier = threading.Barrier(2, timeout=20)
    inserts = []

    def hold(conn, cursor, statement, params, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO FEEDBACK"):
            inserts.append(statement)
            barrier.wait()

    sa.event.listen(store.engine, "before_cursor_execute", hold)
    try:
        with ThreadPoolExecutor(2) as ex:
            results = list(ex.map(lambda _: store.add_feedback(fb), range(2)))
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", hold)
    assert sorted(results) == [False, True] and len(inserts) == 2
    assert store.list_feedback(iid) == [fb]


# ---- schema, scans, ping --------------------------------------------------------------------------


def test_schema_version_recorded_and_newer_db_refused(db_url):
    s = SqlStore.open(db_url)
    assert s.migrate() == SCHEMA_VERSION  # idempotent
    s.close()
    eng = sa.create_engine(db_url)
    try:
        with eng.begin() as c:
            assert c.execute(sa.text("select version from schema_version")).scalars().all() == [SCHEMA_VERSION]
            assert {"incidents", "hypotheses", "evidence", "feedback", "api_keys", "scans"} <= set(
                sa.inspect(c).get_table_names())
            c.execute(sa.text("update schema_version set version = :v"), {"v": SCHEMA_VERSION + 5})
    finally:
        eng.dispose()
    with pytest.raises(StoreError, match=rf"version {SCHEMA_VERSION + 5}.*version {SCHEMA_VERSION}"):
        SqlStore.open(db_url)


@pytest.mark.integration
def test_replicas_starting_together_share_one_schema(pg_db_url):
    """Several replicas (here threads with stores of their own) opening an empty PostgreSQL
    database at once: each creates or finds the schema, none fails, they see each other's writes."""
    db_url = pg_db_url
    def start(_: int) -> tuple[SqlStore, OtlpStore]:
        return SqlStore.open(db_url), OtlpStore.open(db_url)

    with ThreadPoolExecutor(4) as ex:
        replicas = list(ex.map(start, range(4)))
    try:
        iid = replicas[0][0].save_incident(_incident())
        assert [r.get_incident(iid).summary for r, _ in replicas[1:]] == ["db cpu saturated ✓"] * 3
        assert replicas[1][1].add_spans([_span(1, T0_NS)]) == 1
        assert replicas[2][1].counts() == {"spans": 1, "logs": 0}
    finally:
        for r, o in replicas:
            r.close()
            o.close()


@pytest.mark.integration
def test_session_database_is_shared(postgres_url):
    s = SqlStore.open(postgres_url)
    try:
        s.ping()
        assert s.engine.dialect.name == "postgresql" and s.engine.url.database == "rca"
    finally:
        s.close()


def test_scans_save_get_list(store):
    ids = []
    for i in range(5):
        ids.append(store.save_scan({"job": "nightly", "status": "running", "started_at": T0 + i,
                                    "params": {"window": "30m", "nan": float("nan")}}))
    done = {"id": ids[2], "job": "nightly", "status": "ok", "started_at": T0 + 2, "finished_at": T0 + 60,
            "params": {"window": "30m"}, "result": {"anomalies": [{"entity": "service:ü", "score": 3.5}],
                                                    "warnings": []}}
    assert store.save_scan(done) == ids[2]
    assert store.get_scan(ids[2]) == done
    assert store.get_scan(ids[0])["params"] == {"window": "30m", "nan": None}
    page1 = store.list_scans(limit=2)
    page2 = store.list_scans(limit=2, before=page1[-1]["id"])
    page3 = store.list_scans(limit=2, before=page2[-1]["id"])
    assert [s["id"] for s in page1 + page2 + page3] == ids[::-1]
    with pytest.raises(NotFound):
        store.get_scan("scan-nope")


def test_ping(store):
    store.ping()


@pytest.mark.integration
def test_ping_of_a_stopped_database_is_store_error(pg_db_url):
    s = SqlStore.open(pg_db_url)
    s.ping()
    admin = pg_db_url.rsplit("/", 1)[0] + "/postgres"
    pgserver._admin(admin, f'DROP DATABASE "{pg_db_url.rsplit("/", 1)[1]}" WITH (FORCE)')
    with pytest.raises(StoreError):
        s.ping()
    s.close()


# ---- API keys -------------------------------------------------------------------------------------


def test_api_keys_create_verify_revoke_list(store):
    k_read, plain_read = create_key(store, "read", "ci-reader ü")
    k_admin, plain_admin = create_key(store, "admin")
    assert verify_key(store, plain_read) == dataclasses.replace(k_read, last_used_at=None)
    assert verify_key(store, plain_read).allows("read") and not verify_key(store, plain_read).allows("write")
    assert verify_key(store, plain_admin).allows("write")
    assert verify_key(store, plain_read[:-1] + ("A" if plain_read[-1] != "A" else "B")) is None
    assert {k.id for k in list_keys(store)} == {k_read.id, k_admin.id}
    touched = {k.id: k.last_used_at for k in list_keys(store)}
    assert all(t is not None for t in touched.values())  # verify recorded the use
    revoked = revoke_key(store, plain_read)
    assert revoked.revoked_at is not None and revoke_key(store, k_read.id).revoked_at == revoked.revoked_at
    assert verify_key(store, plain_read) is None
    assert [k.id for k in list_keys(store, include_revoked=False)] == [k_admin.id]
    with pytest.raises(NotFound):
        revoke_key(store, "deadbeef")
    with pytest.raises(BadInput):
        create_key(store, "root")


# ---- OTLP store -----------------------------------------------------------------------------------


def _span(i: int, start_ns: int, service: str = "checkout", name: str = "op") -> Span:
    return Span(f"{i + 1:032x}", f"{i + 1:016x}", None, service, name, start_ns, start_ns + 1000,
                attributes={"n": i, "ü": "🚀", "nan": float("nan"), "b": b"\x00\x01"},
                resource={"service.name": service})


@pytest.fixture()
def otlp(db_url):
    s = OtlpStore.open(db_url)
    yield s
    s.close()


def test_otlp_spans_logs_duplicates_windows_purge(otlp):
    spans = [_span(i, T0_NS + i * 10**9) for i in range(10)]
    assert otlp.add_spans(spans[:6]) == 6
    retry = [dataclasses.replace(s, name="retry") for s in spans[:6]]
    assert otlp.add_spans(retry + spans[6:]) == 4  # duplicates ignored, only the new counted
    assert otlp.add_spans(retry) == 0
    got = otlp.spans(Window(T0, T0 + 9, 1))
    assert [s.span_id for s in got] == [s.span_id for s in spans] and {s.name for s in got} == {"op"}
    assert math.isnan(got[0].attributes.pop("nan"))  # stored as the NaN token Python's json reads
    assert got[0].attributes == {"n": 0, "ü": "🚀", "b": "AAE="}
    assert got[0].resource == {"service.name": "checkout"}
    assert [s.span_id for s in otlp.spans(Window(T0 + 2, T0 + 4, 1))] == [s.span_id for s in spans[2:5]]
    assert otlp.spans(Window(T0, T0 + 9, 1), service="nope") == []
    assert [s.span_id for s in otlp.trace(spans[3].trace_id.upper())] == [spans[3].span_id]

    logs = [LogRecord(T0_NS + i * 10**9, "service:checkout", "ERROR" if i % 2 else "INFO", f"line {i} ✓",
                      spans[i].trace_id, spans[i].span_id, {"i": i}) for i in range(10)]
    logs.append(LogRecord(T0_NS, "service:db", "WARN", "same ts, later arrival"))
    assert otlp.add_logs(logs) == 11
    assert otlp.add_logs(logs[:1]) == 1  # logs have no identity: appended
    assert [r.body for r in otlp.logs(Window(T0, T0, 1))] == ["line 0 ✓", "same ts, later arrival", "line 0 ✓"]
    assert len(otlp.logs(Window(T0, T0 + 9, 1), severity="error")) == 5
    assert otlp.logs(Window(T0, T0 + 9, 1), trace_id=spans[3].trace_id)[0].attributes == {"i": 3}
    assert otlp.counts() == {"spans": 10, "logs": 12}

    assert otlp.purge(older_than_s=5, now=T0 + 9) == {"spans": 4, "logs": 6}
    assert otlp.counts() == {"spans": 6, "logs": 6}
    assert [s.span_id for s in otlp.spans(Window(T0, T0 + 9, 1))] == [s.span_id for s in spans[4:]]


def test_otlp_values_the_store_cannot_keep_are_bad_input(otlp):
    with pytest.raises(BadInput):
        otlp.add_spans([dataclasses.replace(_span(1, T0_NS), name="\ud800")])
    with pytest.raises(BadInput):
        otlp.add_spans([dataclasses.replace(_span(2, T0_NS), end_ns=2**64 - 1)])
    if otlp.engine.dialect.name == "postgresql":  # SQLite keeps NUL in text
        with pytest.raises(BadInput, match="NUL"):
            otlp.add_logs([LogRecord(T0_NS, "service:x", "INFO", "a\x00b")])
    assert otlp.counts()["spans"] == 0


# ---- REST API over PostgreSQL ----------------------------------------------------------------------


@pytest.mark.integration
def test_api_ask_then_list_over_postgres(pg_db_url):
    from fastapi.testclient import TestClient

    from api import create_app
    from rca.serialize import rfc3339

    settings = Settings(database_url=pg_db_url)
    eng = build_engine(settings, [StaticConnector(small_snapshot(), name="sim")])
    app = create_app(eng, settings)
    assert eng.store.engine.dialect.name == "postgresql"
    _, key = create_key(eng.store, "read", "e2e")
    auth = {"Authorization": f"Bearer {key}"}
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/v1/ask", params={"q": "why was p99 slow at 19:20",
                                         "now": rfc3339(small_snapshot().window.end)}, headers=auth)
        assert r.status_code == 200, r.text
        iid = r.json()["incident_id"]
        listed = client.get("/v1/incidents", headers=auth)
        assert listed.status_code == 200, listed.text
        assert iid in listed.text
        got = client.get(f"/v1/incidents/{iid}", headers=auth)
        assert got.status_code == 200 and got.json()["incident_id"] == iid
    assert eng.store.get_incident(iid).id == iid
    eng.store.close()


# ---- learned re-ranker versions ---------------------------------------------------------------


def test_ranker_versions_activate_and_roll_back(store):
    w = {"kind": "pairwise_logistic", "format": 1, "features": ["x"], "mean": [0.0], "scale": [1.0], "coef": [1.5],
         "C": 1.0, "n_incidents": 30}
    v1 = store.save_model("pairwise_logistic", w, {"base": {"ac_at_1": 0.5}}, activate=True, note="first")
    v2 = store.save_model("pairwise_logistic", w, {"base": {"ac_at_1": 0.6}}, activate=False)
    v3 = store.save_model("pairwise_logistic", w, {}, activate=True)
    assert (v1, v2, v3) == (1, 2, 3)
    assert [(m["version"], m["status"]) for m in store.list_models()] == [(3, "active"), (2, "rejected"), (1, "retired")]
    assert "weights" not in store.list_models()[0] and store.get_model(1)["weights"] == w
    assert store.activate_model(1) == 3 and store.active_model()["version"] == 1
    assert store.activate_model(None) == 1 and store.active_model() is None
    with pytest.raises(NotFound):
        store.activate_model(42)
    with pytest.raises(NotFound):
        store.get_model(42)
