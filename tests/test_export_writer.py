"""Export datasets: JSON Schemas, validation, incident splits, JSONL/Parquet round trips, card, manifest."""

from __future__ import annotations

import copy
import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml
from jsonschema import Draft202012Validator

from rca.errors import BadInput
from rca.export import (
    CONFIGS,
    SPLITS,
    CardInfo,
    arrow_schema,
    assign_splits,
    load_schema,
    load_split,
    read_manifest,
    split_of,
    validate_records,
    write_dataset,
)
from rca.export import writer as writer_mod
from rca.export.schema import schemas_dir

ALL_CONFIGS = [c for cs in CONFIGS.values() for c in cs]
FORMAT_OF = {c: f for f, cs in CONFIGS.items() for c in cs}
CARD = CardInfo(name="rca-test", description="Test export.")


# ---------------------------------------------------------------- record builder

def fp_of(n: int) -> str:
    return hashlib.sha256(f"incident-{n}".encode()).hexdigest()[:32]


def answer(root: str, category: str | None) -> list[dict[str, str]]:
    content = json.dumps({"root_cause": {"component": root, "category": category}, "confidence": 0.8})
    return [{"role": "assistant", "content": content}]


def make_meta(n: int, k: int, config: str, *, sim: bool, rejected_kind: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "example_id": f"{config}-{n}-{k}", "incident_id": f"inc-{n}", "fingerprint": fp_of(n),
        "origin": "sim" if sim else "feedback", "scenario": "kv_cache_exhaustion" if sim else None,
        "seed": (2**62 + n) if sim else None,
        "window": ["2026-11-21T16:30:00Z", "2026-11-21T16:45:00.250+00:00"],
        "labels": {"root_cause": "pod:vllm-llama-0", "category": "kv_cache_exhaustion" if n % 3 else None},
        "verdict": "sim" if sim else ("confirm" if n % 2 else "correct"),
        "generator": "rca 0.1.0 export", "created_at": "2026-11-22T08:00:00Z"}
    if config in ("dpo", "dpo_openai", "kto"):
        meta["rejected_kind"] = rejected_kind
    return meta


def make_record(config: str, n: int, k: int = 0, *, label: bool = True) -> dict[str, Any]:
    """A valid record of ``config`` for incident ``n`` (example ``k`` of that incident)."""
    sim = n % 2 == 0
    system = {"role": "system", "content": "You are an SRE assistant. Answer in JSON."}
    user = {"role": "user", "content": f"why was p99 slow at 16:40 — incident {n} ✓ \"quoted\"\nline 2"}
    good = answer("pod:vllm-llama-0", "kv_cache_exhaustion")
    bad = answer("gpu:gpu-node-3/2", "gpu_hw_fault")
    kind = "wrong_layer" if k % 2 else "symptom"
    if config == "sft_messages":
        rec = {"messages": [system, user, *good]}
    elif config == "sft_prompt_completion":
        rec = {"prompt": [system, user], "completion": good}
    elif config == "dpo":
        rec = {"prompt": [system, user], "chosen": good, "rejected": bad}
    elif config == "dpo_openai":
        rec = {"input": {"messages": [system, user]}, "preferred_output": good, "non_preferred_output": bad}
    elif config == "kto":
        rec = {"prompt": [system, user], "completion": good if label else bad, "label": label}
        kind = None if label else kind
    else:
        rec = {"question": "why was p99 slow at 16:40", "context": user["content"],
               "expected": {"root_cause": "pod:vllm-llama-0",
                            "category": None if n % 5 == 0 else "kv_cache_exhaustion"}}
    rec["meta"] = make_meta(n, k, config, sim=sim, rejected_kind=kind)
    return copy.deepcopy(rec)


def records_for(config: str, incidents: range, per_incident: int = 2) -> list[dict[str, Any]]:
    return [make_record(config, n, k, label=bool(k % 2 == 0)) for n in incidents for k in range(per_incident)]


def dataset(fmt: str, incidents: range = range(40), per_incident: int = 2) -> dict[str, list[dict[str, Any]]]:
    return {c: records_for(c, incidents, per_incident) for c in CONFIGS[fmt]}


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- schemas

def _walk(node: Any):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


@pytest.mark.parametrize("name", ["common", *ALL_CONFIGS])
def test_schema_files_are_closed_draft_2020_12(name: str) -> None:
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(f"/{name}.schema.json") and schema["title"] and schema["description"]
    objects = [n for n in _walk(schema) if n.get("type") == "object"]
    assert objects and all(n.get("additionalProperties") is False for n in objects)
    assert all("required" in n for n in objects)
    assert sorted(p.name for p in schemas_dir().glob("*.schema.json")) == sorted(
        f"{c}.schema.json" for c in ["common", *ALL_CONFIGS])


def _resolve(node: dict[str, Any], doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    while "$ref" in node:
        file, _, pointer = node["$ref"].partition("#")
        if file:
            doc = load_schema(file.removesuffix(".schema.json"))
        node = doc
        for part in pointer.strip("/").split("/"):
            node = node[part]
    return node, doc


def _same_shape(js: dict[str, Any], doc: dict[str, Any], at: pa.DataType | pa.Schema, where: str) -> None:
    js, doc = _resolve(js, doc)
    if "anyOf" in js:  # nullable enum: compare the non-null branch
        js, doc = _resolve(next(b for b in js["anyOf"] if b.get("type") != "null"), doc)
    if js.get("type") == "object":
        fields = list(at) if isinstance(at, pa.Schema) else [at.field(i) for i in range(at.num_fields)]
        assert [f.name for f in fields] == list(js["properties"]), where
        for f in fields:
            _same_shape(js["properties"][f.name], doc, f.type, f"{where}.{f.name}")
    elif js.get("type") == "array":
        assert pa.types.is_list(at), where
        for item in js["prefixItems"]:
            _same_shape(item, doc, at.value_type, f"{where}[]")
    else:
        types = set(js["type"]) if isinstance(js.get("type"), list) else {js.get("type")}
        if types & {"integer"}:
            assert at == pa.int64(), where
        elif types & {"boolean"}:
            assert at == pa.bool_(), where
        else:  # strings, enums, consts
            assert at == pa.string(), where


@pytest.mark.parametrize("config", ALL_CONFIGS)
def test_arrow_schema_names_the_same_keys_as_the_json_schema(config: str) -> None:
    schema = load_schema(config)
    _same_shape(schema, schema, arrow_schema(config), config)


@pytest.mark.parametrize("config", ALL_CONFIGS)
def test_builder_records_validate(config: str) -> None:
    validate_records(config, records_for(config, range(6)))


# ---------------------------------------------------------------- broken records

def _set(record: dict[str, Any], path: list[Any], value: Any) -> None:
    for p in path[:-1]:
        record = record[p]
    record[path[-1]] = value


def _del(record: dict[str, Any], path: list[Any]) -> None:
    for p in path[:-1]:
        record = record[p]
    del record[path[-1]]


BROKEN = [
    # (config, mutation, expected field of record 1)
    ("sft_messages", lambda r: _del(r, ["meta", "fingerprint"]), "sft_messages[1].meta.fingerprint"),
    ("sft_messages", lambda r: _del(r, ["meta"]), "sft_messages[1].meta"),
    ("sft_messages", lambda r: _set(r, ["messages", 1, "role"], "assistant"),
     "sft_messages[1].messages[1].role"),
    ("sft_prompt_completion", lambda r: _set(r, ["completion", 0, "role"], "tool"),
     "sft_prompt_completion[1].completion[0].role"),
    ("dpo", lambda r: _set(r, ["meta", "extra"], 1), "dpo[1].meta.extra"),
    ("dpo", lambda r: _set(r, ["weight"], 1), "dpo[1].weight"),
    ("dpo", lambda r: _set(r, ["meta", "rejected_kind"], None), "dpo[1].meta.rejected_kind"),
    ("dpo_openai", lambda r: _set(r, ["meta", "rejected_kind"], "guess"), "dpo_openai[1].meta.rejected_kind"),
    ("dpo_openai", lambda r: _set(r, ["input", "messages", 0, "content"], 3),
     "dpo_openai[1].input.messages[0].content"),
    ("kto", lambda r: _set(r, ["label"], "yes"), "kto[1].label"),
    # label true, so rejected_kind must be null
    ("kto", lambda r: _set(r, ["meta", "rejected_kind"], "symptom"), "kto[1].meta.rejected_kind"),
    ("eval", lambda r: _set(r, ["expected", "category"], 7), "eval[1].expected.category"),
    ("eval", lambda r: _set(r, ["meta", "origin"], "prod"), "eval[1].meta.origin"),
    ("eval", lambda r: _set(r, ["meta", "window"], ["yesterday", "2026-11-21T16:45:00Z"]),
     "eval[1].meta.window[0]"),
    ("eval", lambda r: _set(r, ["meta", "seed"], True), "eval[1].meta.seed"),
    ("eval", lambda r: _set(r, ["meta", "fingerprint"], "NOT-HEX"), "eval[1].meta.fingerprint"),
    ("sft_messages", lambda r: _set(r, ["messages", 2, "content"], "the cache is full"),
     "sft_messages[1].messages[2].content"),
    ("dpo", lambda r: _set(r, ["rejected", 0, "content"], "[1, 2]"), "dpo[1].rejected[0].content"),
    ("sft_messages", lambda r: _set(r, ["meta", "example_id"], "sft_messages-0-0"),
     "sft_messages[1].meta.example_id"),
]


@pytest.mark.parametrize(("config", "mutate", "field"), BROKEN, ids=[b[2] for b in BROKEN])
def test_broken_record_is_named_and_nothing_is_written(tmp_path: Path, config: str, mutate: Any,
                                                        field: str) -> None:
    records = [make_record(config, 0, 0), make_record(config, 1, 0), make_record(config, 2, 0)]
    mutate(records[1])
    with pytest.raises(BadInput) as exc:
        validate_records(config, records)
    assert exc.value.field == field
    assert "record 1" in exc.value.message and exc.value.fix
    out = tmp_path / "out"
    configs = {c: records_for(c, range(3)) for c in CONFIGS[FORMAT_OF[config]]}
    configs[config] = records
    with pytest.raises(BadInput) as exc2:
        write_dataset(out, FORMAT_OF[config], configs, card=CARD)
    assert exc2.value.field == field
    assert list(tmp_path.iterdir()) == []


def test_kto_false_label_needs_a_rejected_kind() -> None:
    rec = make_record("kto", 1, 1, label=False)
    validate_records("kto", [rec])
    rec["meta"]["rejected_kind"] = None
    with pytest.raises(BadInput) as exc:
        validate_records("kto", [rec])
    assert exc.value.field == "kto[0].meta.rejected_kind"


def test_extra_message_is_rejected() -> None:
    rec = make_record("sft_messages", 1)
    rec["messages"].append({"role": "user", "content": "and now?"})
    with pytest.raises(BadInput) as exc:
        validate_records("sft_messages", [rec])
    assert exc.value.field.startswith("sft_messages[0].messages")


def test_bad_requests_are_bad_input(tmp_path: Path) -> None:
    good = dataset("sft", range(3))
    cases = [(dict(format="chat", configs=good), "format"),
             (dict(format="sft", configs={"dpo": records_for("dpo", range(2))}), "configs"),
             (dict(format="sft", configs={}), "configs"),
             (dict(format="sft", configs=good, file_formats=("csv",)), "file_formats"),
             (dict(format="sft", configs=good, ratios=(0.8, 0.1)), "ratios"),
             (dict(format="sft", configs=good, ratios=(0.9, 0.2, -0.1)), "ratios"),
             (dict(format="sft", configs={"sft_messages": []}), "records")]
    for kwargs, field in cases:
        with pytest.raises(BadInput) as exc:
            write_dataset(tmp_path / "out", card=CARD, **kwargs)
        assert exc.value.field == field, kwargs
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(BadInput) as exc:
        validate_records("chat", [])
    assert exc.value.field == "config"


# ---------------------------------------------------------------- round trips

@pytest.mark.parametrize("fmt", list(CONFIGS))
def test_jsonl_and_parquet_round_trip_every_field(tmp_path: Path, fmt: str) -> None:
    configs = dataset(fmt, range(30))
    # the input's key order does not matter
    shuffled = {c: [dict(reversed(list(r.items()))) for r in rs] for c, rs in configs.items()}
    manifest = write_dataset(tmp_path / "out", fmt, shuffled, card=CARD)
    for config, records in configs.items():
        expected = sorted(records, key=lambda r: r["meta"]["example_id"])
        for file_format in ("jsonl", "parquet"):
            got = [r for s in SPLITS for r in load_split(tmp_path / "out", config, s, file_format)]
            assert sorted(got, key=lambda r: r["meta"]["example_id"]) == expected, (config, file_format)
        assert sum(e.examples for e in manifest.configs[config].values()) == len(records)
    train = load_split(tmp_path / "out", CONFIGS[fmt][0], "train", "parquet")
    nulls = [r for r in train if r["meta"]["seed"] is None]
    assert nulls and all(r["meta"]["scenario"] is None and "seed" in r["meta"] for r in nulls)


def test_jsonl_lines_are_in_schema_key_order(tmp_path: Path) -> None:
    write_dataset(tmp_path / "out", "dpo", dataset("dpo", range(10)), card=CARD)
    line = (tmp_path / "out" / "dpo" / "train.jsonl").read_text(encoding="utf-8").splitlines()[0]
    assert list(json.loads(line)) == ["prompt", "chosen", "rejected", "meta"]
    assert "✓" in line  # UTF-8, not \u escapes


# ---------------------------------------------------------------- splits

def test_splits_are_deterministic_byte_for_byte(tmp_path: Path) -> None:
    configs = dataset("dpo", range(60), per_incident=3)
    shuffled = {c: random.Random(7).sample(rs, len(rs)) for c, rs in configs.items()}
    write_dataset(tmp_path / "a", "dpo", configs, card=CARD)
    write_dataset(tmp_path / "b", "dpo", shuffled, card=CARD)
    a, b = files_under(tmp_path / "a"), files_under(tmp_path / "b")
    assert a.keys() == b.keys() and "manifest.json" in a and "dpo/train.parquet" in a
    assert a == b


def test_splits_are_leak_free_across_configs() -> None:
    configs = dataset("sft", range(300), per_incident=3)
    where: dict[str, set[str]] = {}
    for records in configs.values():
        for split, rs in assign_splits(records).items():
            for r in rs:
                where.setdefault(r["meta"]["fingerprint"], set()).add(split)
    assert len(where) == 300
    assert all(len(s) == 1 for s in where.values())
    assert {next(iter(s)) for s in where.values()} == set(SPLITS)


@pytest.mark.parametrize("ratios", [(0.8, 0.1, 0.1), (0.5, 0.25, 0.25), (0.9, 0.1, 0.0)])
def test_ratios_are_roughly_respected_on_1000_incidents(ratios: tuple[float, float, float]) -> None:
    fps = [hashlib.sha256(str(i).encode()).hexdigest()[:32] for i in range(1000)]
    counts = {s: 0 for s in SPLITS}
    for fp in fps:
        counts[split_of(fp, ratios)] += 1
    for split, ratio in zip(SPLITS, ratios, strict=True):
        sd = (1000 * ratio * (1 - ratio)) ** 0.5
        assert abs(counts[split] - 1000 * ratio) <= 4 * sd + 1e-9, counts
    assert [split_of(fp, ratios) for fp in fps[:50]] == [split_of(fp, ratios) for fp in fps[:50]]


def test_split_of_rejects_bad_ratios() -> None:
    for ratios in [(0.0, 0.5, 0.5), (0.5, 0.5, 0.5), (1.0, float("nan"), 0.0), ("a", 0, 0)]:
        with pytest.raises(BadInput) as exc:
            split_of("ab12cd34", ratios)
        assert exc.value.field == "ratios"


# ---------------------------------------------------------------- card and manifest

def _front_matter(text: str) -> dict[str, Any]:
    assert text.startswith("---\n")
    head, _, _ = text[4:].partition("\n---\n")
    return yaml.safe_load(head)


def test_card_front_matter_parses_and_points_at_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    manifest = write_dataset(out, "sft", dataset("sft", range(50)), card=CARD)
    card = (out / "README.md").read_text(encoding="utf-8")
    fm = _front_matter(card)
    assert fm["license"] == "other" and fm["license_name"] and fm["language"] == ["en"]
    assert fm["task_categories"] == ["text-generation"] and fm["size_categories"] == ["n<1K"]
    assert fm["pretty_name"] == "rca-test" and "aiops" in fm["tags"]
    assert [c["config_name"] for c in fm["configs"]] == list(CONFIGS["sft"])
    assert fm["configs"][0].get("default") is True
    for c in fm["configs"]:
        splits = [d["split"] for d in c["data_files"]]
        assert splits == [s for s in SPLITS if manifest.configs[c["config_name"]][s].examples]
        for d in c["data_files"]:
            assert d["path"].endswith(".parquet") and (out / d["path"]).is_file()
    for config, splits in manifest.configs.items():
        row = f"| `{config}` | " + " | ".join(str(splits[s].examples) for s in SPLITS)
        assert row in card
    assert "fingerprint" in card and 'load_dataset("json"' in card and "## Redaction" in card


def test_small_dataset_writes_no_empty_split_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    incidents = range(3)
    manifest = write_dataset(out, "eval", {"eval": records_for("eval", incidents)}, card=CARD)
    used = {split_of(fp_of(n)) for n in incidents}
    for split in SPLITS:
        entry = manifest.configs["eval"][split]
        assert (entry.examples > 0) == (split in used)
        assert (out / "eval" / f"{split}.jsonl").exists() == (split in used)
        assert (out / "eval" / f"{split}.parquet").exists() == (split in used)
        assert len(load_split(out, "eval", split, "parquet")) == entry.examples
    front = _front_matter((out / "README.md").read_text())
    declared = {d["split"] for d in front["configs"][0]["data_files"]}
    assert declared == used


def test_jsonl_only_export_points_the_card_at_jsonl(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_dataset(out, "kto", dataset("kto", range(20)), file_formats=("jsonl",), card=CARD)
    assert not list(out.rglob("*.parquet"))
    paths = [d["path"] for d in _front_matter((out / "README.md").read_text())["configs"][0]["data_files"]]
    assert paths and all(p.endswith(".jsonl") and (out / p).is_file() for p in paths)
    with pytest.raises(BadInput) as exc:
        load_split(out, "kto", "train", "parquet")
    assert exc.value.field == "file_format"


def test_manifest_sha256_and_sizes_match_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    written = write_dataset(out, "dpo", dataset("dpo", range(25)), ratios=(0.6, 0.2, 0.2), card=CARD)
    raw = json.loads((out / "manifest.json").read_text())
    assert raw["rca_export"] == 1 and raw["format"] == "dpo" and raw["ratios"] == [0.6, 0.2, 0.2]
    assert raw["generator"] == CARD.generator and raw["record_generators"] == ["rca 0.1.0 export"]
    manifest = read_manifest(out)
    assert manifest == written
    paths = manifest.paths()
    assert sorted(paths) == sorted(p for p in files_under(out) if p not in ("README.md", "manifest.json"))
    for splits in manifest.configs.values():
        for entry in splits.values():
            for f in entry.files.values():
                data = (out / f.path).read_bytes()
                assert hashlib.sha256(data).hexdigest() == f.sha256 and len(data) == f.bytes
            lines = (out / entry.files["jsonl"].path).read_text().splitlines() if entry.files else []
            assert len(lines) == entry.examples
            assert entry.incidents == len({json.loads(x)["meta"]["fingerprint"] for x in lines})


# ---------------------------------------------------------------- the output directory

def test_refuses_a_non_empty_foreign_directory(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(BadInput) as exc:
        write_dataset(out, "sft", dataset("sft", range(5)), card=CARD)
    assert exc.value.field == "out"
    assert files_under(out) == {"notes.txt": b"keep me"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(BadInput) as exc:
        write_dataset(tmp_path / "file", "sft", dataset("sft", range(5)), card=CARD)
    assert exc.value.field == "out"


def test_refuses_a_previous_export_with_foreign_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_dataset(out, "sft", dataset("sft", range(5)), card=CARD)
    (out / "sft_messages" / "mine.txt").write_text("not rca's")
    before = files_under(out)
    with pytest.raises(BadInput) as exc:
        write_dataset(out, "sft", dataset("sft", range(8)), card=CARD)
    assert exc.value.field == "out" and "mine.txt" in exc.value.message
    assert files_under(out) == before


def test_empty_directory_is_accepted(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    write_dataset(out, "eval", {"eval": records_for("eval", range(10))}, card=CARD)
    assert (out / "manifest.json").is_file()


def test_overwriting_a_previous_export_replaces_it_whole(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_dataset(out, "dpo", dataset("dpo", range(30)), card=CARD)
    manifest = write_dataset(out, "sft", {"sft_messages": records_for("sft_messages", range(12))}, card=CARD)
    assert set(manifest.configs) == {"sft_messages"}
    top = sorted({p.split("/")[0] for p in files_under(out)})
    assert top == ["README.md", "manifest.json", "sft_messages"]
    assert read_manifest(out) == manifest
    got = [r for s in SPLITS for r in load_split(out, "sft_messages", s)]
    assert len(got) == 24
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp or backup directories left


def test_failure_mid_write_leaves_the_previous_export_intact(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    write_dataset(out, "sft", dataset("sft", range(10)), card=CARD)
    before = files_under(out)
    real = writer_mod._write_split
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(writer_mod, "_write_split", flaky)
    with pytest.raises(OSError):
        write_dataset(out, "sft", dataset("sft", range(40)), card=CARD)
    assert calls["n"] == 3
    assert files_under(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    calls["n"] = 0
    with pytest.raises(OSError):
        write_dataset(tmp_path / "new", "sft", dataset("sft", range(40)), card=CARD)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_load_split_on_a_foreign_directory_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput) as exc:
        load_split(tmp_path, "eval", "train")
    assert exc.value.field == "out"


def test_split_of_follows_the_documented_formula() -> None:
    """The split must not change between rca versions or processes: an incident keeps its split."""
    for i in range(200):
        fp = fp_of(i)
        u = int(hashlib.sha256(fp.encode()).hexdigest()[:16], 16) / 2**64
        expected = "train" if u < 0.8 else "validation" if u < 0.9 else "test"
        assert split_of(fp) == expected
