"""``rca feedback``, ``rca train …``, ``rca export`` and ``rca bench feedback``: learning from
verdicts and datasets from confirmed incidents (registered on the apps of ``rca.cli_common``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from rca.cli_common import DbOpt, JsonOpt, app, bench_app, emit_bench, open_store, out, print_json
from rca.errors import BadInput

train_app = typer.Typer(no_args_is_help=True, help="The learned re-ranker: train, list versions, roll back.")
app.add_typer(train_app, name="train")


@app.command()
def feedback(
    incident: Annotated[str | None, typer.Argument(help="incident id (from `rca ask --store`, the API or the bot)")] = None,
    confirm: Annotated[bool, typer.Option("--confirm", help="the hypothesis at --rank (default 1) is right")] = False,
    rank: Annotated[int, typer.Option("--rank", min=1, help="which hypothesis --confirm means")] = 1,
    reject: Annotated[int | None, typer.Option("--reject", min=1, help="hypothesis N is wrong")] = None,
    root: Annotated[str | None, typer.Option("--root", help="the right root entity, kind:name")] = None,
    category: Annotated[str | None, typer.Option("--category", help="the right category, e.g. gpu_hw_fault")] = None,
    note: Annotated[str, typer.Option("--note", help="free text kept with the verdict")] = "",
    author: Annotated[str | None, typer.Option("--author", help="who gives it (default: $USER)")] = None,
    list_: Annotated[bool, typer.Option("--list", help="show the verdicts (all, or INCIDENT's) instead")] = False,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Confirm a hypothesis, reject one, or name the right root: `rca feedback INC --confirm`,
    `--reject 2`, `--root gpu:node-3/0 --category gpu_hw_fault`. Idempotent; `--list` shows the trail."""
    import os

    from rca.learn import label_of
    from rca.serialize import to_jsonable
    from rca.types import ENTITY_KINDS, Feedback

    store = open_store(db)
    if list_:
        fbs = store.list_feedback(incident)
        if json_:
            print_json([to_jsonable(f) for f in fbs])
        else:
            for f in fbs:
                what = f"rank {f.hypothesis_rank}" if f.hypothesis_rank else f"{f.correct_root} {f.correct_category or ''}"
                out.print(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(f.at))}  {f.incident_id}  {f.verdict:8} "
                          f"{what}  by {f.author or '?'}  {f.note}")
        return
    if incident is None:
        raise BadInput("which incident?", field="INCIDENT", fix="give the incident id, e.g. rca feedback inc-1a2b --confirm")
    chosen = [name for name, on in (("--confirm", confirm), ("--reject", reject is not None), ("--root", root))
              if on]
    if len(chosen) != 1:
        raise BadInput(f"give exactly one of --confirm, --reject N, --root ENTITY (got {', '.join(chosen) or 'none'})",
                       field="verdict", fix="e.g. --confirm, or --reject 1, or --root gpu:gpu-node-3/0")
    if root is not None and (":" not in root or root.split(":", 1)[0] not in ENTITY_KINDS):
        raise BadInput(f"{root!r} is not an entity id", field="--root",
                       fix=f"use kind:name with kind one of {', '.join(sorted(ENTITY_KINDS))}")
    if category is not None and root is None and not confirm:
        raise BadInput("--category goes with --confirm or --root", field="--category",
                       fix="add --root ENTITY (or --confirm), or drop --category")
    who = author or os.environ.get("USER") or "cli"
    if confirm:
        fb = Feedback(incident, "confirm", rank, None, category, note, who, int(time.time()))
    elif reject is not None:
        fb = Feedback(incident, "reject", reject, None, None, note, who, int(time.time()))
    else:
        fb = Feedback(incident, "correct", None, root, category, note, who, int(time.time()))
    created = store.add_feedback(fb)
    inc = store.get_incident(incident)
    label = label_of(inc, store.list_feedback(incident))
    res = {"feedback": to_jsonable(fb), "created": created,
           "label": {"root": label.root, "category": label.category, "verdict": label.verdict,
                     "rejected": list(label.rejected)}}
    if json_:
        print_json(res)
    else:
        out.print(("recorded" if created else "already recorded") + f": {fb.verdict} on {incident}; the incident's "
                  f"label is now {label.root or 'open (no root named)'}"
                  + (f" ({label.category})" if label.category else ""))


@train_app.command("ranker")
def train_ranker_cmd(
    holdout: Annotated[float, typer.Option(help="share of labelled incidents held back to judge the new version")] = 0.25,
    min_labels: Annotated[int, typer.Option(help="train only with at least this many usable labels")] = 20,
    c: Annotated[float, typer.Option("--c", help="inverse L2 strength of the logistic regression")] = 1.0,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Train a re-ranker on the labelled incidents; it becomes active only if it beats the
    current ranking on the held-back ones (both numbers are printed and kept)."""
    from rca.learn import train_ranker

    if c <= 0:
        raise BadInput(f"--c must be positive, got {c}", field="--c", fix="use e.g. 1.0")
    rep = train_ranker(open_store(db), holdout=holdout, min_labels=min_labels, c=c, note="rca train ranker")
    res = {"version": rep.version, "activated": rep.activated, "reason": rep.reason, "metrics": dict(rep.metrics),
           "top_features": [list(x) for x in rep.top_features]}
    if json_:
        print_json(res)
        return
    out.print(f"version {rep.version}: {rep.reason}" if rep.version else rep.reason)
    m = rep.metrics
    if "base" in m:
        out.print(f"held back {m['held_back']} of {m['usable']} usable labels: base AC@1 {m['base']['ac_at_1']:.2f} "
                  f"mean rank {m['base']['mean_rank']}, learned AC@1 {m['learned']['ac_at_1']:.2f} "
                  f"mean rank {m['learned']['mean_rank']}")
        out.print("strongest features: " + ", ".join(f"{n} {w:+.2f}" for n, w in rep.top_features[:6]))


@train_app.command("list")
def train_list(db: DbOpt = None, json_: JsonOpt = False) -> None:
    """Every trained version, newest first, with its held-back numbers and status."""
    rows = open_store(db).list_models()
    if json_:
        print_json(rows)
        return
    if not rows:
        out.print("no trained versions yet: `rca train ranker`")
    for r in rows:
        m = r["metrics"]
        nums = (f"base {m['base']['ac_at_1']:.2f} -> learned {m['learned']['ac_at_1']:.2f} on {m['held_back']} held back"
                if "base" in m else "")
        out.print(f"v{r['version']}  {r['status']:9} {time.strftime('%Y-%m-%d %H:%M', time.gmtime(r['created_at']))}  "
                  f"{nums}  {r['note']}")


@train_app.command("rollback")
def train_rollback(
    version: Annotated[int | None, typer.Argument(help="version to make active (default: the one before)")] = None,
    base: Annotated[bool, typer.Option("--base", help="use no learned version: the base ranker alone")] = False,
    db: DbOpt = None,
) -> None:
    """Make another version active (running servers pick it up within seconds)."""
    store = open_store(db)
    if base and version is not None:
        raise BadInput("give a VERSION or --base, not both", field="--base", fix="drop one of them")
    if not base and version is None:
        rows = store.list_models()
        active = next((r for r in rows if r["status"] == "active"), None)
        older = [r for r in rows if r["status"] == "retired" and (active is None or r["version"] < active["version"])]
        if not older:
            raise BadInput("no earlier version to roll back to", field="VERSION",
                           fix="name a version from `rca train list`, or use --base")
        version = older[0]["version"]
    before = store.activate_model(None if base else version)
    out.print(f"active: {'base ranker' if base else f'v{version}'} (was {f'v{before}' if before else 'base ranker'})")


@train_app.command("show")
def train_show(version: Annotated[int, typer.Argument(help="version")],
               out_file: Annotated[Path | None, typer.Option("--out", help="write the JSON here")] = None,
               db: DbOpt = None) -> None:
    """The weights (JSON) and metrics of one version."""
    import json

    row = open_store(db).get_model(version)
    doc = json.dumps(row, indent=2)
    if out_file:
        out_file.write_text(doc + "\n")
    else:
        print(doc)


@app.command("export")
def export_cmd(
    format_: Annotated[str, typer.Option("--format", help="sft | dpo | kto | eval")],
    out_dir: Annotated[Path, typer.Option("--out", help="dataset directory (created; a previous export is replaced)")],
    from_sim: Annotated[int, typer.Option("--from-sim", min=0, help="add N simulated incidents with ground truth")] = 0,
    no_store: Annotated[bool, typer.Option("--no-store", help="only simulated incidents, not the store's")] = False,
    file_format: Annotated[list[str] | None, typer.Option("--file-format", help="jsonl and/or parquet")] = None,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Datasets from confirmed incidents: JSONL + Parquet, split by incident, dataset card,
    redacted (emails, IPs, tokens, keys, user ids, credentials in URLs, RCA_REDACT_PATTERNS)."""
    from rca.export.run import FORMATS, collect_items, export_dataset, sim_items
    from rca.export.writer import FILE_FORMATS
    from rca.redact import Redactor, check_patterns
    from rca.settings import Settings
    from rca.wiring import build_engine

    if format_ not in FORMATS:
        raise BadInput(f"unknown format {format_!r}", field="--format", fix=f"use one of {', '.join(FORMATS)}")
    settings = Settings()
    check_patterns(settings.redact_patterns)
    store = None if no_store else open_store(db)
    items = collect_items(store)
    if from_sim:
        items += sim_items(from_sim, build_engine(settings, [], store=None))
    manifest = export_dataset(format_, out_dir, items, redactor=Redactor(settings.redact_patterns, salt=settings.redact_salt),
                              file_formats=tuple(file_format or FILE_FORMATS))
    res = manifest.to_dict()
    if json_:
        print_json(res)
        return
    for config, splits in manifest.configs.items():
        counts = ", ".join(f"{s} {e.examples}" for s, e in splits.items())
        out.print(f"{out_dir / config}: {counts}")
    out.print(f"dataset card: {out_dir / 'README.md'}")


@bench_app.command("feedback")
def bench_feedback(
    train_seeds: Annotated[int, typer.Option(help="seeds per scenario labelled and fed back")] = 30,
    test_seeds: Annotated[int, typer.Option(help="fresh seeds per scenario to test on")] = 20,
    no_leave_out: Annotated[bool, typer.Option("--no-leave-out", help="skip the leave-one-scenario-out folds")] = False,
    out_file: Annotated[Path | None, typer.Option("--out", help="also write the JSON here")] = None,
    json_: JsonOpt = False,
) -> None:
    """The feedback loop on simulated incidents: label, train, AC@1 before/after on fresh seeds
    and on scenarios left out of training."""
    from rca.bench.feedback_bench import render_feedback_table, run_feedback_bench

    if train_seeds < 1 or test_seeds < 1:
        raise BadInput("need at least one training and one test seed", field="--train-seeds", fix="e.g. 30 and 20")
    res = run_feedback_bench(range(train_seeds), range(10_000, 10_000 + test_seeds),
                             leave_one_out=not no_leave_out, progress=not json_)
    emit_bench(res, render_feedback_table, out_file, json_)
