"""SqlStore on SQLite files: round trips, replace, paging, idempotent feedback, schema versions."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest
import sqlalchemy as sa

from rca.errors import BadInput, NotFound, StoreError
from rca.protocols import Store
from rca.serialize import to_jsonable
from rca.store import SCHEMA_VERSION, SqlStore, default_database_url
from rca.types import Evidence, Feedback, Hypothesis, Incident, SeriesKey, Symptom, Window

T0 = 1795204320


def _incident(iid: str = "", created_at: int = T0, root: str = "service:db") -> Incident:
    ev1 = Evidence("metric", root, "cpu at 98%", {"series": 'cpu{service="db"}', "start": T0, "end": T0 + 60},
                   "anomalous", 9.5)
    ev2 = Evidence("log", root, "no logs", {}, "no_data", float("nan"))
    h1 = Hypothesis(root, "resource_cpu", 4.0, 0.9, (root, "service:checkout"), (ev1, ev2),
                    checked=("latency",), no_data=("logs",), unknown=("gpu",))
    h2 = Hypothesis("service:checkout", "bad_deploy", 1.0, 0.2)
    return Incident(iid, "why was p99 slow at 20:00?", Window(T0, T0 + 3600, 15),
                    Symptom("service:checkout", "latency_p99", SeriesKey.of("lat", service="checkout"), 0.2, 1.5, "s"),
                    (h1, h2), {"detector": "robust_z", "k": [1, 2]}, ("a",), ("b",), "db cpu saturated", created_at)


@pytest.fixture()
def store(tmp_path):
    s = SqlStore.open(f"sqlite:///{tmp_path / 'deep' / 'dir' / 'rca.db'}")
    yield s
    s.close()


def test_is_a_store_and_creates_parent_dir(tmp_path):
    s = SqlStore(f"sqlite:///{tmp_path / 'a' / 'b' / 'rca.db'}")
    assert not (tmp_path / "a").exists()  # constructor does no I/O
    assert isinstance(s, Store)
    s.migrate()
    assert (tmp_path / "a" / "b" / "rca.db").is_file()
    s.close()


def test_save_and_get_round_trip(store):
    inc = _incident()
    iid = store.save_incident(inc)
    assert re.fullmatch(r"inc-[0-9a-f]{12}", iid)
    back = store.get_incident(iid)
    assert back.id == iid
    assert math.isnan(back.hypotheses[0].evidence[1].score)
    assert to_jsonable(back) == to_jsonable(dataclasses.replace(inc, id=iid))
    assert back.hypotheses[0].evidence[0].ref["series"] == 'cpu{service="db"}'
    assert back.symptom == inc.symptom and back.window == inc.window


def test_save_again_replaces(store):
    iid = store.save_incident(_incident("inc-fixed000001"))
    assert iid == "inc-fixed000001"
    store.save_incident(dataclasses.replace(_incident("inc-fixed000001", root="service:cache"), hypotheses=(
        Hypothesis("service:cache", "resource_memory", 2.0, 0.5),)))
    back = store.get_incident(iid)
    assert [h.root for h in back.hypotheses] == ["service:cache"]
    assert back.hypotheses[0].evidence == ()
    assert len(store.list_incidents()) == 1


def test_get_missing_raises_not_found(store):
    with pytest.raises(NotFound) as e:
        store.get_incident("inc-nope")
    assert e.value.field == "incident_id"


def test_list_newest_first_with_cursor(store):
    ids = [store.save_incident(_incident(created_at=T0 + i)) for i in range(5)]
    # same created_at as the newest: insertion order breaks the tie
    ids.append(store.save_incident(_incident(created_at=T0 + 4)))
    newest_first = ids[::-1]
    assert [i.id for i in store.list_incidents()] == newest_first
    page1 = store.list_incidents(limit=2)
    page2 = store.list_incidents(limit=2, before=page1[-1].id)
    page3 = store.list_incidents(limit=2, before=page2[-1].id)
    page4 = store.list_incidents(limit=2, before=page3[-1].id)
    assert [i.id for i in page1 + page2 + page3] == newest_first
    assert page4 == []
    assert page1[0].hypotheses[0].evidence[0].summary == "cpu at 98%"
    with pytest.raises(NotFound) as e:
        store.list_incidents(before="inc-missing")
    assert e.value.field == "before"
    with pytest.raises(BadInput):
        store.list_incidents(limit=0)


def test_feedback_is_idempotent(store):
    iid = store.save_incident(_incident())
    fb = Feedback(iid, "confirm", 1, note="yes", author="ana", at=T0 + 10)
    assert store.add_feedback(fb) is True
    assert store.add_feedback(dataclasses.replace(fb, note="again", at=T0 + 99)) is False
    assert store.add_feedback(dataclasses.replace(fb, author="bo")) is True
    other = Feedback(iid, "correct", correct_root="service:cache", correct_category="resource_memory",
                     author="ana", at=T0 + 20)
    assert store.add_feedback(other) is True
    assert store.add_feedback(other) is False
    got = store.list_feedback(iid)
    assert got == [fb, dataclasses.replace(fb, author="bo"), other]
    assert store.list_feedback("inc-other") == []
    assert len(store.list_feedback()) == 3


def test_feedback_validation(store):
    iid = store.save_incident(_incident())
    with pytest.raises(NotFound) as e:
        store.add_feedback(Feedback("inc-missing", "confirm", 1))
    assert e.value.field == "incident_id"
    with pytest.raises(BadInput) as e:
        store.add_feedback(Feedback(iid, "confirm"))
    assert e.value.field == "hypothesis_rank"
    with pytest.raises(BadInput) as e:
        store.add_feedback(Feedback(iid, "correct"))
    assert e.value.field == "correct_root"


def test_survives_reopen_and_lazy_connection(tmp_path):
    url = f"sqlite:///{tmp_path / 'rca.db'}"
    s1 = SqlStore(url)
    iid = s1.save_incident(_incident())  # lazy: first use migrates
    s1.close()
    s2 = SqlStore.open(url)
    assert s2.get_incident(iid).summary == "db cpu saturated"
    assert s2.migrate() == SCHEMA_VERSION  # idempotent
    s2.close()


def test_schema_version_recorded_and_newer_db_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'rca.db'}"
    SqlStore.open(url).close()
    eng = sa.create_engine(url)
    with eng.begin() as c:
        assert c.execute(sa.text("select version from schema_version")).scalar() == SCHEMA_VERSION
        assert {"incidents", "hypotheses", "evidence", "feedback"} <= set(sa.inspect(c).get_table_names())
        c.execute(sa.text("update schema_version set version = :v"), {"v": SCHEMA_VERSION + 5})
    eng.dispose()
    with pytest.raises(StoreError, match=rf"version {SCHEMA_VERSION + 5}.*version {SCHEMA_VERSION}"):
        SqlStore.open(url)


def test_in_memory_sqlite_works():
    s = SqlStore.open("sqlite://")
    iid = s.save_incident(_incident())
    assert s.get_incident(iid).id == iid
    s.close()


def test_bad_url_is_bad_input():
    with pytest.raises(BadInput) as e:
        SqlStore("not a url").migrate()
    assert e.value.field == "database_url"


def test_default_database_url(monkeypatch, tmp_path):
    monkeypatch.setenv("RCA_DATABASE_URL", "postgresql://u@h/db")
    assert default_database_url() == "postgresql://u@h/db"
    monkeypatch.delenv("RCA_DATABASE_URL")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_database_url() == f"sqlite:///{tmp_path}/rca/rca.db"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_database_url().endswith("/.local/share/rca/rca.db")


def test_json_columns_hold_no_pickle(tmp_path):
    url = f"sqlite:///{tmp_path / 'rca.db'}"
    s = SqlStore.open(url)
    iid = s.save_incident(_incident())
    s.close()
    eng = sa.create_engine(url)
    with eng.connect() as c:
        window, params = c.execute(sa.text("select window, params from incidents where id = :i"), {"i": iid}).one()
    eng.dispose()
    assert '"2026-11-20T19:52:00Z"' in window and '"robust_z"' in params
