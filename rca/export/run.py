"""``rca export`` / ``GET /v1/export``: labelled incidents -> a redacted dataset directory.

Labelled incidents come from the store (every incident whose verdicts name a root, see
``rca.learn.label_of``) and, with ``from_sim=N``, from N simulated incidents with their ground
truth (fault scenarios in turn on varied fleets, seeds counting up), analysed by ``engine``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rca.errors import BadInput
from rca.export.card import CardInfo
from rca.export.records import Labelled, build_records
from rca.export.schema import CONFIGS
from rca.export.writer import DEFAULT_RATIOS, FILE_FORMATS, Manifest, write_dataset
from rca.learn import Label, collect_labels

__all__ = ["FORMATS", "collect_items", "export_dataset", "sim_items"]

FORMATS = tuple(CONFIGS)
DESCRIPTIONS = {
    "sft": "Supervised fine-tuning: incident context -> confirmed root-cause diagnosis (JSON).",
    "dpo": "Preference pairs: the confirmed diagnosis over a rejected hypothesis or a hard negative "
           "(the symptom restated as the cause, the wrong layer).",
    "kto": "Unpaired preferences: confirmed diagnoses (true) and hard negatives (false).",
    "eval": "Evaluation: question + incident context -> expected root cause and category.",
}


def _generator() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"rca {version('rca')} export"
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "rca export"


def sim_items(n: int, engine: Any, first_seed: int = 0) -> list[Labelled]:
    from rca.demo import analyze_sim
    from rca.sim import list_scenarios, simulate

    names = [s for s in list_scenarios() if s != "no_fault"]
    out = []
    for i in range(n):
        name, seed = names[i % len(names)], first_seed + i // len(names)
        res = simulate(name, seed, vary=True)
        inc = analyze_sim(res, engine)
        label = Label(inc.id, res.truth.root, res.truth.category, "sim")
        out.append(Labelled(inc, label, "sim", name, seed))
    return out


def collect_items(store: Any | None) -> list[Labelled]:
    if store is None:
        return []
    return [Labelled(inc, lab) for inc, lab in collect_labels(store) if lab.root is not None]


def export_dataset(fmt: str, out: Path, items: Sequence[Labelled], *, redactor: Any,
                   ratios: Sequence[float] = DEFAULT_RATIOS, file_formats: Sequence[str] = FILE_FORMATS,
                   name: str = "rca-incidents") -> Manifest:
    if fmt not in CONFIGS:
        raise BadInput(f"unknown export format {fmt!r}", field="format", fix=f"use one of {', '.join(FORMATS)}")
    if not items:
        raise BadInput("no labelled incidents to export", field="format",
                       fix="confirm or correct incidents first (rca feedback INCIDENT --confirm), "
                           "or add simulated ones with --from-sim N")
    gen = _generator()
    records = build_records(items, fmt, redactor, gen, int(time.time()))
    origins = sorted({i.origin for i in items})
    card = CardInfo(name=f"{name}-{fmt}", description=DESCRIPTIONS[fmt], generator=gen,
                    pretty_name=f"rca incidents ({fmt}; {', '.join(origins)})")
    return write_dataset(Path(out), fmt, records, ratios=ratios, file_formats=file_formats, card=card)
