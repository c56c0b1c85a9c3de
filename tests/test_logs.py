"""Log templates: masking, mining, header split, grouping accuracy, parse CLI, template anomalies."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from models.embeddings import Embedder
from models.log_anomaly import score_log_templates, template_rates
from models.log_header import split_header
from models.log_masking import mask
from models.log_templates import LogTemplateMiner, mine_templates, template_id
from rca.bench.logs_bench import grouping_accuracy, run_logs_bench
from rca.errors import BadInput
from rca.logparse import parse_log_file
from rca.types import LogRecord


# -- masking ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("took 12 steps", "took <*> steps"),
    ("block blk_-6952295868487656571 done", "block <*> done"),
    ("from 10.251.73.220:50010 ok", "from <*> ok"),
    ("peer [fe80::1ff:fe23:4567:890a]:8080 up", "peer <*> up"),
    ("addr 2001:db8::8a2e:370:7334 up", "addr <*> up"),
    ("reg 0x00004f3a set", "reg <*> set"),
    ("req 550e8400-e29b-41d4-a716-446655440000 done", "req <*> done"),
    ("open /var/log/app/x.log failed", "open <*> failed"),
    ("GET https://api.example.com/v1/items?q=1 sent", "GET <*> sent"),
    ("took 35 ms", "took <*>"),
    ("free 3.5 MB left", "free <*> left"),
    ("at 2024-01-02T03:04:05.123Z start", "at <*> start"),
    ("at 18:01:47,978 start", "at <*> start"),
    ("user=alice mode=fast", "user=<*> mode=<*>"),
    ("enabled is true", "enabled is <*>"),
    ("ids 1, 2, 3 queued", "ids <*> queued"),
    ("via host.isp.net:5070 open", "via <*> open"),
    ("pam_unix(sshd:auth): auth failure", "pam_unix(sshd:auth): auth failure"),
])
def test_mask_each_parameter_kind(text, expected):
    assert mask(text) == expected


def test_mask_keeps_plain_words():
    assert mask("connection refused by peer") == "connection refused by peer"


# -- miner -----------------------------------------------------------------------------------
LINES = [
    "Received block blk_1 of size 100 from 10.0.0.1",
    "Received block blk_22 of size 2048 from 10.0.0.7",
    "Deleting block blk_3 file /data/1/blk_3",
    "Deleting block blk_44 file /data/2/blk_44",
    "VM Started (Lifecycle Event)",
    "VM Paused (Lifecycle Event)",
    "VM Started (Lifecycle Event)",
]


def test_miner_groups_parameters_and_separates_messages():
    t = LogTemplateMiner().fit_transform(LINES)
    assert t[0] == t[1] == "Received block <*> of size <*> from <*>"
    assert t[2] == t[3] == "Deleting block <*> file <*>"
    assert t[4] == t[6] != t[5]  # a different verb is a different event
    assert len(set(t)) == 4


def test_templates_and_ids_are_stable():
    m = LogTemplateMiner().fit(LINES)
    counts = {v.template: v.count for v in m.templates_.values()}
    assert counts["Received block <*> of size <*> from <*>"] == 2
    assert sum(counts.values()) == len(LINES)
    for tid, v in m.templates_.items():
        assert tid == template_id(v.template)
    other = LogTemplateMiner().fit(list(reversed(LINES)) + ["something else entirely"])
    assert set(m.templates_) <= set(other.templates_)  # same text -> same id in another window
    assert template_id("a <*>") != template_id("b <*>")


def test_transform_maps_unseen_lines_without_learning():
    m = LogTemplateMiner().fit(LINES)
    before = dict(m.templates_)
    out = m.transform(["Received block blk_9 of size 7 from 10.9.9.9", "brand new message here"])
    assert out[0] == "Received block <*> of size <*> from <*>"
    assert out[1] == "brand new message here"
    assert m.templates_ == before
    assert m.transform_ids(["Received block blk_9 of size 7 from 10.9.9.9"]) == [template_id(out[0])]


def test_open_slot_merge_turns_many_word_values_into_a_parameter():
    users = ["alice", "bob", "carol", "dave", "erin", "frank", "grace"]
    lines = [f"Invalid user {u} from 10.0.0.{i}" for i, u in enumerate(users)]
    assert len(set(LogTemplateMiner(merge=True).fit_transform(lines))) == 1
    assert len(set(LogTemplateMiner(merge=False).fit_transform(lines))) == len(users)


def test_mine_templates_convenience():
    assert mine_templates(["a 1 b", "a 2 b"]) == ["a <*> b", "a <*> b"]


# -- header split ----------------------------------------------------------------------------
@pytest.mark.parametrize(("line", "message"), [
    ("081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 terminating",
     "PacketResponder 1 terminating"),
    ("2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.app.MRAppMaster: Created MRAppMaster",
     "Created MRAppMaster"),
    ("2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0:0:0:0:2181:Election@774] - Notification time out: 3",
     "Notification time out: 3"),
    ("[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok /etc/httpd/conf/workers2.properties",
     "workerEnv.init() ok /etc/httpd/conf/workers2.properties"),
    ("20171223-22:15:29:606|Step_LSC|30002312|onStandStepChanged 3579", "onStandStepChanged 3579"),
    ("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass; user unknown", "check pass; user unknown"),
    ("03-17 16:13:38.811  1702  2395 D WindowManager: printFreezingDisplayLogs", "printFreezingDisplayLogs"),
    ("- 1117838570 2005.06.03 R02-M1-N0 2005-06-03-15.42.50.675872 R02-M1-N0 RAS KERNEL INFO instruction cache",
     "instruction cache"),
    ("2024-01-02T03:04:05.123Z WARN app.db.pool: pool exhausted", "pool exhausted"),
    ("plain message without header", "plain message without header"),
])
def test_split_header(line, message):
    header, msg = split_header(line)
    assert msg == message
    assert "".join((header + msg).split()) == "".join(line.split())  # nothing lost


# -- grouping accuracy -----------------------------------------------------------------------
def test_grouping_accuracy_exact_and_relabelled():
    assert grouping_accuracy(["a", "a", "b"], ["x", "x", "y"]) == 1.0


def test_grouping_accuracy_merged_groups_are_all_wrong():
    # one parsed group covering two true groups: none of its lines count
    assert grouping_accuracy(["a", "a", "b", "c"], ["x", "x", "x", "z"]) == pytest.approx(0.25)


def test_grouping_accuracy_split_group_is_wrong():
    # true group a split in two parsed groups: neither half is the whole group
    assert grouping_accuracy(["a", "a", "a", "b"], ["x", "x", "y", "z"]) == pytest.approx(0.25)


def test_grouping_accuracy_ignores_missing_truth_and_checks_length():
    assert grouping_accuracy(["a", None, "a"], ["x", "q", "x"]) == 1.0
    with pytest.raises(BadInput):
        grouping_accuracy(["a"], ["x", "y"])


# -- parse_log_file, bench and CLI -----------------------------------------------------------
def _raw_log(path):
    lines = [f"2024-01-02 10:00:{i:02d},000 INFO [main] app.Worker: job {i} finished in {i * 3} ms"
             for i in range(6)]
    lines += [f"2024-01-02 10:01:{i:02d},000 ERROR [main] app.Db: connection to 10.0.0.{i}:5432 refused"
              for i in range(4)]
    path.write_text("\n".join(lines) + "\n")
    return lines


def test_parse_log_file_layout(tmp_path):
    lines = _raw_log(tmp_path / "app.log")
    res = parse_log_file(tmp_path / "app.log", tmp_path / "out.csv")
    df = pd.read_csv(tmp_path / "out.csv")
    assert list(df.columns) == ["LineId", "Content", "EventId", "EventTemplate"]
    assert df["LineId"].tolist() == list(range(1, len(lines) + 1))
    assert res == {"lines": 10, "templates": 2, "out": str(tmp_path / "out.csv")}
    assert df["Content"].iloc[0] == "job 0 finished in 0 ms"
    assert set(df["EventTemplate"]) == {"job <*> finished in <*>", "connection to <*> refused"}


def test_bench_on_generated_system(tmp_path):
    sysdir = tmp_path / "Toy"
    sysdir.mkdir()
    lines = _raw_log(sysdir / "Toy_2k.log")
    content = [split_header(x)[1] for x in lines]
    pd.DataFrame({"LineId": range(1, 11), "Content": content,
                  "EventId": ["E1"] * 6 + ["E2"] * 4}).to_csv(sysdir / "Toy_2k.log_structured_corrected.csv",
                                                              index=False)
    res = run_logs_bench(tmp_path, progress=False)
    assert res["systems"]["Toy"]["ga_raw"] == 1.0
    assert res["systems"]["Toy"]["templates_expected"] == 2
    assert res["average"]["ga_content"] == 1.0


def test_cli_logs_parse(tmp_path):
    from rca.cli import app

    _raw_log(tmp_path / "app.log")
    r = CliRunner().invoke(app, ["logs", "parse", str(tmp_path / "app.log"), "--out", str(tmp_path / "o.csv"),
                                 "--json"])
    assert r.exit_code == 0, r.output
    assert list(pd.read_csv(tmp_path / "o.csv").columns) == ["LineId", "Content", "EventId", "EventTemplate"]


def test_cli_logs_parse_missing_file_is_bad_input(tmp_path):
    from rca.cli import app

    r = CliRunner().invoke(app, ["logs", "parse", str(tmp_path / "nope.log"), "--out", str(tmp_path / "o.csv")])
    assert r.exit_code != 0
    assert isinstance(r.exception, BadInput)  # main() maps BadInput to exit code 2
    assert r.exception.field == "FILE"


# -- template anomalies ----------------------------------------------------------------------
S = 1_000_000_000


def _rec(t, body, sev="INFO", trace=None, ent="service:api"):
    return LogRecord(int(t * S), ent, sev, body, trace)


def _windows():
    base = [_rec(i, f"request {i} served in {i % 7} ms") for i in range(100)]
    base += [_rec(i * 10, f"cache refreshed with {i} keys") for i in range(10)]
    base += [_rec(i * 25, f"error talking to cache attempt {i}", "ERROR") for i in range(4)]
    base += [_rec(i * 20, f"health probe ok from node-{i}") for i in range(5)]
    inc = [_rec(200 + i, f"request {i} served in {i % 5} ms") for i in range(100)]
    inc += [_rec(200 + i * 4, f"error talking to cache attempt {i}", "ERROR", f"{i:032x}") for i in range(25)]
    inc += [_rec(200 + i * 10, f"GPU {i} fell off the bus xid=79", "ERROR", f"{i + 100:032x}") for i in range(6)]
    return base, inc


def test_template_rates_counts_per_bin():
    ts = [0, 1, 2, 10, 11, 19]
    tids, counts = template_rates(ts, ["a", "b", "a", "a", "b", "a"], bins=2)
    assert tids.tolist() == ["a", "b"]
    assert counts.tolist() == [[2, 2], [1, 1]]
    tids, counts = template_rates(ts, ["a"] * 6, bins=[0, 5, 100])
    assert counts.tolist() == [[3, 3]]
    with pytest.raises(BadInput):
        template_rates([1, 2], ["a"], bins=2)


def test_new_burst_and_error_findings_carry_examples_and_traces():
    base, inc = _windows()
    found = score_log_templates(base, inc)
    by_kind = {(f.kind, f.template): f for f in found}
    new = by_kind[("new", "GPU <*> fell off the bus xid=<*>")]
    assert new.count == 6 and new.baseline_count == 0
    assert len(new.trace_ids) == 6 and new.examples[0].startswith("GPU 0 fell off")
    burst = by_kind[("burst", "error talking to cache attempt <*>")]
    assert burst.count == 25 and burst.baseline_count == 4
    assert ("error_rate", "error talking to cache attempt <*>") in by_kind
    assert f"{3:032x}" in burst.trace_ids
    # steady templates are not findings
    assert not any(f.template.startswith("request") for f in found)
    assert found == sorted(found, key=lambda f: -f.score)


def test_semantic_outlier_flags_unlike_templates_only():
    phrases = ["served in {} ms route /api/v1", "queued behind {} others", "retried after {} ms",
               "cancelled by client after {} ms", "cache refreshed with {} keys", "cache miss for key k{}",
               "user login ok for u{}", "db query took {} ms", "db pool size now {}", "user logout for u{}"]
    base = [_rec(i, "request " + p.format(i)) for p in phrases for i in range(20)]
    inc = [_rec(100 + i, f"request served slowly in {i} ms route /api/v2") for i in range(3)]
    inc += [_rec(100 + i, f"kernel: nvidia-smi xid {i} gpu fell off the pcie bus", "ERROR", "ab" * 16)
            for i in range(3)]
    found = [f for f in score_log_templates(base, inc, embedder=Embedder("tfidf")) if f.kind == "semantic_outlier"]
    assert [f.template for f in found] == ["kernel: nvidia-smi xid <*> gpu fell off the pcie bus"]
    assert found[0].trace_ids == ("ab" * 16,)
    assert found[0].score > 1.0


def test_no_incident_lines_no_findings():
    base, _ = _windows()
    assert score_log_templates(base, []) == []
