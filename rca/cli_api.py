"""``rca ask``, ``rca sources check``, ``rca serve``, ``rca keys …`` and ``rca bench ask``: the
commands around the question path and the REST API (registered on the apps of ``rca.cli_common``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from rca.cli_common import (
    DbOpt,
    JsonOpt,
    SourceOpt,
    app,
    bench_app,
    emit_bench,
    err,
    keys_app,
    open_store,
    out,
    print_json,
    sources_app,
)
from rca.errors import BadInput


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help='e.g. "why was p99 slow at 20:00?"')],
    source: SourceOpt = None,
    now: Annotated[str | None, typer.Option(help="answer as if asked at this time (default: now)")] = None,
    tz: Annotated[str | None, typer.Option(help="time zone of times in the question (default RCA_TIMEZONE)")] = None,
    store_: Annotated[bool, typer.Option("--store", help="keep the incident (for `rca feedback`) and rank with "
                                         "the store's learned re-ranker, if one is active")] = False,
    db: DbOpt = None,
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
        engine = build_engine(settings, connectors, store=open_store(db) if store_ or db else None)
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
        print_json(ans)
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
        print_json(rows)
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
    concurrency: Annotated[int, typer.Option(help="client threads")] = 4,
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

    emit_bench(res, render, out_file, json_)


@keys_app.command("create")
def keys_create(
    scope: Annotated[str, typer.Option(help="read | write | admin (admin ⊇ write ⊇ read)")] = "read",
    name: Annotated[str, typer.Option(help="a name to recognise the key by")] = "",
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Create an API key. The key is printed once, alone on the last line; only its hash is kept."""
    from rca.apikeys import create_key

    key, plain = create_key(open_store(db), scope, name)
    if json_:
        print_json({"id": key.id, "name": key.name, "scopes": list(key.scopes), "key": plain})
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
             "revoked_at": rfc3339(k.revoked_at) if k.revoked_at else None} for k in list_keys(open_store(db))]
    if json_:
        print_json(rows)
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

    k = revoke_key(open_store(db), key_id)
    if json_:
        print_json({"id": k.id, "revoked_at": rfc3339(k.revoked_at)})
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
    store = open_store(db)
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
    if workers > 1 and settings.scan_jobs.strip():
        raise BadInput("scheduled scans (RCA_SCAN_JOBS) would run once in every worker process", field="--workers",
                       fix="use --workers 1 here, or run the scans in a second `rca serve --workers 1` "
                           "and leave RCA_SCAN_JOBS unset for the multi-worker one")
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
