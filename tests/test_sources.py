"""Sources: URL and YAML forms, errors that name the field, health checks that never crash,
and `rca ask` / `rca sources check` on the command line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from connectors.sources import SourceSpec, check_sources, load_sources_file, parse_source_url
from rca.cli import app
from rca.errors import BadInput, SourceError
from rca.types import Health

runner = CliRunner()


@pytest.mark.parametrize("url,kind,http,extra", [
    ("prometheus://127.0.0.1:9090", "prometheus", "http://127.0.0.1:9090", {}),
    ("prometheus+https://prom.example:443/prefix/", "prometheus", "https://prom.example:443/prefix", {}),
    ("victoriametrics://vm:8428?tenant=team-a", "victoriametrics", "http://vm:8428", {"tenant": "team-a"}),
    ("loki://user:p%40ss@logs:3100", "loki", "http://logs:3100", {"username": "user", "password": "p@ss"}),
    ("tempo://[::1]:3200", "tempo", "http://[::1]:3200", {}),
    ("jaeger://jaeger:16686", "jaeger", "http://jaeger:16686", {}),
    ("prometheus://h:9090?match={job=%22vllm%22}", "prometheus", "http://h:9090", {"selectors": ['{job="vllm"}']}),
])
def test_http_source_urls(url, kind, http, extra):
    s = parse_source_url(url)
    assert (s.kind, s.url) == (kind, http)
    for k, v in extra.items():
        assert getattr(s, k) == v


def test_other_source_urls():
    assert parse_source_url("otlp").kind == "otlp"
    f = parse_source_url("file:///tmp/some%20dir/metrics.csv")
    assert (f.kind, f.url) == ("file", "/tmp/some dir/metrics.csv")
    s = parse_source_url("sim://kv_cache_exhaustion?seed=3")
    assert (s.kind, s.url, s.seed) == ("sim", "kv_cache_exhaustion", 3)
    assert "p@ss" not in repr(parse_source_url("loki://u:p%40ss@h:1"))  # secrets stay out of reprs


@pytest.mark.parametrize("url,needle", [
    ("", "empty"), ("127.0.0.1:9090", "no scheme"), ("graphite://h:1", "unknown source kind"),
    ("prometheus://", "no host"), ("prometheus://h:99999", "port"), ("file://", "no path"),
    ("sim://x?seed=abc", "not an integer"), ("prometheus://h:1?token=abc", "shell history"),
    ("localhost", "no scheme"),
])
def test_bad_source_urls_name_the_field_and_fix(url, needle):
    with pytest.raises(BadInput) as e:
        parse_source_url(url)
    assert e.value.field == "--source"
    assert needle in str(e.value)
    assert e.value.fix


def test_sources_file(tmp_path, monkeypatch):
    monkeypatch.setenv("PROM_TOKEN", "s3cret")
    p = tmp_path / "sources.yaml"
    p.write_text("""
sources:
  - name: prod
    kind: prometheus
    url: https://prom:9090
    tenant: team-a
    bearer_token: ${PROM_TOKEN}
    selectors: ['{namespace="serving"}']
  - victoriametrics://vm:8428
  - kind: otlp
""")
    specs = load_sources_file(p)
    assert [s.kind for s in specs] == ["prometheus", "victoriametrics", "otlp"]
    assert specs[0].bearer_token == "s3cret" and specs[0].selectors == ['{namespace="serving"}']
    assert "s3cret" not in repr(specs[0])


@pytest.mark.parametrize("body,field", [
    ("sources:\n  - kind: graphite\n    url: http://x\n", "sources[0].kind"),
    ("sources:\n  - kind: prometheus\n", "sources[0].url"),
    ("sources:\n  - kind: prometheus\n    url: http://x\n    timeout_s: -1\n", "sources[0].timeout_s"),
    ("sources:\n  - kind: prometheus\n    url: http://x\n    bearer_token: ${NOT_SET_ANYWHERE_42}\n",
     "sources[0].bearer_token"),
    ("sources:\n  - kind: prometheus\n    url: http://x\n    colour: red\n", "sources[0].colour"),
    ("sources: 3\n", "sources"),
    ("sources:\n  - prometheus://a:1\n  - prometheus://a:1\n", "sources"),
    ("sources: [unclosed\n", "RCA_SOURCES_FILE"),
])
def test_bad_sources_files_name_the_entry(tmp_path, body, field):
    p = tmp_path / "s.yaml"
    p.write_text(body)
    with pytest.raises(BadInput) as e:
        load_sources_file(p)
    assert e.value.field == field


class _Flaky:
    def __init__(self, name, exc=None, status="ok"):
        self.name, self.exc, self.status = name, exc, status

    def check(self):
        if self.exc:
            raise self.exc
        return Health(self.name, self.status, "fine", 0.01)


def test_check_sources_never_raises():
    hs = check_sources([_Flaky("a"), _Flaky("b", SourceError("b", "connection refused")),
                        _Flaky("c", RuntimeError("boom")), _Flaky("d", status="degraded")])
    assert [h.status for h in hs] == ["ok", "down", "down", "degraded"]
    assert "connection refused" in hs[1].detail and "boom" in hs[2].detail


def test_cli_ask_from_the_simulator_matches_the_demo():
    from rca.demo import run_demo

    r = runner.invoke(app, ["ask", "why was p99 slow at 19:20?", "--source", "sim://kv_cache_exhaustion?seed=0",
                            "--json"])
    assert r.exit_code == 0, r.output
    ans = json.loads(r.output)
    demo = run_demo("kv_cache_exhaustion", 0)
    assert ans["hypotheses"][0]["root"] == demo["hypotheses"][0]["root"] == demo["truth"]["root"]
    assert ans["sources"] == ["sim kv_cache_exhaustion seed 0"]


def test_cli_ask_and_check_need_a_source(monkeypatch):
    monkeypatch.delenv("RCA_SOURCES_FILE", raising=False)
    for args in (["ask", "why slow at 20:00"], ["sources", "check"]):
        r = runner.invoke(app, args)
        assert r.exit_code != 0
        assert isinstance(r.exception, BadInput) and r.exception.field == "--source"


def test_cli_sources_check_reports_down_and_exits_1(tmp_path, monkeypatch):
    p = tmp_path / "s.yaml"
    p.write_text("sources:\n  - sim://no_fault\n")
    monkeypatch.setenv("RCA_SOURCES_FILE", str(p))
    r = runner.invoke(app, ["sources", "check", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)[0]["status"] == "ok"


def test_spec_rejects_unknown_kind():
    with pytest.raises(ValueError):
        SourceSpec(kind="graphite")
