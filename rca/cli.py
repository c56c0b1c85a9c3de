"""The ``rca`` command line (typer + rich). Thin: parse, call the engine, render.

Heavy modules are imported inside commands so ``rca --help`` starts fast. Every command has
``--json`` for machine output. Bad input exits 2 with a message naming the field and the fix.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from rca.errors import BadInput, RcaError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="rca — anomaly and root-cause engine for fleets that serve AI.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks: rank accuracy on case folders.")
app.add_typer(bench_app, name="bench")
logs_app = typer.Typer(no_args_is_help=True, help="Log template mining.")
app.add_typer(logs_app, name="logs")
sources_app = typer.Typer(no_args_is_help=True, help="Telemetry sources: health of what is configured.")
app.add_typer(sources_app, name="sources")
keys_app = typer.Typer(no_args_is_help=True, help="API keys for `rca serve` (stored hashed).")
app.add_typer(keys_app, name="keys")
SourceOpt = Annotated[list[str] | None, typer.Option(
    "--source", help="source URL (repeatable): prometheus://host:9090, victoriametrics://host:8428, "
                     "loki://…, tempo://…, jaeger://…, otlp, file:///path, sim://SCENARIO?seed=N; "
                     "default: RCA_SOURCES_FILE")]
out = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="print machine-readable JSON")]


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def _store(db: str | None):
    from rca.settings import Settings
    from rca.wiring import build_store

    s = Settings()
    if db:
        s = s.model_copy(update={"database_url": db})
    return build_store(s)


@app.command()
def scenarios(json_: JsonOpt = False) -> None:
    """List the simulator's scenarios."""
    from rca.sim import list_scenarios, load_scenario

    rows = [{"name": n, "description": load_scenario(n).description} for n in list_scenarios()]
    if json_:
        _print_json(rows)
        return
    for r in rows:
        out.print(f"[bold]{r['name']}[/bold]  {r['description']}")


@app.command()
def demo(
    scenario: Annotated[str, typer.Option(help="scenario name (see `rca scenarios`)")] = "kv_cache_exhaustion",
    seed: Annotated[int, typer.Option(help="simulation seed")] = 0,
    db: Annotated[str | None, typer.Option(help="store URL (default: RCA_DATABASE_URL or a local SQLite file)")] = None,
    json_: JsonOpt = False,
) -> None:
    """Simulate an AI-serving incident, ask "why was p99 slow at HH:MM?", show the answer."""
    from rca.demo import run_demo

    result = run_demo(scenario, seed, store=_store(db))
    if json_:
        _print_json(result)
        return
    from rca.render import render_answer

    render_answer(out, result)


@app.command()
def simulate(
    scenario: Annotated[str, typer.Option(help="scenario name (see `rca scenarios`)")],
    out_dir: Annotated[Path, typer.Option("--out", help="directory to write into")],
    seed: Annotated[int, typer.Option(help="simulation seed")] = 0,
    json_: JsonOpt = False,
) -> None:
    """Write a scenario's telemetry: OpenMetrics, OTLP/JSON, JSON lines and a case folder."""
    from rca.emit.bundle import write_bundle
    from rca.sim import simulate as sim

    result = sim(scenario, seed)
    paths = write_bundle(result, out_dir)
    payload = {"scenario": scenario, "seed": seed, "out": str(out_dir),
               "files": {k: str(v) for k, v in paths.items()},
               "truth": {"root": result.truth.root, "category": result.truth.category}}
    if json_:
        _print_json(payload)
        return
    out.print(f"[green]wrote[/green] {scenario} (seed {seed}) to {out_dir}")
    for k, v in payload["files"].items():
        out.print(f"  {k:>8}  {v}")


@app.command()
def rank(
    case_dir: Annotated[Path, typer.Argument(help="a case folder (metrics.csv, inject_time.txt …)")],
    detect_time: Annotated[bool, typer.Option("--detect-time", help="find the anomaly onset instead of reading inject_time.txt")] = False,
    json_: JsonOpt = False,
) -> None:
    """Rank root causes of one case folder."""
    from rca.casefolder import rank_case

    result = rank_case(case_dir, detect_time=detect_time)
    if json_:
        _print_json(result)
        return
    from rich.table import Table

    t = Table(title=f"root causes — {case_dir}")
    for col in ("#", "service", "score", "category", "top metric"):
        t.add_column(col)
    for i, r in enumerate(result["ranks"], 1):
        t.add_row(str(i), r["service"], f"{r['score']:.2f}", r["category"], r["metric"] or "")
    out.print(t)
    if result.get("label"):
        out.print(f"label: {result['label']}")


@bench_app.command("rca")
def bench_rca(
    dirs: Annotated[list[Path] | None, typer.Argument(help="folders of case folders")] = None,
    sim: Annotated[str | None, typer.Option("--sim", help="simulator scenarios instead of folders: a comma list or 'all'")] = None,
    seeds: Annotated[int, typer.Option("--seeds", help="with --sim: seeds 0..N-1 per scenario (varied topology, noise, load)")] = 50,
    detect_time: Annotated[bool, typer.Option("--detect-time", help="every ranker uses the detected onset, not inject_time.txt")] = False,
    out_file: Annotated[Path | None, typer.Option("--out", help="write the JSON result here")] = None,
    json_: JsonOpt = False,
) -> None:
    """AC@1 / AC@3 / Avg@5, per fault type and runtime, of our ranker beside BARO, N-Sigma and random."""
    if sim is not None:
        from rca.bench.sim_bench import render_sim_table, run_sim_rca_bench
        from rca.sim import list_scenarios

        names = list_scenarios() if sim.strip() == "all" else [s.strip() for s in sim.split(",") if s.strip()]
        unknown = sorted(set(names) - set(list_scenarios()))
        if unknown or not names:
            raise BadInput(f"unknown scenario(s) {unknown or sim!r}", field="--sim",
                           fix=f"use 'all' or a comma list of: {', '.join(list_scenarios())}")
        if seeds < 1:
            raise BadInput(f"--seeds must be >= 1, got {seeds}", field="--seeds", fix="use e.g. --seeds 50")
        res = run_sim_rca_bench(names, range(seeds), progress=not json_)
        _emit_bench(res, render_sim_table, out_file, json_)
        return
    from rca.bench.rca_bench import render_report, run_rca_bench
    from rca.casefolder import bench_rankers

    if not dirs:
        raise BadInput("no case folders given", field="DIR", fix="pass folders of case folders, or --sim all")
    for d in dirs:
        if not d.exists():
            raise BadInput(f"{d} does not exist", field="DIR", fix="pass folders that hold case folders")
    res = run_rca_bench(dirs, bench_rankers(detect_time=detect_time), progress=not json_)
    _emit_bench(res.to_dict(), lambda _: render_report(res), out_file, json_)


@bench_app.command("sim")
def bench_sim(
    seeds: Annotated[int, typer.Option(help="seeds 0..N-1 per scenario")] = 10,
    json_: JsonOpt = False,
) -> None:
    """Top-1 root and category accuracy of `rca demo` over every simulator scenario and seed."""
    from rca.bench.sim_bench import run_sim_bench

    res = run_sim_bench(range(seeds), progress=not json_)
    if json_:
        _print_json(res)
        return
    from rich.table import Table

    t = Table(title=f"rca bench sim — {seeds} seeds per scenario")
    for col in ("scenario", "top-1 root", "top-1 root+category", "mean confidence"):
        t.add_column(col)
    for name, r in res["scenarios"].items():
        t.add_row(name, f"{r['root_at_1']:.2f}", f"{r['root_category_at_1']:.2f}", f"{r['mean_top_confidence']:.2f}")
    out.print(t)
    out.print(f"faults: root+category@1 {res['faults_root_category_at_1']:.3f}; "
              f"no-fault runs with a confident (>= 0.5) answer: {res['no_fault_confident']}")


def _emit_bench(res: dict, render: Any, out_file: Path | None, json_: bool) -> None:
    if out_file:
        out_file.write_text(json.dumps(res, indent=2))
    if json_:
        _print_json(res)
    else:
        out.print(render(res))


def _existing_dir(d: Path, what: str) -> None:
    if not d.is_dir():
        raise BadInput(f"{d} is not a directory", field="DIR", fix=f"pass a folder that holds {what}")


@app.command()
def detect(
    file: Annotated[Path, typer.Argument(help="a CSV of series: NAB (timestamp,value) or wide (timestamp + columns)")],
    out_file: Annotated[Path, typer.Option("--out", help="write timestamp,anomaly_score,is_anomaly here")],
    fmt: Annotated[str, typer.Option("--format", help="nab | wide")] = "nab",
    streaming: Annotated[bool, typer.Option("--streaming", help="causal: the score at t uses data <= t only")] = False,
    json_: JsonOpt = False,
) -> None:
    """Score a series file; scores in [0,1], flags from the calibrated threshold."""
    from rca.detect_file import detect_file

    if fmt not in ("nab", "wide"):
        raise BadInput(f"unknown format {fmt!r}", field="--format", fix="use nab or wide")
    if not file.is_file():
        raise BadInput(f"{file} does not exist", field="FILE", fix="pass a CSV file")
    frame = detect_file(file, fmt=fmt, streaming=streaming)
    frame.to_csv(out_file, index=False)
    summary = {"file": str(file), "out": str(out_file), "rows": len(frame),
               "flagged": int(frame["is_anomaly"].sum())}
    if json_:
        _print_json(summary)
    else:
        out.print(f"scored {summary['rows']} rows, {summary['flagged']} flagged -> {out_file}")


@bench_app.command("detect")
def bench_detect(
    root: Annotated[Path, typer.Argument(help="NAB corpus (data/, labels/) or the smd-asd folder")],
    fmt: Annotated[str, typer.Option("--format", help="nab | smd")] = "nab",
    out_file: Annotated[Path | None, typer.Option("--out", help="write the JSON result here")] = None,
    json_: JsonOpt = False,
) -> None:
    """Anomaly-detection scores: NAB (exact scoring, causal) or SMD/ASD (F1 + interpretation)."""
    _existing_dir(root, "a benchmark corpus")
    if fmt == "nab":
        from rca.bench.nab import render_table, run_nab_bench
        res = run_nab_bench(root, progress=not json_)
    elif fmt == "smd":
        from rca.bench.smd import render_table, run_smd_bench
        res = run_smd_bench(root, progress=not json_)
    else:
        raise BadInput(f"unknown format {fmt!r}", field="--format", fix="use nab or smd")
    _emit_bench(res, render_table, out_file, json_)


@app.command()
def scan(
    case: Annotated[Path | None, typer.Option("--case", help="scan a case folder instead of a simulation")] = None,
    scenario: Annotated[str, typer.Option(help="simulate this scenario and scan it (default source)")] = "no_fault",
    seed: Annotated[int, typer.Option(help="simulation seed")] = 0,
    window: Annotated[str, typer.Option(help="judge the last WINDOW (e.g. 30m, 1h) against the rest")] = "1h",
    min_level: Annotated[float, typer.Option("--min-level", help="report anomalies at or above this calibrated level (0..1)")] = 0.99,
    json_: JsonOpt = False,
) -> None:
    """One anomaly scan over every series: component anomalies, input drift, log findings."""
    from rca.scan import parse_duration, scan_snapshot

    window_s = parse_duration(window)
    if not 0.0 <= min_level <= 1.0:
        raise BadInput(f"--min-level {min_level} is outside 0..1", field="--min-level", fix="use e.g. 0.99")
    if case is not None:
        from connectors.files import read_case

        if not case.is_dir():
            raise BadInput(f"{case} is not a directory", field="--case", fix="pass a case folder")
        snap = read_case(case).snapshot
        source = str(case)
    else:
        from rca.sim import simulate as sim

        snap = sim(scenario, seed).snapshot
        source = f"simulator {scenario} seed {seed}"
    _, summary = scan_snapshot(snap, window_s, min_level)
    summary["source"] = source
    if json_:
        _print_json(summary)
        return
    from rich.table import Table

    t = Table(title=f"rca scan — {source}: {summary['series_scanned']} series, "
                    f"{len(summary['anomalies'])} anomalies >= {min_level}")
    for col in ("entity", "kind", "level", "onset (UTC)", "baseline -> observed", "series"):
        t.add_column(col)
    from datetime import UTC, datetime

    for a in summary["anomalies"][:40]:
        t.add_row(a["entity"], a["kind"], f"{a['level']:.3f}",
                  datetime.fromtimestamp(a["onset"], UTC).strftime("%H:%M:%S"),
                  f"{a['baseline']:.4g} -> {a['observed']:.4g}", a["series"][:60])
    out.print(t)
    for d in summary["drift"]:
        out.print(f"[yellow]drift[/yellow] {d}")


@bench_app.command("scan")
def bench_scan(
    series: Annotated[int, typer.Option(help="number of series")] = 10_000,
    points: Annotated[int, typer.Option(help="points per series (2,880 = one day at 30 s)")] = 2_880,
    seed: Annotated[int, typer.Option(help="data seed")] = 0,
    out_file: Annotated[Path | None, typer.Option("--out", help="write the JSON result here")] = None,
    json_: JsonOpt = False,
) -> None:
    """Throughput of the default detector set on a fleet-sized matrix vs a per-series loop."""
    from rca.bench.scan_bench import render_table, run_scan_bench

    if series < 1 or points < 10:
        raise BadInput("the matrix is too small", field="--series/--points", fix="use >= 1 series and >= 10 points")
    _emit_bench(run_scan_bench(n_series=series, n_points=points, seed=seed, progress=not json_),
                render_table, out_file, json_)


@bench_app.command("logs")
def bench_logs(
    root: Annotated[Path, typer.Argument(help="loghub-style folder: <S>/<S>_2k.log + structured CSVs")],
    out_file: Annotated[Path | None, typer.Option("--out", help="write the JSON result here")] = None,
    json_: JsonOpt = False,
) -> None:
    """Grouping accuracy of the log template miner per system (one configuration for all)."""
    from rca.bench.logs_bench import render_table, run_logs_bench

    _existing_dir(root, "loghub systems")
    _emit_bench(run_logs_bench(root, progress=not json_), render_table, out_file, json_)


@logs_app.command("parse")
def logs_parse(
    file: Annotated[Path, typer.Argument(help="a raw log file, one record per line")],
    out_file: Annotated[Path, typer.Option("--out", help="structured CSV: LineId,Content,EventId,EventTemplate")],
    json_: JsonOpt = False,
) -> None:
    """Mine templates with Drain3 and write loghub's structured layout."""
    from rca.logparse import parse_log_file

    if not file.is_file():
        raise BadInput(f"{file} does not exist", field="FILE", fix="pass a log file")
    summary = parse_log_file(file, out_file)
    if json_:
        _print_json(summary)
    else:
        out.print(f"{summary['lines']} lines, {summary['templates']} templates -> {out_file}")


@bench_app.command("connectors")
def bench_connectors(
    series: Annotated[int, typer.Option(help="series to backfill and fetch")] = 1000,
    days: Annotated[float, typer.Option(help="days of history at --step")] = 1.0,
    step: Annotated[int, typer.Option(help="seconds between samples")] = 30,
    spans: Annotated[int, typer.Option(help="spans to ingest through the OTLP receiver")] = 50_000,
    json_: JsonOpt = False,
) -> None:
    """Fetch N series x D days from a local Prometheus (started here) and ingest OTLP spans."""
    import tempfile

    from rca.bench.connectors_bench import run_fetch_bench
    from rca.bench.otlp_bench import bench_ingest

    if series < 1 or days <= 0 or step < 1 or spans < 1:
        raise BadInput("--series, --days, --step and --spans must be positive", field="--series/--days/--step/--spans",
                       fix="use e.g. --series 1000 --days 1 --step 30 --spans 50000")
    with tempfile.TemporaryDirectory(prefix="rca-bench-") as tmp:
        fetch = run_fetch_bench(tmp, series, days, step)
    ingest = bench_ingest(spans)
    result = {"fetch": fetch, "ingest": ingest}
    if json_:
        _print_json(result)
        return
    out.print(f"fetch {series} series x {days:g} day(s) at {step} s from {fetch.get('server', 'prometheus')}: "
              f"[bold]{fetch['fetch_s']:.2f} s[/bold] (runs {fetch['fetch_runs_s']}; backfill {fetch['backfill_s']:.1f} s)")
    for run in ingest["runs"]:
        out.print(f"OTLP ingest via {run['transport']} ({ingest['batch']} spans per protobuf request): "
                  f"[bold]{run['spans_per_s']:,} spans/s[/bold]")
    out.print(f"[dim]decode alone {ingest['decode_spans_per_s']:,} spans/s, "
              f"store alone {ingest['store_spans_per_s']:,} spans/s[/dim]")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help='e.g. "why was p99 slow at 20:00?"')],
    source: SourceOpt = None,
    now: Annotated[str | None, typer.Option(help="answer as if asked at this time (default: now)")] = None,
    tz: Annotated[str | None, typer.Option(help="time zone of times in the question (default RCA_TIMEZONE)")] = None,
    json_: JsonOpt = False,
) -> None:
    """Answer a question about the fleet from the configured (or given) sources."""
    from connectors.sources import build_connectors, close_all
    from rca.answer import answer_json, interpreted_of, request_of
    from rca.ask import parse_question
    from rca.clock import parse_now, sources_now
    from rca.entities import catalog_of
    from rca.settings import Settings
    from rca.types import Window
    from rca.wiring import build_engine

    settings = Settings()
    connectors = build_connectors(source or [], settings)
    if not connectors:
        raise BadInput("no source to ask", field="--source",
                       fix="pass --source prometheus://host:9090 (or sim://kv_cache_exhaustion), "
                           "or set RCA_SOURCES_FILE")
    try:
        at_now = parse_now(now, field="--now")
        if at_now is None:  # a simulated source lives in its own time: ask as of its end
            at_now = sources_now(connectors)
        engine = build_engine(settings, connectors)
        catalog = catalog_of(engine.fetch(Window(at_now - 1800, at_now, 60)))
        q = parse_question(question, now=at_now, tz=tz, default_tz=settings.timezone, catalog=catalog)
        ans = answer_json(engine.analyze(request_of(q)), interpreted_of(q))
    except BadInput as e:
        if e.field in ("q", "window"):  # the CLI's name for the question (which gave the window)
            e.field = "QUESTION"
        raise
    finally:
        close_all(connectors)
    ans["sources"] = [c.name for c in connectors]
    if json_:
        _print_json(ans)
        return
    from rca.render import render_answer

    render_answer(out, ans)


@sources_app.command("check")
def sources_check(source: SourceOpt = None, json_: JsonOpt = False) -> None:
    """Print each source's health (exit 1 when one is down)."""
    from connectors.sources import build_connectors, check_sources, close_all
    from rca.settings import Settings

    connectors = build_connectors(source or [], Settings())
    if not connectors:
        raise BadInput("no sources configured", field="--source",
                       fix="pass --source URL or set RCA_SOURCES_FILE to a YAML file with a `sources:` list")
    try:
        health = check_sources(connectors)
    finally:
        close_all(connectors)
    rows = [{"name": h.name, "status": h.status, "detail": h.detail,
             "latency_s": None if h.latency_s != h.latency_s else round(h.latency_s, 3)} for h in health]
    if json_:
        _print_json(rows)
    else:
        from rich.table import Table

        t = Table(title="sources")
        for col in ("source", "status", "latency", "detail"):
            t.add_column(col, overflow="fold")
        colour = {"ok": "green", "degraded": "yellow", "down": "red"}
        for r in rows:
            lat = "" if r["latency_s"] is None else f"{r['latency_s'] * 1000:.0f} ms"
            t.add_row(r["name"], f"[{colour[r['status']]}]{r['status']}[/]", lat, r["detail"])
        out.print(t)
    if any(h.status == "down" for h in health):
        raise SystemExit(1)


@bench_app.command("ask")
def bench_ask(
    requests: Annotated[int, typer.Option(help="requests per workload")] = 200,
    concurrency: Annotated[int, typer.Option(help="client threads")] = 8,
    scenario: Annotated[str, typer.Option(help="simulated scenario behind the server")] = "kv_cache_exhaustion",
    workers: Annotated[int, typer.Option(help="`rca serve --workers`")] = 1,
    out_file: Annotated[Path | None, typer.Option("--out", help="also write the JSON result here")] = None,
    json_: JsonOpt = False,
) -> None:
    """p50/p95 of GET /v1/ask against `rca serve` (own process, SQLite store, real key) on loopback."""
    import tempfile

    from rca.bench.ask_bench import run_ask_bench

    if requests < 1 or concurrency < 1:
        raise BadInput("--requests and --concurrency must be positive", field="--requests/--concurrency",
                       fix="use e.g. --requests 200 --concurrency 8")
    with tempfile.TemporaryDirectory(prefix="rca-bench-ask-") as tmp:
        res = run_ask_bench(tmp, scenario=scenario, requests=requests, concurrency=concurrency, workers=workers)

    def render(r: dict) -> str:
        lines = [f"{r['server']} on sim://{r['scenario']} (warm-up {r['warmup_s']:.2f} s; top root {r['top_root']}, "
                 f"truth {r['truth_root']})"]
        for name, label in (("mixed", f"{r['mixed']['distinct_analyses']} distinct analyses, reworded and repeated"),
                            ("distinct", "every request a fresh analysis")):
            w = r[name]
            lines.append(f"  {name:8} {w['requests']} requests x{w['concurrency']}: p50 [bold]{w['p50_ms']:.0f} ms"
                         f"[/bold], p95 [bold]{w['p95_ms']:.0f} ms[/bold], max {w['max_ms']:.0f} ms, "
                         f"{w['requests_per_s']} req/s, errors {w['errors']}  [dim]({label})[/dim]")
        return "\n".join(lines)

    _emit_bench(res, render, out_file, json_)


DbOpt = Annotated[str | None, typer.Option("--db", help="database URL (default: RCA_DATABASE_URL)")]


@keys_app.command("create")
def keys_create(
    scope: Annotated[str, typer.Option(help="read | write | admin (admin ⊇ write ⊇ read)")] = "read",
    name: Annotated[str, typer.Option(help="a name to recognise the key by")] = "",
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Create an API key. The key is printed once, alone on the last line; only its hash is kept."""
    from rca.apikeys import create_key

    key, plain = create_key(_store(db), scope, name)
    if json_:
        _print_json({"id": key.id, "name": key.name, "scopes": list(key.scopes), "key": plain})
        return
    err.print(f"created key [bold]{key.id}[/bold] ({key.name}, scope {scope}); it is shown once — keep it now:")
    sys.stdout.write(plain + "\n")


@keys_app.command("list")
def keys_list(db: DbOpt = None, json_: JsonOpt = False) -> None:
    """List API keys (ids, names, scopes, last use; never the keys)."""
    from rca.apikeys import list_keys
    from rca.serialize import rfc3339

    rows = [{"id": k.id, "name": k.name, "scopes": list(k.scopes), "created_at": rfc3339(k.created_at),
             "last_used_at": rfc3339(k.last_used_at) if k.last_used_at else None,
             "revoked_at": rfc3339(k.revoked_at) if k.revoked_at else None} for k in list_keys(_store(db))]
    if json_:
        _print_json(rows)
        return
    from rich.table import Table

    t = Table(title="API keys")
    for col in ("id", "name", "scopes", "created", "last used", "revoked"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["id"], r["name"], ",".join(r["scopes"]), r["created_at"], r["last_used_at"] or "",
                  r["revoked_at"] or "")
    out.print(t)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the key's id (see `rca keys list`)")],
                db: DbOpt = None, json_: JsonOpt = False) -> None:
    """Revoke an API key for good."""
    from rca.apikeys import revoke_key
    from rca.serialize import rfc3339

    k = revoke_key(_store(db), key_id)
    if json_:
        _print_json({"id": k.id, "revoked_at": rfc3339(k.revoked_at)})
    else:
        out.print(f"revoked {k.id} ({k.name}) at {rfc3339(k.revoked_at)}")


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command()
def serve(
    source: SourceOpt = None,
    host: Annotated[str | None, typer.Option(help="listen address (default RCA_HOST, 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default RCA_PORT, 8080)")] = None,
    insecure_no_auth: Annotated[bool, typer.Option(
        "--insecure-no-auth", help="no API keys: anyone who reaches the port is admin (loopback only)")] = False,
    workers: Annotated[int, typer.Option(help="server processes (each with its own analysis pool and cache)")] = 1,
    db: DbOpt = None,
) -> None:
    """Serve the REST API (questions, incidents, feedback, scans, OTLP receivers)."""
    import logging

    import uvicorn

    from api import create_app
    from connectors.sources import build_connectors, close_all
    from rca.settings import Settings
    from rca.wiring import build_engine

    settings = Settings()
    if db:
        settings = settings.model_copy(update={"database_url": db})
    host = host or settings.host
    port = port or settings.port
    if insecure_no_auth and not _is_loopback(host):
        raise BadInput(f"--insecure-no-auth on {host} would open the API to the network", field="--host",
                       fix="listen on 127.0.0.1 (or ::1), or create keys with `rca keys create`")
    connectors = build_connectors(source or [], settings)
    store = _store(db)
    if insecure_no_auth:
        err.print("[bold red]WARNING: --insecure-no-auth — every request is admin, no API key is checked. "
                  f"Listening on {host} only. Never do this on a shared machine.[/bold red]")
    else:
        from rca.apikeys import list_keys

        if not list_keys(store, include_revoked=False):
            err.print("[yellow]no API key exists yet: every request will get 401. "
                      "Create one with `rca keys create --scope admin`.[/yellow]")
    if not connectors:
        err.print("[yellow]no source configured (--source or RCA_SOURCES_FILE): answers will say no_data[/yellow]")
    if workers < 1:
        raise BadInput(f"--workers {workers}", field="--workers", fix="use 1 or more")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    err.print(f"rca API on http://{host}:{port}  (docs: /docs; {workers} worker process(es))")
    if workers > 1:  # each worker builds its own app from the environment (api/asgi.py)
        import json as _json
        import os

        close_all(connectors)
        os.environ.update(RCA_SERVE_SOURCES=_json.dumps(source or []), RCA_SERVE_AUTH="0" if insecure_no_auth else "1",
                          RCA_DATABASE_URL=settings.resolved_database_url())
        uvicorn.run("api.asgi:create_from_env", factory=True, host=host, port=port, workers=workers,
                    log_level="warning", access_log=False)
        return
    api = create_app(build_engine(settings, connectors, store=store), settings, auth=not insecure_no_auth)
    try:
        uvicorn.run(api, host=host, port=port, log_level="warning", access_log=False)
    finally:
        close_all(connectors)


def main() -> None:
    try:
        app()
    except BadInput as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise SystemExit(2) from None
    except RcaError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
