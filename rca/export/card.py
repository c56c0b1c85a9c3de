"""The dataset card (``README.md``) of an export: Hugging Face YAML front matter, then markdown.

The front matter declares one ``configs`` entry per non-empty config with ``data_files`` per
non-empty split (Parquet when written, else JSON lines): ``datasets`` 5.2 refuses a declared
split whose file has no rows, so empty splits are counted in the card but neither written nor
declared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import yaml

from rca.export.schema import CONFIGS

if TYPE_CHECKING:
    from rca.export.writer import Manifest

__all__ = ["CardInfo", "render_card", "size_category"]

SPLITS = ("train", "validation", "test")

DEFAULT_LICENSE_NOTE = (
    "The examples are built from your own telemetry and your operators' verdicts, so no public "
    "license applies by default (`license: other`). Pick one (e.g. `cc-by-4.0`) with "
    "`CardInfo(license=...)` before you share the dataset, and only after the redaction review "
    "(section Redaction).")
DEFAULT_REDACTION = (
    "Prompts quote metric names and labels, log lines and span attributes from the incident window. "
    "Secrets never enter the store, but hostnames, IPs, tenant ids and user text in logs can: review a "
    "sample before you share the dataset outside the team.")

_CONFIG_DOCS: dict[str, tuple[str, str]] = {
    "sft_messages": ("`messages` [system, user, assistant], `meta`",
                     "OpenAI chat fine-tuning JSONL; TRL `SFTTrainer` (conversational language modeling)"),
    "sft_prompt_completion": ("`prompt` [system, user], `completion` [assistant], `meta`",
                              "TRL `SFTTrainer`, conversational prompt-completion (loss on the completion)"),
    "dpo": ("`prompt` [system, user], `chosen` [assistant], `rejected` [assistant], `meta`",
            "TRL `DPOTrainer` (conversational preference, explicit prompt)"),
    "dpo_openai": ("`input.messages` [system, user], `preferred_output`, `non_preferred_output`, `meta`",
                   "OpenAI / Together / Fireworks preference fine-tuning"),
    "kto": ("`prompt` [system, user], `completion` [assistant], `label` (bool), `meta`",
            "TRL `KTOTrainer` (conversational unpaired preference)"),
    "eval": ("`question`, `context`, `expected` {root_cause, category}, `meta`",
             "evaluation of a model or of the engine: compare the answer's root cause with `expected`"),
}

_META_DOC = """\
| `meta` key | meaning |
|---|---|
| `example_id` | unique id of the example within its config |
| `incident_id` | the incident in the rca store, or the simulated run |
| `fingerprint` | hex fingerprint of the incident; decides the split |
| `origin` | `feedback` (an operator's verdict on a real incident) or `sim` (simulated) |
| `scenario`, `seed` | simulator scenario and seed (null for real incidents) |
| `window` | [start, end] of the analysed window, RFC 3339 UTC |
| `labels` | ground truth: `root_cause` (entity id `kind:name`), `category` (or null) |
| `verdict` | `confirm` (top hypothesis confirmed), `correct` (operator named the root), `sim` |
| `generator` | what built the example |
| `created_at` | when the example was built, RFC 3339 |
| `rejected_kind` | dpo, dpo_openai, kto only: how the negative was mined (`rejected_hypothesis`, \
`symptom`, `wrong_layer`, `unrelated`); null for KTO `label: true` |
"""


@dataclass(frozen=True)
class CardInfo:
    """What the card says beyond the counts (which come from the manifest).

    ``license`` defaults to ``other`` because incident data belongs to whoever runs rca; the card
    explains that (``license_note``). ``generator`` is also written into ``manifest.json``.
    """

    name: str
    description: str
    pretty_name: str | None = None
    license: str = "other"
    license_name: str | None = "incident-data-internal"
    license_note: str = DEFAULT_LICENSE_NOTE
    task_categories: tuple[str, ...] = ("text-generation",)
    tags: tuple[str, ...] = ("aiops", "root-cause-analysis", "sre", "llm-serving", "incidents")
    source: str = ("Incidents diagnosed by rca and confirmed or corrected by operators, and simulated "
                   "incidents with known ground truth.")
    redaction: str = DEFAULT_REDACTION
    generator: str = "rca export"


def size_category(n: int) -> str:
    """Hugging Face ``size_categories`` bucket for ``n`` examples."""
    labels = ("n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M", "100M<n<1B",
              "1B<n<10B", "10B<n<100B", "100B<n<1T")
    for power, label in enumerate(labels, start=3):
        if n < 10**power:
            return label
    return "n>1T"


def _front_matter(info: CardInfo, manifest: Manifest) -> str:
    sizes = [sum(s.examples for s in splits.values()) for splits in manifest.configs.values()]
    largest = max(sizes, default=0)
    configs = []
    for config, splits in manifest.configs.items():
        data_files = []
        for split in SPLITS:
            files = splits[split].files
            entry = files.get("parquet") or files.get("jsonl")
            if entry is not None:
                data_files.append({"split": split, "path": entry.path})
        if data_files:
            configs.append({"config_name": config, **({"default": True} if not configs else {}),
                            "data_files": data_files})
    meta: dict[str, object] = {"pretty_name": info.pretty_name or info.name, "license": info.license}
    if info.license == "other" and info.license_name:
        meta["license_name"] = info.license_name
    meta.update({"language": ["en"], "task_categories": list(info.task_categories), "tags": list(info.tags),
                 "size_categories": [size_category(largest)], "configs": configs})
    return yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000)


_LOAD_NOTE = (
    'Trainers ignore unknown columns; drop `meta` with `ds.remove_columns("meta")` if yours does not. '
    "The JSON lines are also plain OpenAI-style JSONL (`sft_messages`, `dpo_openai`). The Parquet "
    "files carry the exact schema; the `json` loader infers types instead (`meta.created_at` becomes "
    'a timestamp). `load_dataset("parquet", data_dir=...)` on a config folder fails because the JSON '
    "lines sit next to the Parquet files: use `data_files` as above.")
_ASSISTANT_NOTE = (
    "Message contents are plain text except the assistant's, which is a JSON object serialized as a "
    "string (`root_cause`, evidence, confidence ...), so answers can be checked mechanically. JSON "
    "Schemas of every config are in the rca repository (`datasets/schemas/<config>.schema.json`).")
_SPLITS_NOTE = (
    "An example's split is decided by `sha256(meta.fingerprint)` alone (train {0:g} / validation {1:g} / "
    "test {2:g} of incidents, not of examples), so every example of one incident, and every config "
    "built from it, lands in the same split: no incident leaks from train into evaluation. The "
    "assignment does not depend on what else is exported, so an incident keeps its split when the "
    "dataset grows.\n\n"
    "With few incidents the split sizes are lumpy and some splits can be empty (3 incidents may all "
    "land in train). An empty split is counted below with 0 but has no file and is not declared in "
    "`configs` (`datasets` refuses declared splits without rows).")


def _load_snippets(manifest: Manifest) -> str:
    first = next((c for c, s in manifest.configs.items() if any(x.files for x in s.values())), None)
    if first is None:
        return "The export holds no examples yet.\n"
    splits = manifest.configs[first]
    lines = ["```python", "from datasets import load_dataset", "",
             f'ds = load_dataset("path/to/this/dir", "{first}")   # uses the configs above']
    for fmt, builder in (("parquet", "parquet"), ("jsonl", "json")):
        files = {s: splits[s].files[fmt].path for s in SPLITS if fmt in splits[s].files}
        if files:
            mapping = ", ".join(f'"{s}": "path/to/this/dir/{p}"' for s, p in files.items())
            lines.append(f'ds = load_dataset("{builder}", data_files={{{mapping}}})')
    lines += ["```", "", _LOAD_NOTE]
    return "\n".join(lines) + "\n"


def render_card(info: CardInfo, manifest: Manifest) -> str:
    """The dataset card: YAML front matter (parses with ``yaml.safe_load``) and markdown."""
    out = ["---", _front_matter(info, manifest).rstrip("\n"), "---", "",
           f"# {info.pretty_name or info.name}", "", info.description, "",
           "## Source", "", info.source, "",
           f"Export format: `{manifest.format}`; generator: `{manifest.generator}`.", "",
           "## Configs", "", "| config | columns | use with |", "|---|---|---|"]
    for config in CONFIGS[manifest.format]:
        if config in manifest.configs:
            columns, use = _CONFIG_DOCS[config]
            out.append(f"| `{config}` | {columns} | {use} |")
    out += ["", _ASSISTANT_NOTE, "", "## Fields", "", _META_DOC,
            "## Splits", "", _SPLITS_NOTE.format(*manifest.ratios), "",
            "## Redaction", "", info.redaction, "",
            "## How to load", "", _load_snippets(manifest),
            "## Counts", "", "| config | train | validation | test | incidents |", "|---|---|---|---|---|"]
    for config, splits in manifest.configs.items():
        counts = " | ".join(str(splits[s].examples) for s in SPLITS)
        out.append(f"| `{config}` | {counts} | {sum(splits[s].incidents for s in SPLITS)} |")
    named = f" ({info.license_name})" if info.license == "other" and info.license_name else ""
    out += ["", "`manifest.json` lists every file with its sha256.", "",
            "## License", "", f"`{info.license}`{named}. {info.license_note}", ""]
    return "\n".join(out)
