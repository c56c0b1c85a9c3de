"""Write export records as a dataset directory: splits, JSON lines + Parquet, card, manifest.

Layout of ``out_dir``::

    README.md                      dataset card (Hugging Face front matter)
    manifest.json                  counts per config/split, sha256 per file, ratios, generator
    <config>/train.jsonl           one record per line, keys in schema order
    <config>/train.parquet         same rows, explicit Arrow schema
    <config>/validation.* <config>/test.*

Splits are by incident: ``sha256(meta.fingerprint)`` picks the split, so every example of one
incident lands in one split in every config, and an incident keeps its split when the dataset
grows. An empty split gets no file (``datasets`` refuses declared splits without rows); the
manifest counts it as 0 and ``load_split`` returns ``[]`` for it.

Nothing is written unless every record validates. The dataset is built in a hidden temporary
directory next to ``out_dir`` and renamed into place, so a failed export leaves no half dataset;
an existing ``out_dir`` is replaced only if it is empty or a previous export holding nothing but
what its manifest lists. Same records (in any order) -> byte-identical files and manifest.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rca.errors import BadInput
from rca.export.card import CardInfo, render_card
from rca.export.schema import CONFIGS, arrow_schema, validate_records

__all__ = ["DEFAULT_RATIOS", "FILE_FORMATS", "SPLITS", "FileEntry", "Manifest", "SplitEntry", "assign_splits",
           "load_split", "read_manifest", "split_of", "write_dataset"]

SPLITS = ("train", "validation", "test")
FILE_FORMATS = ("jsonl", "parquet")
DEFAULT_RATIOS = (0.8, 0.1, 0.1)
MANIFEST = "manifest.json"
CARD = "README.md"
MARKER = "rca_export"  # manifest key that says "rca wrote this directory"; its value is the layout version
LAYOUT_VERSION = 1
_RATIOS_FIX = "give three non-negative numbers (train, validation, test) summing to 1, e.g. 0.8,0.1,0.1"


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the export directory, '/'-separated
    sha256: str
    bytes: int


@dataclass(frozen=True)
class SplitEntry:
    examples: int
    incidents: int  # distinct fingerprints
    files: dict[str, FileEntry]  # file format -> file; empty when examples == 0


@dataclass(frozen=True)
class Manifest:
    format: str
    generator: str
    ratios: tuple[float, float, float]
    file_formats: tuple[str, ...]
    configs: dict[str, dict[str, SplitEntry]]  # config -> split -> entry (all three splits)
    record_generators: tuple[str, ...] = ()  # distinct meta.generator values

    def to_dict(self) -> dict[str, Any]:
        return {MARKER: LAYOUT_VERSION, "format": self.format, "generator": self.generator,
                "record_generators": list(self.record_generators), "ratios": list(self.ratios),
                "file_formats": list(self.file_formats),
                "configs": {c: {s: {"examples": e.examples, "incidents": e.incidents,
                                    "files": {f: {"path": x.path, "sha256": x.sha256, "bytes": x.bytes}
                                              for f, x in e.files.items()}}
                                for s, e in splits.items()}
                            for c, splits in self.configs.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Manifest:
        def split(e: Mapping[str, Any]) -> SplitEntry:
            files = {f: FileEntry(x["path"], x["sha256"], x["bytes"]) for f, x in e["files"].items()}
            return SplitEntry(e["examples"], e["incidents"], files)

        configs = {c: {s: split(e) for s, e in splits.items()} for c, splits in d["configs"].items()}
        return cls(d["format"], d["generator"], tuple(d["ratios"]), tuple(d["file_formats"]), configs,
                   tuple(d.get("record_generators", ())))

    def paths(self) -> list[str]:
        return [x.path for splits in self.configs.values() for e in splits.values() for x in e.files.values()]


def _ratios(ratios: Iterable[float]) -> tuple[float, float, float]:
    try:
        r = tuple(float(x) for x in ratios)
    except (TypeError, ValueError):
        raise BadInput(f"split ratios {ratios!r} are not numbers", field="ratios", fix=_RATIOS_FIX) from None
    if len(r) != 3 or not all(math.isfinite(x) and x >= 0 for x in r) or abs(sum(r) - 1) > 1e-6 or r[0] == 0:
        raise BadInput(f"split ratios {ratios!r} are not three non-negative fractions summing to 1 "
                       "with a non-empty train share", field="ratios", fix=_RATIOS_FIX)
    return r  # type: ignore[return-value]


def split_of(fingerprint: str, ratios: Sequence[float] = DEFAULT_RATIOS) -> str:
    """``"train" | "validation" | "test"`` for an incident fingerprint: the first 8 bytes of its
    sha256 as a fraction in [0, 1) against the cumulative ratios. A zero ratio never gets an incident."""
    train, validation, test = _ratios(ratios)
    u = int.from_bytes(hashlib.sha256(fingerprint.encode("utf-8")).digest()[:8], "big") / 2**64
    if u < train:
        return "train"
    if validation > 0 and (u < train + validation or test == 0):
        return "validation"
    return "train" if test == 0 else "test"


def _sort_key(record: Mapping[str, Any]) -> tuple[str, str]:
    return record["meta"]["fingerprint"], record["meta"]["example_id"]


def assign_splits(records: Iterable[Mapping[str, Any]],
                  ratios: Sequence[float] = DEFAULT_RATIOS) -> dict[str, list[Mapping[str, Any]]]:
    """Group records by ``meta.fingerprint`` into the three splits; each split sorted by
    (fingerprint, example_id) so the output does not depend on the input order."""
    r = _ratios(ratios)
    out: dict[str, list[Mapping[str, Any]]] = {s: [] for s in SPLITS}
    memo: dict[str, str] = {}
    for record in records:
        fp = record["meta"]["fingerprint"]
        if fp not in memo:
            memo[fp] = split_of(fp, r)
        out[memo[fp]].append(record)
    for split in SPLITS:
        out[split].sort(key=_sort_key)
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_split(root: Path, config: str, split: str, records: list[Mapping[str, Any]],
                 file_formats: Sequence[str]) -> dict[str, FileEntry]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(list(records), schema=arrow_schema(config))
    (root / config).mkdir(exist_ok=True)
    files: dict[str, FileEntry] = {}
    for fmt in file_formats:
        rel = f"{config}/{split}.{fmt}"
        path = root / rel
        if fmt == "jsonl":
            with path.open("w", encoding="utf-8", newline="\n") as f:
                for row in table.to_pylist():  # schema key order, whatever the input's order
                    f.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
        else:
            pq.write_table(table, path, compression="snappy")
        files[fmt] = FileEntry(rel, _sha256(path), path.stat().st_size)
    return files


def _check_request(format: str, configs: Mapping[str, Sequence[Mapping[str, Any]]],
                   file_formats: Sequence[str]) -> None:
    if format not in CONFIGS:
        raise BadInput(f"unknown export format {format!r}", field="format",
                       fix=f"use one of {', '.join(CONFIGS)}")
    unknown = sorted(set(configs) - set(CONFIGS[format]))
    if unknown or not configs:
        raise BadInput(f"format {format!r} has configs {', '.join(CONFIGS[format])}; "
                       f"got {', '.join(unknown) or 'none'}",
                       field="configs", fix=f"pass records for {', '.join(CONFIGS[format])}")
    bad = [f for f in file_formats if f not in FILE_FORMATS]
    if bad or not file_formats or len(set(file_formats)) != len(file_formats):
        raise BadInput(f"file formats {list(file_formats)!r} are not a non-empty set of "
                       f"{', '.join(FILE_FORMATS)}",
                       field="file_formats", fix="use jsonl, parquet or both")


def read_manifest(out_dir: Path) -> Manifest:
    """The manifest of a previous export; ``BadInput(field="out")`` if ``out_dir`` is not one."""
    path = Path(out_dir) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get(MARKER) != LAYOUT_VERSION:
            raise ValueError("no rca export marker")
        return Manifest.from_dict(data)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadInput(f"{out_dir} is not an rca export ({MANIFEST}: {exc})", field="out",
                       fix="point at a directory written by rca export") from None


def _check_out(out: Path) -> None:
    """Allow a new or empty directory, or a previous export that holds only what its manifest lists."""
    if not out.exists():
        return
    if not out.is_dir():
        raise BadInput(f"{out} exists and is not a directory", field="out", fix="choose a new directory")
    entries = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    if not entries:
        return
    fix = "choose a new or empty directory, or remove this one"
    try:
        manifest = read_manifest(out)
    except BadInput:
        raise BadInput(f"{out} is not empty and is not a previous rca export (no rca {MANIFEST})",
                       field="out", fix=fix) from None
    known = {MANIFEST, CARD, *manifest.paths(), *manifest.configs}
    foreign = [e for e in entries if e not in known]
    if foreign:
        raise BadInput(f"{out} is a previous rca export but also holds files rca did not write: "
                       f"{', '.join(foreign[:5])}", field="out", fix=fix)


def _swap_into_place(tmp: Path, out: Path) -> None:
    if not out.exists():
        os.rename(tmp, out)
        return
    old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:12]}"
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except OSError:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_dataset(out_dir: Path, format: str, configs: Mapping[str, Sequence[Mapping[str, Any]]], *,
                  ratios: Sequence[float] = DEFAULT_RATIOS, file_formats: Sequence[str] = FILE_FORMATS,
                  card: CardInfo) -> Manifest:
    """Validate every record, then write the dataset directory (layout in the module docstring).

    ``configs`` maps config name (a subset of ``CONFIGS[format]``, at least one) to its records.
    Raises ``BadInput`` for an invalid record (field ``<config>[<i>].<path>``), no records at all,
    bad ratios/formats, or an ``out_dir`` that is neither empty nor a previous export (field ``out``).
    """
    out = Path(out_dir)
    _check_request(format, configs, file_formats)
    r = _ratios(ratios)
    for config, records in configs.items():
        validate_records(config, records)
    if not any(configs.values()):
        raise BadInput("there are no records to export", field="records",
                       fix="confirm or correct some incidents (or simulate some) first")
    _check_out(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as exc:
        raise BadInput(f"cannot write next to {out}: {exc.strerror or exc}", field="out",
                       fix="choose a directory you can write to") from None
    try:
        entries: dict[str, dict[str, SplitEntry]] = {}
        for config in CONFIGS[format]:
            if config not in configs:
                continue
            entries[config] = {}
            for split, records in assign_splits(configs[config], r).items():
                files = _write_split(tmp, config, split, records, file_formats) if records else {}
                n_incidents = len({x["meta"]["fingerprint"] for x in records})
                entries[config][split] = SplitEntry(len(records), n_incidents, files)
        generators = sorted({x["meta"]["generator"] for records in configs.values() for x in records})
        manifest = Manifest(format, card.generator, r, tuple(file_formats), entries, tuple(generators))
        (tmp / MANIFEST).write_text(json.dumps(manifest.to_dict(), indent=2, ensure_ascii=False) + "\n",
                                    encoding="utf-8")
        (tmp / CARD).write_text(render_card(card, manifest), encoding="utf-8")
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def load_split(out_dir: Path, config: str, split: str, file_format: str = "jsonl") -> list[dict[str, Any]]:
    """The records of one split of one config, read back from JSON lines or Parquet (``[]`` for an
    empty split)."""
    out = Path(out_dir)
    manifest = read_manifest(out)
    if config not in manifest.configs:
        raise BadInput(f"this export has no config {config!r}", field="config",
                       fix=f"use one of {', '.join(manifest.configs)}")
    if split not in SPLITS:
        raise BadInput(f"unknown split {split!r}", field="split", fix=f"use one of {', '.join(SPLITS)}")
    if file_format not in manifest.file_formats:
        raise BadInput(f"this export has no {file_format!r} files", field="file_format",
                       fix=f"use one of {', '.join(manifest.file_formats)}")
    entry = manifest.configs[config][split].files.get(file_format)
    if entry is None:
        return []
    path = out / entry.path
    if file_format == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
