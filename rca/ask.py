"""The question path, no LLM: "why was p99 TTFT slow on llama-3-70b yesterday at 20:00 CET?" ->
``Question(at, signal, statistic, metric, scope, tz, intent, notes, start/end)``.

Steps, each consuming the words it used so later steps never see them:

1. zone (``find_zone``: "20:00 CET", "8pm Europe/Berlin", "UTC+2", an ISO stamp's offset);
   an explicit ``tz`` overrides it, ``default_tz`` stands in; abbreviations are read as the
   region's DST-aware wall clock ("PST" -> America/Los_Angeles, "CET" -> Europe/Paris);
2. typos in keywords ("latncy", "eror rate", "yesterdy") are mended against a small vocabulary
   with rapidfuzz — never words with digits ("p90" stays p90) nor words of entity names;
3. times (``ask_time.parse_when``: rules in its docstring);
4. signal family (a family of ``rca.catalog``), statistic and metric regex: the **first**
   signal phrase in the question is its subject ("why did errors rise when the KV cache filled"
   asks about errors); a quantile alone means latency; nothing at all means p99 latency;
5. intent: why / what / which / is;
6. scope: the remaining words against the entity catalogue (``ask_scope.ScopeMatcher``).

Every assumption is a sentence in ``notes``. Bad input raises ``BadInput`` (field ``q`` or
``tz``), several equally good entities ``Ambiguous``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from rapidfuzz import fuzz, process

from rca.ask_scope import STOP_WORDS, ScopeMatcher
from rca.ask_time import ISO_STAMP, TIME_WORDS, parse_when
from rca.errors import BadInput

__all__ = ["ZONE_ABBREVIATIONS", "Question", "find_zone", "load_zone", "parse_question"]

# Abbreviations read as the region's wall clock (DST-aware): "PST" in July means Pacific time.
ZONE_ABBREVIATIONS: dict[str, str] = {abbr: zone for spec in (
    "UTC GMT Z=UTC", "CET CEST=Europe/Paris", "EET EEST=Europe/Athens", "WET WEST=Europe/Lisbon",
    "BST=Europe/London", "IST=Asia/Kolkata", "MSK=Europe/Moscow", "PST PDT PT=America/Los_Angeles",
    "MST MDT MT=America/Denver", "CST CDT CT=America/Chicago", "EST EDT ET=America/New_York",
    "AKST AKDT=America/Anchorage", "HST=Pacific/Honolulu", "BRT=America/Sao_Paulo", "JST=Asia/Tokyo",
    "KST=Asia/Seoul", "SGT=Asia/Singapore", "HKT=Asia/Hong_Kong", "AEST AEDT=Australia/Sydney",
    "NZST NZDT=Pacific/Auckland") for zone in [spec.split("=")[1]] for abbr in spec.split("=")[0].split()}

_RE_ZONE_IANA = re.compile(r"\b((?:africa|america|antarctica|asia|atlantic|australia|europe|indian|pacific"
                           r"|etc)"
                           r"(?:/[a-z0-9_+\-]+){1,2})", re.I)
_RE_ZONE_OFFSET = re.compile(r"\b(?:utc|gmt)\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?\b", re.I)
_RE_BARE_OFFSET = re.compile(r"\s([+-])(\d{2}):?(\d{2})(?![\d:])")
_RE_ZONE_WORD = re.compile(r"(?<![\w/])([A-Za-z]{1,5})(?![\w/])")
_RE_AFTER_CLOCK = re.compile(r"(?:\d|[ap]\.?m\.?|noon|midnight)\s*$", re.I)

_MAX_LEN = 1000
_QUANTILES = {"50": "p50", "75": "p75", "90": "p90", "95": "p95", "99": "p99", "99.9": "p999", "999": "p999"}

@dataclass(frozen=True)
class _Rule:
    """Phrases naming a signal: ``family`` of ``rca.catalog``, a fixed ``stat`` (else the family's
    default), a ``metric`` regex narrowing the series, and a ``note`` to say when it applies."""

    phrases: re.Pattern[str]
    family: str
    stat: str | None = None
    metric: str | None = None
    note: str | None = None


def _rule(family: str, *phrases: str, stat: str | None = None, metric: str | None = None,
          note: str | None = None) -> _Rule:
    return _Rule(re.compile("|".join(rf"\b{p}" for p in phrases)), family, stat, metric, note)


_SIGNALS: tuple[_Rule, ...] = (  # order breaks ties between phrases starting at the same word
    _rule("latency", r"ttft\b", r"time[- ]to[- ]first[- ]tokens?\b", metric="time_to_first_token"),
    _rule("latency", r"tpot\b", r"itl\b", r"inter[- ]?token\s+latenc\w*",
          r"time[- ]per[- ]output[- ]tokens?\b",
          metric="time_per_output_token|inter_token_latency"),
    _rule("latency", r"e2e\b(?:\s+(?:request\s+)?latenc\w*)?", r"end[- ]to[- ]end(?:\s+latenc\w*)?",
          metric="e2e_request_latency"),
    _rule("latency", r"queu(?:e|ing)\s+(?:time|latenc\w*|delay|wait)\b",
          r"time\s+(?:in|spent\s+in)\s+(?:the\s+)?queue\b",
          r"wait(?:ing)?\s+time\b", metric="request_queue_time"),
    _rule("gpu_xid", r"xids?\b(?:\s+errors?)?"),
    _rule("gpu_thermal", r"gpu\s+temp\w*", r"temperature\b", r"throttl\w*", r"thermal\b", r"overheat\w*",
          r"hot\b"),
    _rule("gpu_util", r"gpu\s+(?:util\w*|usage|load|busy|saturation|compute)\b",
          r"sm\s+(?:activity|occupancy|util\w*)"),
    _rule("gpu_memory", r"gpu\s+mem\w*", r"vram\b", r"frame\s?buffer\b", r"hbm\b",
          r"fb\s+(?:used|usage|memory)\b"),
    _rule("kv_cache", r"kv[- ]?cache\w*", r"kv\s+(?:usage|blocks?)\b", r"cache\s+usage\b", r"gpu\s+cache\b"),
    _rule("kv_preempt", r"preempt\w*", r"retract\w*", r"evict\w*"),
    _rule("token_loop", r"loop\w*", r"repetit\w*", r"repeating\b", r"(?:token\s+)?black\s?holes?\b",
          r"max[_ ]tokens\b", r"truncat\w*", r"runaway\b", r"never[- ]ending\b"),
    _rule("errors", r"error[- ]?rates?\b", r"errors?\b", r"5xx\b", r"5\d\d(?:s|'s)?(?![\w:])", r"fail\w*",
          r"exceptions?\b", r"non[- ]?200s?\b"),
    _rule("token_throughput", r"costs?\b", r"spend\w*", r"token\s+bills?\b", r"bill(?:ing)?\b", r"expens\w*",
          note="cost read as token throughput (tokens/s), the driver of a token bill"),
    _rule("traffic", r"requests?\s+(?:per\s+(?:second|sec|minute)|rate|/\s*s|throughput|volume|count)\b",
          r"rps\b", r"qps\b", r"traffic\b", r"load\b"),
    _rule("token_throughput", r"tokens?\s+(?:per\s+(?:second|sec)|throughput|rate)\b", r"tokens?\s*/\s*s\b",
          r"tok/s\b", r"generation\s+(?:throughput|speed|rate)\b", r"throughput\b", r"tps\b"),
    _rule("input", r"(?:prompt|input)\s+(?:length|size|tokens)\b", r"long\s+prompts?\b",
          r"context\s+length\b"),
    _rule("queue_waiting", r"queue\w*", r"waiting\s+requests\b", r"requests\s+waiting\b", r"backlog\w*",
          r"pending\s+requests\b"),
    _rule("queue", r"running\s+requests\b", r"concurren\w*", r"in[- ]flight\b", r"batch\s+size\b"),
    _rule("cpu", r"cpu\b", r"processor\b", r"load\s+average\b"),
    _rule("memory", r"memory\b", r"oom\w*", r"out\s+of\s+memory\b", r"ram\b", r"mem\b", r"rss\b", r"heap\b"),
    _rule("latency", r"latenc\w*", r"slow\w*", r"response\s+times?\b", r"duration\b", r"sluggish\b",
          r"lag\w*",
          r"took\s+(?:too\s+)?long\b", r"delay\w*", r"time\s?outs?\b"),
)
_DEFAULT_STAT = {"latency": "p99", "errors": "error_ratio", "traffic": "rate", "token_throughput": "rate",
                 "kv_preempt": "rate", "gpu_xid": "max", "input": "p99"}
# families where "mean", "median", "p95", "max" apply (errors, rates stay ratios and rates)
_STAT_FREE = {"latency", "input", "token_loop", "kv_cache", "queue_waiting", "queue", "gpu_memory",
              "gpu_util", "gpu_thermal", "cpu", "memory"}
_RE_QUANT = re.compile(r"\bp(\d{2,3}(?:\.\d+)?)\b|\b(\d{2}(?:\.\d+)?)(?:st|nd|rd|th)?\s*percentile\b")
_RE_STAT = re.compile(r"\b(median|mean|average|avg|max(?:imum)?|peak)\b")
_VOCAB = tuple(sorted({
    *TIME_WORDS, "latency", "latencies", "error", "errors", "failing", "failures", "failure", "throughput",
    "tokens", "token", "requests", "second", "traffic", "median", "average", "utilization", "utilisation",
    "temperature", "throttling", "memory", "preemptions", "preemption", "queue", "waiting", "backlog",
    "looping", "repetition", "truncated", "healthy", "slow", "percentile", "generation", "cache", "service",
    "model", "endpoint", "spike", "timeout", "timeouts", "degraded", "exceptions"}))


@dataclass(frozen=True)
class Question:
    """What a question asks. ``at`` is the instant asked about (for a range, its end), unix s;
    ``signal`` a family of ``rca.catalog``; ``metric`` a regex narrowing the symptom metric name;
    ``scope`` entity ids; ``notes`` every assumption made, as sentences."""

    text: str
    at: int
    signal: str
    statistic: str
    tz: str = "UTC"
    scope: tuple[str, ...] = ()
    start: int | None = None
    end: int | None = None
    metric: str | None = None
    intent: str = "why"
    notes: tuple[str, ...] = ()


def parse_question(text: str, now: int, *, tz: str | None = None, default_tz: str = "UTC",
                   catalog: Sequence[str] = (), matcher: ScopeMatcher | None = None) -> Question:
    """Parse ``text`` asked at ``now`` (unix s). ``tz`` overrides any zone in the question;
    ``default_tz`` applies when neither names one; ``catalog`` (entity ids) or a ready
    ``matcher`` resolve the scope."""
    if not text or not text.strip():
        raise BadInput("the question is empty", field="q", fix='ask e.g. "why was p99 slow at 20:00?"')
    if len(text) > _MAX_LEN:
        raise BadInput(f"the question is {len(text)} characters long", field="q",
                       fix=f"keep it under {_MAX_LEN} characters")
    text = text.strip()
    notes: list[str] = []
    named, written, spans = find_zone(text)
    work = text
    for a, b in spans:
        work = work[:a] + "|" * (b - a) + work[b:]
    if tz:
        zone = load_zone(tz)
        if named and named != zone.key:
            notes.append(f"zone {written!r} in the question overridden by tz={zone.key}")
    elif named:
        zone = load_zone(named)
        if written.upper() not in (zone.key.upper(), "Z"):
            notes.append(f"{written!r} read as the {zone.key} time zone")
    else:
        zone = load_zone(default_tz)
    if matcher is None and catalog:
        matcher = _matcher_for(tuple(catalog))
    work = _mend_typos(work.lower(), matcher.entities if matcher else (), notes)
    when = parse_when(work, now, zone)
    notes += when.notes
    for a, b in when.spans:
        work = work[:a] + "|" * (b - a) + work[b:]
    signal, statistic, metric, work = _signal(work, notes)
    intent = _intent(text.lower())
    if matcher is None:
        matcher = ScopeMatcher(())
    scope, scope_notes = matcher.resolve_with_notes(work)
    notes += scope_notes
    return Question(text=text, at=when.at, signal=signal, statistic=statistic, tz=zone.key, scope=scope,
                    start=when.start, end=when.end, metric=metric, intent=intent, notes=tuple(notes))


@lru_cache(maxsize=4)
def _matcher_for(catalog: tuple[str, ...]) -> ScopeMatcher:
    """One matcher per catalogue, so entity names are embedded once across questions."""
    return ScopeMatcher(catalog)


def _mend_typos(text: str, entities: Sequence[str], notes: list[str]) -> str:
    names = {w for e in entities for w in re.split(r"[^a-z0-9]+", e.lower().partition(":")[2]) if w}

    def fix(m: re.Match[str]) -> str:
        w = m.group(0)
        if len(w) < 4 or w in _VOCAB or w in STOP_WORDS or w in names:
            return w
        best = process.extractOne(w, _VOCAB, scorer=fuzz.ratio, score_cutoff=88 if len(w) == 4 else 82)
        if best is None or any(fuzz.ratio(w, n) >= best[1] for n in names):
            return w
        notes.append(f"read {w!r} as {best[0]!r}")
        return best[0]

    return re.sub(r"(?<![\w/.-])[a-z]+(?![\w/-])", fix, text)


def _signal(text: str, notes: list[str]) -> tuple[str, str, str | None, str]:
    """``(family, statistic, metric, text with the signal words masked)``."""
    hits = sorted((m.start(), m.start() - m.end(), k, m) for k, rule in enumerate(_SIGNALS)
                  for m in rule.phrases.finditer(text))  # leftmost, then longest, then table order
    chosen: list[_Rule] = []
    taken: list[tuple[int, int]] = []

    def free(m: re.Match[str]) -> bool:
        return not any(m.start() < b and m.end() > a for a, b in taken)

    for _, _, k, m in hits:
        if free(m):
            taken.append(m.span())
            chosen.append(_SIGNALS[k])
    quants = [m for m in _RE_QUANT.finditer(text) if free(m)]
    stats = [m for m in _RE_STAT.finditer(text) if free(m)]
    for a, b in [*taken, *(m.span() for m in [*quants, *stats])]:
        text = text[:a] + "|" * (b - a) + text[b:]
    fam, stat, metric = "latency", None, None
    if chosen:
        fam, stat = chosen[0].family, chosen[0].stat
        metric = next((r.metric for r in chosen if r.family == fam and r.metric), None)
        notes += [chosen[0].note] if chosen[0].note else []
        others = sorted({r.family for r in chosen} - {fam})
        if others:
            notes.append(f"asked about {fam} (named first); also mentioned: {', '.join(others)}")
    elif not quants:
        notes.append("no signal named: read as p99 latency")
    statistic = stat or _DEFAULT_STAT.get(fam, "value")
    if fam in _STAT_FREE and quants:
        q = quants[0].group(1) or quants[0].group(2)
        if q not in _QUANTILES:
            raise BadInput(f"p{q} is not a statistic the engine computes", field="q",
                           fix="use p50, p75, p90, p95, p99 or p99.9 (or median, mean, max)")
        statistic = _QUANTILES[q]
    elif fam in _STAT_FREE and stats:
        w = stats[0].group(1)
        statistic = "p50" if w == "median" else "mean" if w in ("mean", "average", "avg") else "max"
    return fam, statistic, metric, text


_WHAT_KIND = re.compile(r"\s*what\s+(service|model|pod|node|gpu|endpoint|tool|db|database)s?\b")


def _intent(text: str) -> str:
    """why (the default) | what (a value) | which (an entity) | is (yes or no)."""
    first = (re.findall(r"[a-z']+", text) or [""])[0]
    if first in ("which", "who") or re.match(_WHAT_KIND, text):
        return "which"
    if re.search(r"\bwhy\b|\bwhat\s+(?:caused|causes|is\s+causing|'s\s+causing|made|happened)\b|\bcaus\w*"
                 r"|\breason|\bhow\s+come\b|\bexplain\b", text):
        return "why"
    if first in ("what", "whats", "what's", "how", "show", "when", "list", "give"):
        return "what"
    if first in ("is", "are", "was", "were", "does", "do", "did", "has", "have", "any", "anything", "can"):
        return "is"
    return "why"


# ---- zones ---------------------------------------------------------------------------------------
def load_zone(name: str) -> ZoneInfo:
    """The zone ``name`` (IANA, case-insensitive, or a common abbreviation); ``BadInput`` (field ``tz``)."""
    key = ZONE_ABBREVIATIONS.get(name.strip().upper(), name.strip())
    try:
        return ZoneInfo(_canonical(key))
    except (ZoneInfoNotFoundError, ValueError, KeyError):
        close = [c for c, _, _ in process.extract(key, sorted(_zone_names().values()), limit=3)]
        raise BadInput(f"unknown time zone {name!r}", field="tz",
                       fix=f"use an IANA name such as {', '.join(close)} (or UTC, CET, PST ...)") from None


def _canonical(name: str) -> str:
    """``europe/paris`` -> ``Europe/Paris`` (zoneinfo keys are case-sensitive on most systems)."""
    if "/" not in name:
        return name
    return _zone_names().get(name.lower(), name)


@lru_cache(maxsize=1)
def _zone_names() -> dict[str, str]:
    return {z.lower(): z for z in available_timezones()}


def find_zone(text: str) -> tuple[str | None, str, list[tuple[int, int]]]:
    """``(IANA name, as written, spans to mask)`` of the zone named in ``text`` (original case)."""
    m = _RE_ZONE_IANA.search(text)
    if m:
        load_zone(m.group(1))
        return _canonical(m.group(1)), m.group(1), [m.span()]
    offsets = [(m, m.group(3) or "00") for m in _RE_ZONE_OFFSET.finditer(text)]
    offsets += [(m, m.group(3)) for m in _RE_BARE_OFFSET.finditer(text)  # "at 20:00 +02:00"
                if _RE_AFTER_CLOCK.search(text[:m.start()])]
    if offsets:
        m, minutes = offsets[0]
        zone = _offset_zone(m.group(1), m.group(2), minutes)
        if zone is None:
            raise BadInput(f"{m.group(0).strip()!r} is no whole-hour offset, so it has no IANA zone name",
                           field="tz", fix="name the zone instead, e.g. Asia/Kolkata (IST) or Australia/Adelaide")
        return zone, m.group(0).strip(), [m.span()]
    for m in _RE_ZONE_WORD.finditer(text):
        word = m.group(1)
        up = word.upper()
        if up not in ZONE_ABBREVIATIONS or up == "Z":
            continue
        after_clock = bool(_RE_AFTER_CLOCK.search(text[:m.start()]))
        if up in ("UTC", "GMT") or after_clock or (word.isupper() and len(word) >= 3):
            return ZONE_ABBREVIATIONS[up], word, [m.span()]
    m = ISO_STAMP.search(text.lower())
    if m and m.group(7):
        off = m.group(7)
        if off == "z":
            return "UTC", "Z", []
        return _offset_zone(off[0], off[1:3], off[-2:]), off, []
    return None, "", []


def _offset_zone(sign: str, hours: str, minutes: str) -> str | None:
    h = int(hours)
    if int(minutes) or h > 14:
        return None  # no IANA name for half-hour offsets (an ISO stamp stays absolute all the same)
    if h == 0:
        return "UTC"
    return f"Etc/GMT{'-' if sign == '+' else '+'}{h}"  # POSIX sign: Etc/GMT-2 is UTC+02:00
