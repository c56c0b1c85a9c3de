"""Sources: where telemetry comes from, named in settings (a YAML ``sources:`` list) or on the
command line (``--source URL``), turned into connectors.

URL forms (``--source``)::

    prometheus://host:9090            Prometheus over http (prometheus+https:// for TLS)
    victoriametrics://host:8428       VictoriaMetrics (same API; +https too)
    loki://host:3100  tempo://host:3200  jaeger://host:16686
    otlp                              the built-in OTLP store (spans and logs we received)
    file:///path/to/file-or-dir       CSV / Parquet / OpenMetrics / OTLP JSON / JSON lines / case folder
    sim://SCENARIO?seed=N             the simulator (demos and tests)

Credentials in a URL (``prometheus://user:pass@host``) become basic auth; ``?tenant=`` sets
``X-Scope-OrgID``; ``?token=`` is refused (secrets in URLs end up in shell history and logs —
put ``bearer_token: ${ENV_VAR}`` in the sources file instead).

YAML (``RCA_SOURCES_FILE``)::

    sources:
      - name: prod-prom
        kind: prometheus
        url: https://prom.internal:9090
        tenant: team-a
        bearer_token: ${PROM_TOKEN}
        selectors: ['{namespace="serving"}']
        timeout_s: 10
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rca.errors import BadInput, RcaError
from rca.types import Health

__all__ = ["KINDS", "SourceSpec", "build_connector", "build_connectors", "check_sources", "close_all", "load_sources_file",
           "parse_source_url"]

KINDS = ("prometheus", "victoriametrics", "loki", "tempo", "jaeger", "otlp", "file", "sim")
Kind = Literal["prometheus", "victoriametrics", "loki", "tempo", "jaeger", "otlp", "file", "sim"]
_HTTP_KINDS = ("prometheus", "victoriametrics", "loki", "tempo", "jaeger")
_EXAMPLE = "prometheus://127.0.0.1:9090, victoriametrics://host:8428, otlp, file:///path, sim://kv_cache_exhaustion"


class SourceSpec(BaseModel):
    """One source, as written in the sources file or parsed from a URL."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind
    name: str = ""
    url: str = ""
    tenant: str | None = None
    bearer_token: str | None = Field(default=None, repr=False)
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    selectors: list[str] = Field(default_factory=list)
    timeout_s: float = Field(default=10.0, gt=0, le=600)
    retries: int = Field(default=3, ge=0, le=10)
    verify_tls: bool | str = True
    query: str | None = None  # Loki: the LogQL stream selector
    seed: int = 0  # sim: the simulation seed

    def display_name(self) -> str:
        return self.name or (self.kind if not self.url else f"{self.kind} {self.url}")


def parse_source_url(url: str) -> SourceSpec:
    """``--source URL`` -> ``SourceSpec`` (BadInput naming ``--source`` and the fix)."""
    raw = (url or "").strip()
    if not raw:
        raise BadInput("empty source", field="--source", fix=f"give a source URL, e.g. {_EXAMPLE}")
    if raw == "otlp":
        return SourceSpec(kind="otlp", name="otlp")
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    if not scheme:
        raise BadInput(f"source {raw!r} has no scheme", field="--source", fix=f"write it as a URL, e.g. {_EXAMPLE}")
    base, _, tls = scheme.partition("+")
    if base == "file":
        path = unquote(parts.netloc + parts.path) if parts.netloc not in ("", "localhost") else unquote(parts.path)
        if not path:
            raise BadInput(f"source {raw!r} names no path", field="--source", fix="use file:///absolute/path")
        return SourceSpec(kind="file", name=f"file {path}", url=path)
    if base == "sim":
        q = parse_qs(parts.query)
        scenario = parts.netloc or parts.path.strip("/")
        try:
            seed = int(q.get("seed", ["0"])[0])
        except ValueError:
            raise BadInput(f"seed {q['seed'][0]!r} in {raw!r} is not an integer", field="--source",
                           fix="use sim://SCENARIO?seed=N") from None
        if not scenario:
            raise BadInput(f"source {raw!r} names no scenario", field="--source",
                           fix="use sim://SCENARIO?seed=N (see `rca scenarios`)")
        return SourceSpec(kind="sim", name=f"sim {scenario} seed {seed}", url=scenario, seed=seed)
    if base not in _HTTP_KINDS or tls not in ("", "http", "https"):
        raise BadInput(f"unknown source kind {scheme!r} in {raw!r}", field="--source",
                       fix=f"use one of {', '.join(KINDS)}, e.g. {_EXAMPLE}")
    if not parts.hostname:
        raise BadInput(f"source {raw!r} names no host", field="--source", fix=f"e.g. {base}://127.0.0.1:9090")
    q = parse_qs(parts.query)
    if "token" in q or "bearer_token" in q:
        raise BadInput("a token in a source URL would end up in shell history and logs", field="--source",
                       fix="put bearer_token: ${ENV_VAR} in the sources file (RCA_SOURCES_FILE)")
    try:
        port = parts.port
    except ValueError:
        raise BadInput(f"bad port in {raw!r}", field="--source", fix="use host:PORT with a number") from None
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    http_url = f"{tls or 'http'}://{netloc}{f':{port}' if port else ''}{parts.path.rstrip('/')}"
    return SourceSpec(kind=base, name=f"{base} {netloc}{f':{port}' if port else ''}", url=http_url,
                      tenant=(q.get("tenant") or [None])[0], selectors=q.get("match", []),
                      username=unquote(parts.username) if parts.username else None,
                      password=unquote(parts.password) if parts.password else None)


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand(value: Any, where: str) -> Any:
    """``${VAR}`` in strings -> the environment variable (missing -> BadInput)."""
    if isinstance(value, str):
        def sub(m: re.Match) -> str:
            if m.group(1) not in os.environ:
                raise BadInput(f"{where} refers to ${{{m.group(1)}}}, which is not set", field=where,
                               fix=f"export {m.group(1)}=... before starting rca")
            return os.environ[m.group(1)]
        return _ENV.sub(sub, value)
    if isinstance(value, list):
        return [_expand(v, where) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, f"{where}.{k}") for k, v in value.items()}
    return value


def load_sources_file(path: str | Path) -> list[SourceSpec]:
    """The ``sources:`` list of a YAML file; every problem names the entry and field."""
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"sources file {p} does not exist", field="RCA_SOURCES_FILE",
                       fix="point RCA_SOURCES_FILE at a YAML file with a `sources:` list")
    try:
        doc = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise BadInput(f"{p} is not valid YAML: {e}", field="RCA_SOURCES_FILE", fix="fix the YAML syntax") from None
    items = doc.get("sources") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise BadInput(f"{p} has no `sources:` list", field="sources",
                       fix="write `sources:` followed by a list of {kind, url, ...} entries")
    out = []
    for i, item in enumerate(items):
        where = f"sources[{i}]"
        if isinstance(item, str):
            out.append(parse_source_url(item))
            continue
        if not isinstance(item, dict):
            raise BadInput(f"{where} in {p} is not a mapping", field=where, fix="write kind: ..., url: ...")
        try:
            spec = SourceSpec.model_validate(_expand(item, where))
        except ValidationError as e:
            first = e.errors()[0]
            loc = ".".join(str(x) for x in first["loc"])
            raise BadInput(f"{where}.{loc} in {p}: {first['msg']}", field=f"{where}.{loc}",
                           fix=f"kind is one of {', '.join(KINDS)}; see the sources section of the README") from None
        if spec.kind in _HTTP_KINDS and not spec.url:
            raise BadInput(f"{where} ({spec.kind}) has no url", field=f"{where}.url", fix="add url: http://host:port")
        out.append(spec)
    names = [s.display_name() for s in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise BadInput(f"source names repeat in {p}: {', '.join(sorted(dup))}", field="sources",
                       fix="give each source a distinct name")
    return out


def build_connector(spec: SourceSpec, client=None, settings=None):
    """The connector for one source (heavy modules imported only when used)."""
    name = spec.display_name()
    auth = (spec.username, spec.password or "") if spec.username else None
    common = dict(client=client, name=name, tenant=spec.tenant, bearer_token=spec.bearer_token,
                  basic_auth=auth, timeout_s=spec.timeout_s, retries=spec.retries)
    if spec.kind in ("prometheus", "victoriametrics"):
        from connectors.prometheus import PrometheusConnector

        return PrometheusConnector(spec.url, flavor=spec.kind, selectors=spec.selectors or None,
                                   verify=spec.verify_tls, **common)
    if spec.kind == "loki":
        from connectors.loki import LokiConnector

        return LokiConnector(spec.url, **({"query": spec.query} if spec.query else {}), **common)
    if spec.kind == "tempo":
        from connectors.tempo import TempoConnector

        return TempoConnector(spec.url, **common)
    if spec.kind == "jaeger":
        from connectors.jaeger import JaegerConnector

        return JaegerConnector(spec.url, **common)
    if spec.kind == "file":
        from connectors.filesource import FileConnector

        return FileConnector(spec.url, name=name)
    if spec.kind == "otlp":
        from connectors.otlp_store import OtlpStore, OtlpStoreConnector
        from rca.settings import Settings

        url = (settings or Settings()).resolved_database_url()
        return OtlpStoreConnector(OtlpStore(url), name=name)
    if spec.kind == "sim":
        from connectors.memory import StaticConnector
        from rca.sim import list_scenarios, simulate

        if spec.url not in list_scenarios():
            raise BadInput(f"unknown scenario {spec.url!r}", field="--source",
                           fix=f"use sim://NAME with NAME one of {', '.join(list_scenarios())}")
        return StaticConnector(simulate(spec.url, spec.seed).snapshot, name=name)
    raise BadInput(f"unknown source kind {spec.kind!r}", field="kind", fix=f"use one of {', '.join(KINDS)}")


def build_connectors(urls: Sequence[str] = (), settings=None, client=None) -> list:
    """Connectors for ``--source`` URLs if any were given, else for the sources file."""
    specs = [parse_source_url(u) for u in urls]
    if not specs and settings is not None and getattr(settings, "sources_file", ""):
        specs = load_sources_file(settings.sources_file)
    return [build_connector(s, client=client, settings=settings) for s in specs]


def close_all(connectors: Sequence) -> None:
    """Close the connectors that hold HTTP clients or files."""
    for c in connectors:
        close = getattr(c, "close", None)
        if callable(close):
            close()


def check_sources(connectors: Sequence) -> list[Health]:
    """Every source's health; a check that raises is reported ``down``, never propagated."""
    out = []
    for c in connectors:
        t0 = time.perf_counter()
        try:
            h = c.check()
        except RcaError as e:
            h = Health(c.name, "down", str(e), time.perf_counter() - t0)
        except Exception as e:  # noqa: BLE001 — a health check must never crash the report
            h = Health(c.name, "down", f"{type(e).__name__}: {e}", time.perf_counter() - t0)
        out.append(h)
    return out
