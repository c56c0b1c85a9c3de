"""Exports end to end: labelled incidents (store feedback + simulated) -> records -> validated,
split, round-tripped datasets; no secret from the redaction corpus survives; CLI and API."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from test_redact import CORPUS
from typer.testing import CliRunner

from rca.errors import BadInput
from rca.export.records import Labelled, build_records, negatives
from rca.export.run import collect_items, export_dataset, sim_items
from rca.export.schema import CONFIGS, validate_records
from rca.export.writer import SPLITS, load_split, read_manifest
from rca.learn import Label
from rca.redact import Redactor
from rca.settings import Settings
from rca.store import SqlStore
from rca.types import Candidate, Evidence, Feedback, Hypothesis, Incident, SeriesKey, Symptom, Window
from rca.wiring import build_engine

W = Window(1_763_665_500, 1_763_666_400, 15)


@pytest.fixture(scope="module")
def sims() -> list[Labelled]:
    return sim_items(3, build_engine(Settings(reranker=False), []))


def _secret_incident(iid: str) -> Incident:
    """An incident whose every text field carries pieces of the redaction corpus."""
    texts = [c[1] for c in CORPUS]
    evs = tuple(Evidence("log", "pod:vllm-0", f"log burst: {t}", {"examples": [t]}) for t in texts)
    hyps = (Hypothesis("pod:vllm-0", "kv_cache_exhaustion", 9.0, 0.8, ("pod:vllm-0", "service:api-gateway"),
                       evs + (Evidence("metric", "pod:vllm-0", "vllm:kv_cache_usage_perc went 0.6 → 0.99"),),
                       checked=("gpu: normal",), no_data=(texts[0],)),
            Hypothesis("service:api-gateway", "traffic_surge", 3.0, 0.3, ("service:api-gateway",),
                       (Evidence("trace", "service:api-gateway", f"span slow; {texts[1]}"),)))
    sym = Symptom("service:api-gateway", "p99 latency", SeriesKey("http_request_duration_seconds"), 0.4, 6.8, "s")
    return Incident(iid, f"why was p99 slow at 20:00? {texts[2]}", W, sym, hyps,
                    candidates=(Candidate("pod:vllm-0", "kv_cache_exhaustion", 9.0, {"log_score": 2.3}),
                                Candidate("service:api-gateway", "traffic_surge", 3.0, {"log_score": 1.4})))


@pytest.fixture()
def store(tmp_path):
    s = SqlStore.open(f"sqlite:///{tmp_path / 'rca.db'}")
    yield s
    s.close()


def _labelled_store(store: SqlStore, n: int = 6) -> None:
    for i in range(n):
        store.save_incident(replace(_secret_incident(f"inc-{i}"), window=Window(W.start + 7200 * i, W.end + 7200 * i)))
        store.add_feedback(Feedback(f"inc-{i}", "confirm", 1, note="yes", author="sre", at=100 + i)
                           if i % 2 else Feedback(f"inc-{i}", "correct", None, "service:api-gateway", "traffic_surge",
                                                  author="sre", at=100 + i))
    store.save_incident(_secret_incident("unlabelled"))


def _example_id(r: dict) -> str:
    return r["meta"]["example_id"]


def _unstamped(r: dict) -> dict:
    return {**r, "meta": {k: v for k, v in r["meta"].items() if k not in ("created_at", "generator")}}


@pytest.mark.parametrize("fmt", sorted(CONFIGS))
def test_every_format_validates_and_round_trips_exactly(fmt, sims, tmp_path):
    records = build_records(sims, fmt, Redactor(), "rca test", 1_763_700_000)
    assert set(records) == set(CONFIGS[fmt])
    out = tmp_path / fmt
    manifest = export_dataset(fmt, out, sims, redactor=Redactor())
    for config, rows in records.items():
        validate_records(config, rows)
        back_json = [r for s in SPLITS for r in load_split(out, config, s, "jsonl")]
        back_parquet = [r for s in SPLITS for r in load_split(out, config, s, "parquet")]
        assert back_json == back_parquet
        # every field of every record survives (the export stamps generator and created_at itself)
        assert all(r["meta"]["generator"].startswith("rca ") for r in back_json)
        assert sorted(map(_unstamped, back_json), key=_example_id) == sorted(map(_unstamped, rows), key=_example_id)
        for s in SPLITS:
            path = out / config / f"{s}.parquet"
            if path.exists():
                assert pq.read_table(path).num_rows == manifest.configs[config][s].examples
    card = (out / "README.md").read_text()
    import yaml

    front = yaml.safe_load(card.split("---")[1])
    assert {c["config_name"] for c in front["configs"]} <= set(CONFIGS[fmt])
    assert read_manifest(out).format == fmt


def test_sft_prompt_has_numbers_and_no_answer_order_completion_is_the_truth(sims):
    recs = build_records(sims, "sft", Redactor(), "rca test", 0)["sft_messages"]
    for rec, item in zip(recs, sims, strict=True):
        system, user, assistant = rec["messages"]
        assert [m["role"] for m in rec["messages"]] == ["system", "user", "assistant"]
        assert user["content"].startswith("QUESTION: ") and "SYMPTOM: " in user["content"]
        assert "ANOMALIES" in user["content"] and "→" in user["content"]
        assert "may be an effect of" not in user["content"]  # observations, not the engine's inferences
        diag = json.loads(assistant["content"])
        assert diag["root_cause"]["component"] == item.label.root == rec["meta"]["labels"]["root_cause"]
        assert diag["root_cause"]["category"] == item.label.category
        assert diag["remediation"] and 0 <= diag["confidence"] <= 1
        assert rec["meta"]["origin"] == "sim" and rec["meta"]["scenario"] == item.scenario


def test_negatives_never_name_the_true_root_and_are_hard(sims, store):
    for item in sims:
        negs = negatives(item.incident, item.label)
        assert negs and all(json.loads(json.dumps(d))["root_cause"]["component"] != item.label.root for _, d in negs)
        kinds = [k for k, _ in negs]
        assert "symptom" in kinds or "wrong_layer" in kinds
    inc = _secret_incident("x")
    lab = Label("x", "service:api-gateway", "traffic_surge", "correct", rejected=("pod:vllm-0",))
    negs = negatives(inc, lab)
    assert negs[0][0] == "rejected_hypothesis" and negs[0][1]["root_cause"]["component"] == "pod:vllm-0"
    assert all(d["root_cause"]["component"] != "service:api-gateway" for _, d in negs)


def test_splits_are_deterministic_and_leak_free(sims, store, tmp_path):
    _labelled_store(store, 12)
    items = collect_items(store) + sims
    assert len(items) == 12 + len(sims)  # the unlabelled incident is not exported
    a = export_dataset("dpo", tmp_path / "a", items, redactor=Redactor())
    b = export_dataset("dpo", tmp_path / "b", list(reversed(items)), redactor=Redactor())
    for config in CONFIGS["dpo"]:
        where = {}
        for s in SPLITS:
            rows_a = load_split(tmp_path / "a", config, s)
            rows_b = load_split(tmp_path / "b", config, s)
            assert [r["meta"]["example_id"] for r in rows_a] == [r["meta"]["example_id"] for r in rows_b]
            for r in rows_a:
                assert where.setdefault(r["meta"]["fingerprint"], s) == s, "one incident in two splits"
        assert a.configs[config] == b.configs[config]
    # the same event asked twice (same root, category and hour) shares a fingerprint, so a split
    twice = [Labelled(replace(_secret_incident(f"q{i}"), question=f"variant {i}"),
                      Label(f"q{i}", "pod:vllm-0", "kv_cache_exhaustion", "confirm")) for i in range(2)]
    recs = build_records(twice, "eval", Redactor(), "t", 0)["eval"]
    assert recs[0]["meta"]["fingerprint"] == recs[1]["meta"]["fingerprint"]


def test_no_secret_from_the_corpus_survives_any_export(store, tmp_path):
    _labelled_store(store, 6)
    items = collect_items(store)
    secrets = {s for _, _, ss, _ in CORPUS for s in ss}
    for fmt in CONFIGS:
        out = tmp_path / fmt
        export_dataset(fmt, out, items, redactor=Redactor(salt="test-salt"))
        dumped = []
        for p in sorted(out.rglob("*")):
            if p.suffix == ".parquet":
                dumped.append(json.dumps(pq.read_table(p).to_pylist(), ensure_ascii=False))
            elif p.is_file():
                dumped.append(p.read_text())
        blob = "\n".join(dumped)
        # JSON escaping must not hide a survivor: look in the decoded text too
        decoded = blob.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
        for s in secrets:
            for text in (blob, decoded):
                assert s not in text, f"{fmt}: {s!r} survived"
        assert "pod:vllm-0" in blob and "kv_cache_usage_perc" in blob  # what is not secret is kept


def test_redaction_is_consistent_between_prompt_and_completion():
    inc = _secret_incident("ip")
    inc = replace(inc, hypotheses=(replace(inc.hypotheses[0], root="pod:10.1.2.3:8000",
                                           evidence=(Evidence("metric", "pod:10.1.2.3:8000",
                                                              "latency on pod:10.1.2.3:8000 went 1 → 9"),)),))
    item = Labelled(inc, Label("ip", "pod:10.1.2.3:8000", "kv_cache_exhaustion", "confirm"))
    rec = build_records([item], "sft", Redactor(), "t", 0)["sft_messages"][0]
    user, answer = rec["messages"][1]["content"], json.loads(rec["messages"][2]["content"])
    comp = answer["root_cause"]["component"]
    assert "10.1.2.3" not in json.dumps(rec) and comp != "pod:10.1.2.3:8000"
    assert comp in user and rec["meta"]["labels"]["root_cause"] == comp


def test_nothing_to_export_is_bad_input(tmp_path):
    with pytest.raises(BadInput) as e:
        export_dataset("sft", tmp_path / "x", [], redactor=Redactor())
    assert "--from-sim" in e.value.fix
    with pytest.raises(BadInput) as e:
        export_dataset("nope", tmp_path / "x", [], redactor=Redactor())
    assert e.value.field == "format"


def test_cli_export_from_sim(tmp_path, monkeypatch):
    from rca.cli import app, main

    monkeypatch.setenv("RCA_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    res = CliRunner().invoke(app, ["export", "--format", "eval", "--out", str(tmp_path / "ev"), "--from-sim", "2",
                                   "--json"])
    assert res.exit_code == 0, res.output
    assert sum(e["examples"] for e in json.loads(res.output)["configs"]["eval"].values()) == 2
    assert (tmp_path / "ev" / "README.md").exists()
    for bad in (["export", "--format", "csv", "--out", str(tmp_path / "x")],
                ["export", "--format", "sft", "--out", str(tmp_path / "y")]):  # nothing labelled, no --from-sim
        monkeypatch.setattr("sys.argv", ["rca", *bad])
        with pytest.raises(SystemExit) as e:
            main()
        assert e.value.code == 2


def test_api_export_feedback_trail_and_models(tmp_path):
    from apiapp import assert_problem, make_app

    a = make_app(tmp_path)
    _labelled_store(a.store, 4)
    with TestClient(a.app) as c:
        r = c.get("/v1/export", params={"format": "sft"}, headers=a.headers("admin"))
        assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
        names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
        assert "rca-sft/README.md" in names and "rca-sft/manifest.json" in names
        assert any(n.endswith("sft_messages/train.parquet") for n in names)
        r = c.get("/v1/export", params={"format": "eval", "config": "eval", "split": "train"},
                  headers=a.headers("admin"))
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
        rows = [json.loads(line) for line in r.text.splitlines()]
        assert all(set(row) == {"question", "context", "expected", "meta"} for row in rows)
        assert_problem(c.get("/v1/export", params={"format": "sft", "config": "eval", "split": "train"},
                             headers=a.headers("admin")), 400, "config")
        assert_problem(c.get("/v1/export", params={"format": "sft", "config": "sft_messages"},
                             headers=a.headers("admin")), 400, "split")
        assert c.get("/v1/export", params={"format": "sft"}, headers=a.headers("write")).status_code == 403
        trail = c.get("/v1/feedback", headers=a.headers("read")).json()
        assert [t["incident_id"] for t in trail] == [f"inc-{i}" for i in range(4)]
        assert c.get("/v1/feedback", params={"incident_id": "inc-1"}, headers=a.headers("read")).json()[0]["verdict"] \
            == "confirm"
        r = c.post("/v1/ranker/train", json={}, headers=a.headers("admin"))
        assert r.status_code == 200 and r.json()["version"] is None and "need 20" in r.json()["reason"]
        assert c.get("/v1/ranker/models", headers=a.headers("read")).json() == []
        assert_problem(c.post("/v1/ranker/active", json={"version": 5}, headers=a.headers("admin")), 404)
        assert c.post("/v1/ranker/active", json={"version": None}, headers=a.headers("admin")).json() == \
            {"active": None, "previous": None}


def test_export_dir_is_a_dataset_huggingface_can_read(sims, tmp_path):
    """The card's configs point at files that exist (what `datasets.load_dataset(dir, config)` reads)."""
    import yaml

    export_dataset("kto", tmp_path / "k", sims, redactor=Redactor())
    front = yaml.safe_load((tmp_path / "k" / "README.md").read_text().split("---")[1])
    for cfg in front["configs"]:
        files = cfg["data_files"]
        for entry in files:
            assert (tmp_path / "k" / entry["path"]).exists()
    assert Path(tmp_path / "k" / "manifest.json").exists()


def test_public_api_is_pinned():
    import rca.export

    assert sorted(rca.export.__all__) == sorted([
        "CONFIGS", "DEFAULT_RATIOS", "FILE_FORMATS", "FORMATS", "SPLITS", "CardInfo", "Labelled", "Manifest",
        "arrow_schema", "assign_splits", "build_records", "collect_items", "export_dataset", "fingerprint_of",
        "load_schema", "load_split", "negatives", "prompt_of", "read_manifest", "render_card", "sim_items",
        "split_of", "validate_records", "write_dataset"])
    assert all(hasattr(rca.export, n) for n in rca.export.__all__)
