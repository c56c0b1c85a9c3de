from datetime import UTC, datetime

import pytest

from rca.ask import parse_question
from rca.errors import BadInput

NOW = int(datetime(2026, 11, 21, 9, 30, tzinfo=UTC).timestamp())


def _hm(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def test_bare_time_is_the_most_recent_past_occurrence():
    q = parse_question("why was p99 slow at 20:00?", NOW)
    assert _hm(q.at) == "2026-11-20 20:00"
    assert (q.signal, q.statistic) == ("latency", "p99")
    assert _hm(parse_question("why was it slow at 09:15", NOW).at) == "2026-11-21 09:15"


def test_am_pm_and_statistics():
    q = parse_question("why was p95 latency high at 8pm", NOW)
    assert _hm(q.at) == "2026-11-20 20:00" and q.statistic == "p95"
    assert parse_question("what was the median latency at 7:05", NOW).statistic == "p50"
    assert parse_question("why did errors spike at 06:00", NOW).signal == "errors"


def test_no_time_means_now():
    assert parse_question("why is p99 slow?", NOW).at == NOW


@pytest.mark.parametrize("text", ["", "   ", "why at 25:00"])
def test_bad_questions_name_the_field(text):
    with pytest.raises(BadInput) as e:
        parse_question(text, NOW)
    assert e.value.field == "q"
