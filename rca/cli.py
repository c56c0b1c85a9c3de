"""The ``rca`` command line (typer + rich). Thin: parse, call the engine, render.

This module holds the analysis, simulation, detection and benchmark commands;
``rca.cli_api`` the question path and the server (ask, sources, serve, keys, bench ask);
``rca.cli_common`` what they share.

Heavy modules are imported inside commands so ``rca --help`` starts fast. Every command has
``--json`` for machine output. Bad input exits 2 with a message naming the field and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rca.cli_common import (
    DbOpt,
    JsonOpt,
    app,
    bench_app,
    emit_bench,
    err,
    logs_app,
    open_store,
    out,
    print_json,
)
from rca.errors import BadInput, RcaError


@app.command()
def scenarios(json_: JsonOpt = False) -> None:
    """List the simulator's scenarios."""
    from rca.sim import list_scenarios, load_scenario

    rows = [{"name": n, "description": load_scenario(n).description} for n in list_scenarios()]
    if json_:
        print_json(rows)
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

    result = run_demo(scenario, seed, store=open_store(db))
    if json_:
        print_json(result)
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
        print_json(payload)
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
        print_json(result)
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
        emit_bench(res, render_sim_table, out_file, json_)
        return
    from rca.bench.rca_bench import render_report, run_rca_bench
    from rca.casefolder import bench_rankers

    if not dirs:
        raise BadInput("no case folders given", field="DIR", fix="pass folders of case folders, or --sim all")
    for d in dirs:
        if not d.exists():
            raise BadInput(f"{d} does not exist", field="DIR", fix="pass folders that hold case folders")
    res = run_rca_bench(dirs, bench_rankers(detect_time=detect_time), progress=not json_)
    emit_bench(res.to_dict(), lambda _: render_report(res), out_file, json_)


@bench_app.command("sim")
def bench_sim(
    seeds: Annotated[int, typer.Option(help="seeds 0..N-1 per scenario")] = 10,
    json_: JsonOpt = False,
) -> None:
    """Top-1 root and category accuracy of `rca demo` over every simulator scenario and seed."""
    from rca.bench.sim_bench import run_sim_bench

    res = run_sim_bench(range(seeds), progress=not json_)
    if json_:
        print_json(res)
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
        print_json(summary)
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
    emit_bench(res, render_table, out_file, json_)


@app.command()
def scan(
    case: Annotated[Path | None, typer.Option("--case", help="scan a case folder instead of a simulation")] = None,
    scenario: Annotated[str, typer.Option(help="simulate this scenario and scan it (default source)")] = "no_fault",
    seed: Annotated[int, typer.Option(help="simulation seed")] = 0,
    window: Annotated[str, typer.Option(help="judge the last WINDOW (e.g. 30m, 1h) against the rest")] = "1h",
    min_level: Annotated[float, typer.Option("--min-level", help="report anomalies at or above this calibrated level (0..1)")] = 0.99,
    store_: Annotated[bool, typer.Option("--store", help="record the scan and open/update/resolve its incidents")] = False,
    db: DbOpt = None,
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
    if window_s >= snap.window.end - snap.window.start:
        raise BadInput(f"--window {window} leaves no baseline in the data", field="--window",
                       fix="use a shorter window")
    if store_:
        summary = _stored_scan(snap, window_s, min_level, db)
    else:
        _, summary = scan_snapshot(snap, window_s, min_level)
    summary["source"] = source
    if json_:
        print_json(summary)
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
    for change, items in (summary.get("incidents") or {}).items():
        for it in items:
            out.print(f"incident {change}: [bold]{it.get('incident_id')}[/bold] {it.get('root', '')} "
                      f"({it.get('category', '')})")


def _stored_scan(snap, window_s: int, min_level: float, db: str | None) -> dict:
    """The scan as the scheduler runs it: recorded, with incidents opened/updated/resolved."""
    from connectors.memory import StaticConnector
    from rca.scan_jobs import ScanJob, ScanRunner
    from rca.settings import Settings
    from rca.wiring import build_engine

    store = open_store(db)
    engine = build_engine(Settings(), [StaticConnector(snap, "cli")], store=store)
    job = ScanJob(name="cli", trigger=None, window=f"{window_s}s", min_level=min_level,
                  baseline=f"{snap.window.end - snap.window.start - window_s}s", step=f"{snap.window.step}s")
    record = ScanRunner(engine, store).run(job, now=snap.window.end)
    if record["status"] == "failed":
        raise RcaError(f"scan {record['id']} failed: {record['result'].get('error')}")
    return {**record["result"], "scan_id": record["id"], "status": record["status"]}


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
    emit_bench(run_scan_bench(n_series=series, n_points=points, seed=seed, progress=not json_),
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
    emit_bench(run_logs_bench(root, progress=not json_), render_table, out_file, json_)


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
        print_json(summary)
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
        print_json(result)
        return
    out.print(f"fetch {series} series x {days:g} day(s) at {step} s from {fetch.get('server', 'prometheus')}: "
              f"[bold]{fetch['fetch_s']:.2f} s[/bold] (runs {fetch['fetch_runs_s']}; backfill {fetch['backfill_s']:.1f} s)")
    for run in ingest["runs"]:
        out.print(f"OTLP ingest via {run['transport']} ({ingest['batch']} spans per protobuf request): "
                  f"[bold]{run['spans_per_s']:,} spans/s[/bold]")
    out.print(f"[dim]decode alone {ingest['decode_spans_per_s']:,} spans/s, "
              f"store alone {ingest['store_spans_per_s']:,} spans/s[/dim]")


import rca.cli_api  # noqa: E402,F401 — registers ask, sources, serve, keys, bench ask
import rca.cli_learn  # noqa: E402,F401 — registers feedback, train, export, bench feedback


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
