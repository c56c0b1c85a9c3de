"""The export configs, their JSON Schemas (``datasets/schemas/``) and their Parquet (Arrow) schemas.

One JSON Schema (draft 2020-12) per config, shared parts in ``common.schema.json``; the ``$id``
values live under the reserved ``rca.invalid`` domain, so nothing is ever fetched: refs resolve
through a local ``referencing`` registry built from the files. Besides the schema,
``validate_records`` checks what JSON Schema cannot say: every assistant message's content parses
as a JSON object, strings are valid Unicode, and ``meta.example_id`` is unique within a config.

The Arrow schemas are written by hand next to the JSON Schemas (a test pins that both name the
same keys) so nulls, nested lists and structs round-trip exactly through Parquet.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rca.errors import BadInput

if TYPE_CHECKING:  # pyarrow is imported lazily: `rca --help` must stay fast
    import pyarrow as pa

__all__ = ["ASSISTANT_PATHS", "CONFIGS", "arrow_schema", "load_schema", "schemas_dir", "validate_records"]

CONFIGS: dict[str, tuple[str, ...]] = {
    "sft": ("sft_messages", "sft_prompt_completion"),
    "dpo": ("dpo", "dpo_openai"),
    "kto": ("kto",),
    "eval": ("eval",),
}
_ALL = tuple(c for cs in CONFIGS.values() for c in cs)

# where each config keeps its assistant messages (content must be a JSON object)
ASSISTANT_PATHS: dict[str, tuple[tuple[str | int, ...], ...]] = {
    "sft_messages": (("messages", 2),),
    "sft_prompt_completion": (("completion", 0),),
    "dpo": (("chosen", 0), ("rejected", 0)),
    "dpo_openai": (("preferred_output", 0), ("non_preferred_output", 0)),
    "kto": (("completion", 0),),
    "eval": (),
}


def schemas_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "datasets" / "schemas"


def _check_config(config: str) -> None:
    if config not in _ALL:
        raise BadInput(f"unknown export config {config!r}", field="config",
                       fix=f"use one of {', '.join(_ALL)}")


def load_schema(config: str) -> dict[str, Any]:
    """The JSON Schema of one config (``"common"`` gives the shared definitions)."""
    if config != "common":
        _check_config(config)
    return json.loads((schemas_dir() / f"{config}.schema.json").read_text(encoding="utf-8"))


@cache
def _validator(config: str) -> Any:
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    resources = []
    for path in sorted(schemas_dir().glob("*.schema.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resources.append((contents["$id"], Resource.from_contents(contents)))
    registry = Registry().with_resources(resources)  # no `retrieve`: an unknown $ref fails, never fetches
    return Draft202012Validator(load_schema(config), registry=registry)


def _path(parts: Iterable[str | int]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _field(config: str, i: int, parts: Sequence[str | int]) -> str:
    p = _path(parts)
    return f"{config}[{i}]" + (("" if p.startswith("[") else ".") + p if p else "")


def _describe(error: Any) -> tuple[list[str | int], str]:
    """JSON path and message of a jsonschema error; a missing or extra key is put into the path."""
    parts: list[str | int] = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [k for k in error.validator_value if k not in error.instance]
        if missing:
            return [*parts, missing[0]], f"missing required key {missing[0]!r}"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in known)
        if extra:
            return [*parts, extra[0]], f"unexpected key {extra[0]!r} (allowed: {', '.join(sorted(known))})"
    if error.validator == "pattern" and "description" in error.schema:
        return parts, f"{error.instance!r} does not match: {error.schema['description']}"
    return parts, error.message


def _get(record: Any, parts: Sequence[str | int]) -> Any:
    for p in parts:
        record = record[p]
    return record


def validate_records(config: str, records: Sequence[Mapping[str, Any]]) -> None:
    """Raise ``BadInput(field="<config>[<i>].<json path>")`` for the first invalid record."""
    _check_config(config)
    from jsonschema.exceptions import best_match

    validator = _validator(config)
    fix = f"the record must follow datasets/schemas/{config}.schema.json"
    seen: dict[str, int] = {}
    for i, record in enumerate(records):
        error = best_match(validator.iter_errors(record))
        if error is not None:
            parts, message = _describe(error)
            where = _path(parts) or "the record"
            raise BadInput(f"record {i} of {config} is invalid at {where}: {message}",
                           field=_field(config, i, parts), fix=fix)
        for parts in ASSISTANT_PATHS[config]:
            content = _get(record, (*parts, "content"))
            try:
                parsed = json.loads(content)
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict):
                where = _path((*parts, "content"))
                raise BadInput(f"record {i} of {config}: {where} is not a JSON object serialized as a string",
                               field=_field(config, i, (*parts, "content")),
                               fix="serialize the assistant answer with json.dumps({...})")
        try:
            json.dumps(record, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise BadInput(f"record {i} of {config} holds a string that is not valid Unicode ({exc.reason})",
                           field=_field(config, i, ()), fix="drop or replace lone surrogates") from None
        example_id = record["meta"]["example_id"]
        if example_id in seen:
            raise BadInput(f"record {i} of {config} repeats meta.example_id {example_id!r} of record "
                           f"{seen[example_id]}", field=_field(config, i, ("meta", "example_id")),
                           fix="give every example its own id")
        seen[example_id] = i


@cache
def arrow_schema(config: str) -> pa.Schema:
    """The explicit Arrow schema of one config; field order is the order of keys in the JSON lines."""
    _check_config(config)
    import pyarrow as pa

    s = pa.string()
    message = pa.struct([("role", s), ("content", s)])
    messages = pa.list_(message)
    labels = pa.struct([("root_cause", s), ("category", s)])
    meta_fields = [("example_id", s), ("incident_id", s), ("fingerprint", s), ("origin", s), ("scenario", s),
                   ("seed", pa.int64()), ("window", pa.list_(s)), ("labels", labels), ("verdict", s),
                   ("generator", s), ("created_at", s)]
    meta = pa.struct(meta_fields)
    meta_rejected = pa.struct([*meta_fields, ("rejected_kind", s)])
    fields: dict[str, list[tuple[str, pa.DataType]]] = {
        "sft_messages": [("messages", messages), ("meta", meta)],
        "sft_prompt_completion": [("prompt", messages), ("completion", messages), ("meta", meta)],
        "dpo": [("prompt", messages), ("chosen", messages), ("rejected", messages), ("meta", meta_rejected)],
        "dpo_openai": [("input", pa.struct([("messages", messages)])), ("preferred_output", messages),
                       ("non_preferred_output", messages), ("meta", meta_rejected)],
        "kto": [("prompt", messages), ("completion", messages), ("label", pa.bool_()),
                ("meta", meta_rejected)],
        "eval": [("question", s), ("context", s), ("expected", labels), ("meta", meta)],
    }
    return pa.schema(fields[config])
