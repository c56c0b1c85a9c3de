"""Learning from feedback: labels from verdicts, the training gate, versions and rollback, the
re-ranker inside the graph ranker, the feature log stored with incidents."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from rca.errors import BadInput, NotFound
from rca.learn import FixedReranker, StoreReranker, collect_labels, holdout_of, label_of, train_ranker
from rca.protocols import ActiveReranker
from rca.store import SqlStore
from rca.types import Candidate, Feedback, Hypothesis, Incident, Window

W = Window(1_700_000_000, 1_700_000_900, 15)


def _incident(iid: str, roots: list[str], feats: list[dict[str, float]] | None = None) -> Incident:
    hyps = tuple(Hypothesis(r, "traffic_surge", 1.0 / (i + 1), 0.5) for i, r in enumerate(roots[:5]))
    cands = tuple(Candidate(r, "traffic_surge", 1.0 / (i + 1), (feats or [{}] * len(roots))[i])
                  for i, r in enumerate(roots))
    return Incident(iid, "why?", W, None, hyps, candidates=cands)


@pytest.fixture()
def store(tmp_path):
    s = SqlStore.open(f"sqlite:///{tmp_path / 'rca.db'}")
    yield s
    s.close()


# ---- labels ---------------------------------------------------------------------------------

def test_label_follows_the_verdicts_in_time_order():
    inc = _incident("i1", ["service:a", "service:b", "service:c"])
    assert label_of(inc, []).root is None
    fb = [Feedback("i1", "confirm", 1, at=10)]
    assert label_of(inc, fb).root == "service:a" and label_of(inc, fb).verdict == "confirm"
    # rejecting the confirmed hypothesis later clears the label and remembers the wrong root
    lab = label_of(inc, fb + [Feedback("i1", "reject", 1, at=20)])
    assert lab.root is None and lab.rejected == ("service:a",) and lab.verdict == "reject"
    # a correction names a root outside the hypotheses, with its category
    lab = label_of(inc, fb + [Feedback("i1", "reject", 1, at=20),
                              Feedback("i1", "correct", None, "gpu:n/0", "gpu_hw_fault", at=30)])
    assert (lab.root, lab.category, lab.verdict, lab.rejected) == ("gpu:n/0", "gpu_hw_fault", "correct", ("service:a",))
    # order is by time, not by list order
    lab = label_of(inc, [Feedback("i1", "confirm", 2, at=50), Feedback("i1", "confirm", 1, at=40)])
    assert lab.root == "service:b"
    # rejecting another hypothesis keeps the label
    lab = label_of(inc, [Feedback("i1", "confirm", 1, at=1), Feedback("i1", "reject", 3, at=2)])
    assert lab.root == "service:a" and lab.rejected == ("service:c",)


def test_feedback_rank_is_checked_against_the_incident_and_is_idempotent(store):
    store.save_incident(_incident("i1", ["service:a", "service:b"]))
    with pytest.raises(BadInput) as e:
        store.add_feedback(Feedback("i1", "confirm", 3))
    assert e.value.field == "hypothesis_rank"
    with pytest.raises(NotFound):
        store.add_feedback(Feedback("nope", "confirm", 1))
    assert store.add_feedback(Feedback("i1", "reject", 2, author="x", at=5)) is True
    assert store.add_feedback(Feedback("i1", "reject", 2, author="x", at=6)) is False
    assert len(store.list_feedback("i1")) == 1


def test_candidates_round_trip_through_the_store(store):
    inc = _incident("i1", ["service:a", "pod:b"], [{"log_score": 1.5, "kind_service": 1.0}, {"log_score": 0.25}])
    store.save_incident(inc)
    back = store.get_incident("i1")
    assert back.candidates == inc.candidates
    store.save_incident(_incident("i1", ["service:z"]))  # replacing an incident replaces its pool
    assert [c.entity for c in store.get_incident("i1").candidates] == ["service:z"]


# ---- training gate, versions, rollback --------------------------------------------------------

def _labelled_store(store, n: int, rng: np.random.Generator, signal: bool = True) -> None:
    """n incidents of 6 candidates; the base order is random, the truth is the candidate with
    the largest ``x`` when ``signal`` (else also random)."""
    for i in range(n):
        x = rng.normal(size=6)
        feats = [{"x": float(v), "noise": float(rng.normal())} for v in x]
        roots = [f"service:s{i}-{k}" for k in range(6)]
        inc = _incident(f"inc-{i}", roots, feats)
        store.save_incident(inc)
        true = int(np.argmax(x)) if signal else int(rng.integers(6))
        if true < 5:
            store.add_feedback(Feedback(inc.id, "confirm", true + 1, at=i))
        else:
            store.add_feedback(Feedback(inc.id, "correct", None, roots[true], at=i))


def test_too_few_labels_trains_nothing(store):
    _labelled_store(store, 8, np.random.default_rng(0))
    rep = train_ranker(store)
    assert rep.version is None and not rep.activated and "need 20" in rep.reason
    assert store.list_models() == []


def test_a_version_that_beats_the_base_is_activated_and_can_be_rolled_back(store):
    _labelled_store(store, 80, np.random.default_rng(1))
    rep = train_ranker(store)
    m = rep.metrics
    assert rep.activated and rep.version == 1
    assert m["learned"]["ac_at_1"] > m["base"]["ac_at_1"]
    assert m["train"] + m["held_back"] == m["usable"] == 80
    assert rep.top_features[0][0] == "x" and rep.top_features[0][1] > 0
    assert store.active_model()["version"] == 1
    # a second version, then roll back to the first, then to the base ranker
    rep2 = train_ranker(store, c=0.5)
    assert rep2.activated and store.active_model()["version"] == 2
    assert store.activate_model(1) == 2
    assert [(r["version"], r["status"]) for r in store.list_models()] == [(2, "retired"), (1, "active")]
    assert store.activate_model(None) == 1 and store.active_model() is None
    with pytest.raises(NotFound):
        store.activate_model(99)


def test_a_version_that_does_not_beat_the_base_is_kept_but_not_activated(store):
    # the truth is always the base ranker's first candidate: nothing to gain
    for i in range(40):
        feats = [{"noise": float(v)} for v in np.random.default_rng(i).normal(size=4)]
        inc = _incident(f"inc-{i}", [f"service:s{i}-{k}" for k in range(4)], feats)
        store.save_incident(inc)
        store.add_feedback(Feedback(inc.id, "confirm", 1, at=i))
    rep = train_ranker(store)
    assert rep.version == 1 and not rep.activated
    assert rep.metrics["base"]["ac_at_1"] == 1.0
    assert store.active_model() is None and store.list_models()[0]["status"] == "rejected"


def test_holdout_is_deterministic_and_roughly_the_fraction():
    ids = [f"inc-{i}" for i in range(2000)]
    first = [holdout_of(i, 0.25) for i in ids]
    assert first == [holdout_of(i, 0.25) for i in ids]
    assert 0.21 < sum(first) / len(first) < 0.29


def test_unusable_labels_are_counted(store):
    _labelled_store(store, 25, np.random.default_rng(2))
    inc = _incident("outside", ["service:a", "service:b"])
    store.save_incident(inc)
    store.add_feedback(Feedback("outside", "correct", None, "service:elsewhere"))
    only_rejected = _incident("rejected", ["service:a", "service:b"])
    store.save_incident(only_rejected)
    store.add_feedback(Feedback("rejected", "reject", 1))
    pairs = collect_labels(store)
    assert len(pairs) == 27
    rep = train_ranker(store, min_labels=5)
    assert rep.metrics["root_not_in_candidates"] == 1 and rep.metrics["rejections_only"] == 1
    assert rep.metrics["usable"] == 25


def test_store_reranker_follows_the_active_version(store):
    _labelled_store(store, 60, np.random.default_rng(3))
    src = StoreReranker(store, ttl_s=0.0)
    assert src.get() is None
    train_ranker(store)
    got = src.get()
    assert got is not None and got.version == 1
    store.activate_model(None)
    assert src.get() is None


def test_train_rejects_a_bad_holdout(store):
    with pytest.raises(BadInput) as e:
        train_ranker(store, holdout=1.5)
    assert e.value.field == "holdout"


# ---- the re-ranker inside the graph ranker --------------------------------------------------

class _Reverse:
    """A re-ranker that prefers the base ranker's last candidates."""

    def decision_function(self, cands):
        return np.array([-c["recip_rank"] for c in cands])

    def order(self, cands):
        d = self.decision_function(cands)
        return sorted(range(len(cands)), key=lambda i: -d[i])


def _sim_incident(ranker_source=None):
    from rca.demo import analyze_sim
    from rca.settings import Settings
    from rca.sim import simulate
    from rca.wiring import build_engine

    engine = build_engine(Settings(reranker=False), [])
    engine.ranker.reranker = ranker_source
    return analyze_sim(simulate("noisy_neighbor", 3, vary=True), engine)


def test_graph_ranker_logs_features_and_applies_the_reranker_to_its_pool():
    base = _sim_incident()
    assert len(base.candidates) >= 3
    assert [c.entity for c in base.candidates[:len(base.hypotheses)]] == [h.root for h in base.hypotheses]
    for i, c in enumerate(base.candidates):
        assert c.features["recip_rank"] == pytest.approx(1 / (i + 1), abs=1e-6)
        assert any(k.startswith("kind_") for k in c.features)
        assert all(np.isfinite(v) for v in c.features.values())
    learned = _sim_incident(FixedReranker(ActiveReranker(7, _Reverse())))
    # the candidate log is the base order whatever re-ranks it (what training needs)
    assert learned.candidates == base.candidates
    want = [base.candidates[i].entity for i in _Reverse().order([c.features for c in base.candidates])]
    assert [h.root for h in learned.hypotheses] == want[:len(learned.hypotheses)]
    assert learned.params["reranker_version"] == 7 and "reranker_version" not in base.params
    # every hypothesis keeps its evidence; confidence in (0, 1]
    assert all(h.evidence for h in learned.hypotheses)
    assert all(0 < h.confidence <= 1 for h in learned.hypotheses)


# ---- the CLI --------------------------------------------------------------------------------

def test_cli_feedback_train_and_rollback(tmp_path, monkeypatch):
    from rca.cli import app

    db = f"sqlite:///{tmp_path / 'cli.db'}"
    s = SqlStore.open(db)
    _labelled_store(s, 60, np.random.default_rng(4))
    s.save_incident(_incident("inc-x", ["service:a", "service:b"]))
    s.close()
    r = CliRunner()
    res = r.invoke(app, ["feedback", "inc-x", "--reject", "1", "--note", "not it", "--db", db, "--json"])
    assert res.exit_code == 0, res.output
    body = json.loads(res.output)
    assert body["created"] is True and body["label"]["rejected"] == ["service:a"]
    res = r.invoke(app, ["feedback", "inc-x", "--root", "service:b", "--category", "traffic_surge", "--db", db,
                         "--json"])
    assert json.loads(res.output)["label"]["root"] == "service:b"
    again = r.invoke(app, ["feedback", "inc-x", "--root", "service:b", "--category", "traffic_surge", "--db", db,
                           "--json", "--author", json.loads(res.output)["feedback"]["author"]])
    assert json.loads(again.output)["created"] is False
    for bad in (["feedback", "inc-x", "--db", db], ["feedback", "inc-x", "--confirm", "--reject", "1", "--db", db],
                ["feedback", "inc-x", "--root", "nokind", "--db", db], ["feedback", "inc-x", "--reject", "9", "--db", db],
                ["feedback", "--db", db, "--confirm"]):
        from rca.cli import main

        monkeypatch.setattr("sys.argv", ["rca", *bad])
        with pytest.raises(SystemExit) as e:
            main()
        assert e.value.code == 2, bad
    trail = json.loads(r.invoke(app, ["feedback", "inc-x", "--list", "--db", db, "--json"]).output)
    assert [t["verdict"] for t in trail] == ["reject", "correct"]
    res = r.invoke(app, ["train", "ranker", "--db", db, "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["activated"] is True
    r.invoke(app, ["train", "ranker", "--db", db, "--c", "0.3"])
    listed = json.loads(r.invoke(app, ["train", "list", "--db", db, "--json"]).output)
    assert [m["status"] for m in listed] == ["active", "retired"]
    res = r.invoke(app, ["train", "rollback", "--db", db])
    assert res.exit_code == 0 and "v1" in res.output
    assert SqlStore.open(db).active_model()["version"] == 1
    r.invoke(app, ["train", "rollback", "--base", "--db", db])
    assert SqlStore.open(db).active_model() is None
    shown = r.invoke(app, ["train", "show", "1", "--out", str(tmp_path / "w.json"), "--db", db])
    assert shown.exit_code == 0 and json.loads((tmp_path / "w.json").read_text())["weights"]["kind"] == "pairwise_logistic"


def test_cli_ask_store_then_feedback(tmp_path):
    from rca.cli import app

    db = f"sqlite:///{tmp_path / 'ask.db'}"
    r = CliRunner()
    res = r.invoke(app, ["ask", "why was p99 slow at 19:20?", "--source", "sim://kv_cache_exhaustion?seed=0",
                         "--store", "--db", db, "--json"])
    assert res.exit_code == 0, res.output
    iid = json.loads(res.output)["incident_id"]
    stored = SqlStore.open(db).get_incident(iid)
    assert stored.candidates and stored.hypotheses
    res = r.invoke(app, ["feedback", iid, "--confirm", "--db", db, "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["label"]["root"] == stored.hypotheses[0].root
