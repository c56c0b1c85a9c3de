"""What every ``rca`` sub-command shares: the typer apps, consoles, common options, JSON output."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

__all__ = ["DbOpt", "JsonOpt", "SourceOpt", "app", "bench_app", "emit_bench", "err", "keys_app", "logs_app",
           "open_store", "out", "print_json", "sources_app"]

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


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def open_store(db: str | None):
    from rca.settings import Settings
    from rca.wiring import build_store

    s = Settings()
    if db:
        s = s.model_copy(update={"database_url": db})
    return build_store(s)


DbOpt = Annotated[str | None, typer.Option("--db", help="database URL (default: RCA_DATABASE_URL)")]


def emit_bench(res: dict, render: Any, out_file: Path | None, json_: bool) -> None:
    if out_file:
        out_file.write_text(json.dumps(res, indent=2))
    if json_:
        print_json(res)
    else:
        out.print(render(res))
