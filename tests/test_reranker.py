"""The learned pairwise re-ranker (models/reranker.py) on seeded synthetic incidents."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from models.reranker import PairwiseReranker, accuracy_at_k, stack_groups
from rca.errors import BadInput

# hidden rule: the root is the candidate with the largest SIGNAL · x (+ a little noise)
SIGNAL = {"log_score": 1.5, "explained": 1.0, "lateness": -1.2, "role_fault": 0.8, "n_sources": 0.5}
DISTRACTORS = ("kind_gpu", "cat_gpu_hw_fault", "off_path", "noise_a")


def make_incidents(n: int, seed: int, base_noise: float = 1.5) -> tuple[list[list[dict]], list[int]]:
    """Incidents of 3-20 candidates in a noisy base order; each drops ~25% of feature names."""
    rng = np.random.default_rng(seed)
    names = list(SIGNAL) + list(DISTRACTORS)
    groups, truth = [], []
    for _ in range(n):
        k = int(rng.integers(3, 21))
        present = [f for f in names if rng.random() > 0.25]
        X = rng.normal(size=(k, len(present)))
        utility = X @ np.array([SIGNAL.get(f, 0.0) for f in present]) + rng.normal(scale=0.3, size=k)
        root = int(np.argmax(utility))
        base = np.argsort(-(utility + rng.normal(scale=base_noise, size=k)), kind="stable")
        cands = [{f: float(X[i, j]) for j, f in enumerate(present)} for i in base]
        for r, c in enumerate(cands):
            c["recip_rank"] = 1.0 / (r + 1)
        groups.append(cands)
        truth.append(int(np.flatnonzero(base == root)[0]))
    return groups, truth


@pytest.fixture(scope="module")
def train() -> tuple[list[list[dict]], list[int]]:
    return make_incidents(150, seed=1)


@pytest.fixture(scope="module")
def model(train) -> PairwiseReranker:
    return PairwiseReranker().fit(*train)


def test_learned_order_beats_the_noisy_base_order_on_held_out_incidents(model):
    groups, truth = make_incidents(300, seed=2)
    base = accuracy_at_k([list(range(len(g))) for g in groups], truth, k=1)
    learned = accuracy_at_k([model.order(g) for g in groups], truth, k=1)
    assert learned >= base + 0.2, (base, learned)
    assert accuracy_at_k([model.order(g) for g in groups], truth, k=3) >= 0.9
    top = [name for name, _ in model.top_features(5)]
    assert set(top) == set(SIGNAL)  # the hidden rule, not the distractors
    assert dict(model.top_features(5))["lateness"] < 0 < dict(model.top_features(5))["log_score"]
    assert model.n_incidents_ == 150


def test_fit_is_deterministic_and_json_round_trip_scores_identically(train, model):
    again = PairwiseReranker().fit(*train)
    assert json.dumps(again.to_json()) == json.dumps(model.to_json())
    loaded = PairwiseReranker.from_json(json.loads(json.dumps(model.to_json())))
    for g in make_incidents(20, seed=3)[0]:
        assert np.array_equal(loaded.decision_function(g), model.decision_function(g))
    doc = model.to_json()
    assert doc["kind"] == "pairwise_logistic" and doc["format"] == 1
    assert doc["features"] == sorted(doc["features"]) and len(doc["coef"]) == len(doc["features"])


def test_scoring_does_not_change_the_model_and_fit_does_not_mutate_inputs(train, model):
    before = json.dumps(model.to_json())
    model.decision_function(train[0][0])
    model.order(train[0][1])
    assert json.dumps(model.to_json()) == before
    groups = copy.deepcopy(train[0][:30])
    groups[0][0]["log_score"] = float("nan")
    truth = list(train[1][:30])
    snap = (repr(groups), list(truth))
    PairwiseReranker().fit(groups, truth)
    assert (repr(groups), truth) == snap


def test_missing_features_are_zero_and_unknown_ones_are_ignored(model):
    zeros = {name: 0.0 for name in model.feature_names_}
    a = model.decision_function([{"log_score": 2.0}, {}])
    b = model.decision_function([{**zeros, "log_score": 2.0}, zeros])
    assert np.array_equal(a, b)
    c = model.decision_function([{"log_score": 2.0, "never_seen": 99.0}, {"never_seen": -5.0}])
    assert np.array_equal(a, c)
    assert a[0] > a[1]  # log_score pushes towards the root


def test_nan_and_inf_features_are_zero_and_do_not_crash(train, model):
    bad = [{"log_score": float("nan"), "lateness": float("inf")}, {"log_score": 0.0, "lateness": 0.0}]
    s = model.decision_function(bad)
    assert np.isfinite(s).all() and s[0] == s[1]
    groups = copy.deepcopy(train[0][:40])
    for g in groups[::3]:
        g[0]["explained"] = float("nan")
        g[-1]["n_sources"] = float("-inf")
    fitted = PairwiseReranker().fit(groups, train[1][:40])
    assert np.isfinite(fitted.coef_).all() and np.isfinite(fitted.mean_).all()


def test_single_candidate_incidents_are_ignored(train):
    groups, truth = train[0][:50], train[1][:50]
    plain = PairwiseReranker().fit(groups, truth)
    extra = [[{"log_score": 50.0, "only_here": 3.0}], [{"explained": -9.0}]]
    mixed = PairwiseReranker().fit(extra[:1] + list(groups) + extra[1:], [0, *truth, 0])
    assert json.dumps(mixed.to_json()) == json.dumps(plain.to_json())
    assert "only_here" not in mixed.feature_names_


@pytest.mark.parametrize("groups, truth", [
    ([], []),
    ([[{"a": 1.0}], [{"a": 2.0}]], [0, 0]),                  # only single-candidate incidents
    ([[{"a": 1.0}, {"a": 0.0}]], [2]),                         # truth out of range
    ([[{"a": 1.0}, {"a": 0.0}]], [-1]),                        # negative index is not "the last"
    ([[{"a": 1.0}, {"a": 0.0}]], [0, 1]),                      # more labels than incidents
])
def test_no_usable_pairs_or_bad_labels_raise_bad_input(groups, truth):
    with pytest.raises(BadInput) as err:
        PairwiseReranker().fit(groups, truth)
    assert err.value.field == "labels" and err.value.fix


def test_bad_parameters_and_non_numeric_features_raise_bad_input():
    g, t = [[{"a": 1.0}, {"a": 0.0}]], [0]
    for params, field in (({"C": 0.0}, "C"), ({"C": float("nan")}, "C"), ({"max_pairs": 0}, "max_pairs")):
        with pytest.raises(BadInput) as err:
            PairwiseReranker(**params).fit(g, t)
        assert err.value.field == field
    with pytest.raises(BadInput) as err:
        PairwiseReranker().fit([[{"a": "high"}, {"a": 0.0}]], t)
    assert err.value.field == "features" and "'a'" in str(err.value)
    with pytest.raises(BadInput) as err:
        PairwiseReranker().decision_function([{"a": 1.0}])
    assert err.value.field == "weights"


def test_order_is_stable_on_ties(model):
    cands = [{"noise": 1.0}, {"log_score": 1.0}, {}, {"never_seen": 3.0}, {"log_score": 1.0}]
    assert model.order(cands) == [1, 4, 0, 2, 3]
    assert model.order([{}] * 6) == list(range(6))
    assert model.order([]) == []


def test_max_pairs_uses_the_first_others_in_base_order():
    # feature "a" separates the root only from the candidate right below it; "b" only from the last one
    g = [{"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 0.0}, {"a": 1.0, "b": 0.0}, {"a": 1.0, "b": -1.0}]
    near = PairwiseReranker(max_pairs=1).fit([g] * 5, [0] * 5)
    assert dict(near.top_features(2))["b"] == 0.0 and near.coef_[0] > 0
    full = PairwiseReranker(max_pairs=3).fit([g] * 5, [0] * 5)
    assert dict(full.top_features(2))["b"] > 0


@pytest.mark.parametrize("edit, needle", [
    (lambda d: d.update(kind="other"), "kind"),
    (lambda d: d.pop("coef"), "coef"),
    (lambda d: d.update(coef=d["coef"][:-1]), "coef"),
    (lambda d: d.update(mean=[float("nan")] * len(d["mean"])), "mean"),
    (lambda d: d.update(scale=[0.0] * len(d["scale"])), "scale"),
    (lambda d: d.update(features=[1] * len(d["features"])), "features"),
    (lambda d: d.update(n_incidents=0), "n_incidents"),
    (lambda d: d.update(C=-1), "C"),
])
def test_from_json_rejects_bad_documents_naming_the_field(model, edit, needle):
    doc = copy.deepcopy(model.to_json())
    edit(doc)
    with pytest.raises(BadInput) as err:
        PairwiseReranker.from_json(doc)
    assert err.value.field == "weights" and needle in err.value.message and err.value.fix
    with pytest.raises(BadInput):
        PairwiseReranker.from_json(["not", "a", "mapping"])  # type: ignore[arg-type]


def test_stack_groups_builds_one_matrix_with_offsets():
    X, offsets, names = stack_groups([[{"b": 2.0}, {"a": 1.0, "b": float("nan")}], [], [{"c": None, "a": 3}]])
    assert names == ("a", "b", "c") and offsets.tolist() == [0, 2, 2, 3]
    assert X.tolist() == [[0.0, 2.0, 0.0], [1.0, 0.0, 0.0], [3.0, 0.0, 0.0]]
    X2, _, names2 = stack_groups([[{"b": 2.0, "z": 1.0}]], features=("b", "a"))
    assert names2 == ("b", "a") and X2.tolist() == [[2.0, 0.0]]


def test_accuracy_at_k():
    orders, truth = [[2, 0, 1], [0, 1], [1, 0, 2]], [2, 1, 2]
    assert accuracy_at_k(orders, truth, 1) == pytest.approx(1 / 3)
    assert accuracy_at_k(orders, truth, 2) == pytest.approx(2 / 3)
    assert accuracy_at_k(orders, truth, 3) == 1.0
    with pytest.raises(BadInput):
        accuracy_at_k(orders, truth[:2])
    with pytest.raises(BadInput):
        accuracy_at_k(orders, truth, 0)
