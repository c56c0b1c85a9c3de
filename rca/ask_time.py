"""Time expressions in a question — regexes, no guessing (``rca.ask`` finds the zone).

``parse_when`` reads the times in the (lower-cased) question in a zone.

Rules, so that every answer can be predicted:

* a bare clock time ("20:00", "8pm", "20h", "noon") is its **most recent past occurrence**;
  "at 9" without am/pm is the more recent of 09:00 and 21:00 (on a named day: 21:00 unless
  that is still ahead);
* a day ("yesterday", "on Nov 20", "on Monday", "2026-11-20") without a time is the range
  00:00–24:00 of that day in the zone, ``at`` = its end, clamped to now; a yearless date is
  this year's, or last year's when this year's lies more than 31 days ahead; "on Monday" is the
  latest Monday (today included; a time on it still ahead goes back a week), "last Monday" the
  latest before today; "since yesterday" runs from the day's start to now;
* periods: ``last night`` = 18:00 of the previous calendar day to 06:00 today (clamped to now,
  so at 03:00 it is the night in progress), ``tonight`` = 18:00 today to 06:00 tomorrow,
  ``this morning`` 06:00–12:00, ``this afternoon`` 12:00–18:00, ``this evening`` 18:00–24:00;
  ``yesterday morning`` etc. the same on the previous day; a time inside a period is read in it
  ("last night at 2am" is 02:00 today, "last night at 11" is 23:00 yesterday);
* ranges "between 19:30 and 20:15", "from 8pm to 9pm", "19:30-20:15": the end is the most recent
  past occurrence (or on the day named), the start the latest one before the end;
* "30 minutes ago" is a point, "in the last 15 minutes" the range ending now, "since 19:30" the
  range from 19:30 to now;
* anything after ``now`` is refused (``BadInput``, field ``q``); ends of ranges are clamped;
* wall times are read with ``zoneinfo``: a time skipped by a DST jump lands after it (with a
  note), a repeated one is its first occurrence; a DST day range is 23 or 25 hours long.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from rca.errors import BadInput

__all__ = ["ISO_STAMP", "TIME_WORDS", "When", "parse_when"]

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
TIME_WORDS = ("yesterday", "today", "tonight", "tomorrow", "morning", "afternoon", "evening", "night",
              "midnight", "noon", "midday", "between", "minutes", "minute", "hours", "hour", "seconds",
              "ago", "since", "until", "january", "february", "march", "april", "june", "july", "august",
              "september", "october", "november", "december", *_DAYS)

_FIX_TIME = 'write times like "at 20:00", "8pm", "yesterday at 20:00" or "2026-11-20T19:45:00Z"'
_NUMS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
         "eight": 8, "nine": 9, "ten": 10, "fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40,
         "forty-five": 45, "sixty": 60, "ninety": 90, "few": 5, "couple of": 2, "couple": 2}
_NUM = r"(\d+|an?|one|two|three|four|five|six|seven|eight|nine|ten|fifteen|twenty|thirty|forty-five|forty|" \
       r"sixty|ninety|(?:a\s+)?few|(?:a\s+)?couple(?:\s+of)?)"
_UNIT = r"(seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?|[smhdw])"
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_MONTH_RX = r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|" \
            r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
_CLOCK = r"(?:\d{1,2}(?::\d{2}(?::\d{2})?)?\s*(?:[ap]\.?m\.?)?|\d{1,2}h(?:\d{2})?|noon|midday|midnight)"

ISO_STAMP = re.compile(r"(?<![\w-])(\d{4})-(\d{1,2})-(\d{1,2})"
                       r"(?:(?:t|\s+)(\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?"
                     r"(?:\s*(z|[+-]\d{2}:?\d{2}))?)?(?![\w:])")
_RE_REL_RANGE = re.compile(rf"\b(?:(?:in|during|over|for|within)\s+)?(?:the\s+)?(?:last|past|previous)\s+"
                           rf"(?:{_NUM}\s*)?{_UNIT}\b")
_RE_REL_AGO = re.compile(rf"(?:\b(half\s+an?\s+hour)|\b{_NUM}\s*{_UNIT})\s+ago\b")
_RE_NOW = re.compile(r"\b(?:right\s+now|just\s+now|at\s+the\s+moment|currently|now)\b")
_RE_FUTURE = re.compile(r"\b(tomorrow|next\s+(?:week|month|year|hour|" + "|".join(_DAYS) + r"))\b")
_RE_PERIOD = re.compile(r"\b(?:(the\s+day\s+before\s+yesterday)"
                        r"|(yesterday)(?:\s+(morning|afternoon|evening|night))?"
                        r"|last\s+(night|evening)|(?:earlier\s+)?this\s+(morning|afternoon|evening)|(tonight)"
                        r"|(?:earlier\s+)?(today))\b")
_RE_WEEKDAY = re.compile(r"\b(?:on\s+)?(last\s+)?(" + "|".join(_DAYS) + r")\b"
                         r"|\bon\s+(mon|tues?|wed|thu(?:rs?)?|fri|sat|sun)\b")
_RE_DAY_MONTH = re.compile(rf"\b(?:on\s+)?(?:the\s+)?(\d{{1,2}})(?:st|nd|rd|th)?(?:\s+of)?\s+{_MONTH_RX}\.?"
                           rf"(?:,?\s+(\d{{4}}))?(?![\w:])")
_RE_MONTH_DAY = re.compile(rf"\b(?:on\s+)?{_MONTH_RX}\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?"
                           rf"(?:,?\s+(\d{{4}}))?(?![\w:])")
_RE_DAYS_AGO = re.compile(rf"\b{_NUM}\s+days?\s+ago\b")
_RE_RANGE = re.compile(rf"(?:\bbetween\s+({_CLOCK})\s+and\s+({_CLOCK})"
                       rf"|\bfrom\s+({_CLOCK})\s*(?:to|till|until|-|–)\s*({_CLOCK})"
                       rf"|(?<![\w.:/-])({_CLOCK})\s*(?:-|–|to)\s*({_CLOCK}))(?![\w:%])")
_RE_CLOCK = re.compile(r"(?:\b(?:at|around|about|by|near|circa)\s+)?(?<![\w.:/-])"
                       r"(?:(\d{1,2})(?::(\d{2}))?(?::\d{2})?\s*([ap])\.?m\b\.?"  # 8pm, 8:15 p.m.
                       r"|(\d{1,2}):(\d{2})(?::\d{2})?(?![\w:])"  # 20:00
                       r"|(\d{1,2})h(\d{2})?(?![\w])"  # 20h, 20h30
                       r"|(noon|midday|midnight)\b|(\d{1,2})\s*o'?clock\b)")
_RE_BARE = re.compile(r"\b(?:at|around|about|by|near|circa)\s+(\d{1,2})(?![\w:.%])")
_RE_SINCE = re.compile(r"\bsince\s*$")
_PERIODS = {"morning": (6, 12), "afternoon": (12, 18), "evening": (18, 24), "night": (18, 30)}


@dataclass(frozen=True)
class When:
    """What the time words said: a point ``at`` or a range ``start``–``end`` (``at`` = end)."""

    at: int
    start: int | None = None
    end: int | None = None
    notes: tuple[str, ...] = ()
    spans: tuple[tuple[int, int], ...] = ()


def _mask(text: str, span: tuple[int, int]) -> str:
    a, b = span
    return text[:a] + "|" * (b - a) + text[b:]


def _num(word: str) -> int:
    word = re.sub(r"^a\s+", "", word.strip())
    return int(word) if word.isdigit() else _NUMS[re.sub(r"\s+", " ", word)]


def _unit(word: str) -> int:
    return _UNIT_S[word[0]]


class _Reader:
    def __init__(self, text: str, now: int, zone: ZoneInfo) -> None:
        self.text, self.now, self.zone = text, now, zone
        self.today = datetime.fromtimestamp(now, zone).date()
        self.since = False  # "since yesterday": from the day's start to now
        self.notes: list[str] = []
        self.spans: list[tuple[int, int]] = []

    def eat(self, m: re.Match[str]) -> None:
        self.spans.append(m.span())
        self.text = _mask(self.text, m.span())

    def ts(self, d: date, h: int, mi: int = 0) -> int:
        """Unix seconds of wall time ``h:mi`` on ``d`` in the zone (``h`` may pass 24)."""
        d = d + timedelta(days=h // 24)
        return int(datetime(d.year, d.month, d.day, h % 24, mi, tzinfo=self.zone).timestamp())

    def when(self, at: int, start: int | None = None, end: int | None = None) -> When:
        return When(at=at, start=start, end=end, notes=tuple(self.notes), spans=tuple(self.spans))

    def fmt(self, t: int) -> str:
        return datetime.fromtimestamp(t, self.zone).strftime("%Y-%m-%d %H:%M")

    def future(self, what: str, t: int) -> BadInput:
        return BadInput(f"{what} ({self.fmt(t)} {self.zone.key}) is in the future", field="q",
                        fix="ask about a time before now, e.g. \"at 20:00\" or \"30 minutes ago\"")


def _clock(m: re.Match[str], raw: str) -> tuple[int, int, bool]:
    """``(hour, minute, twelve_hour_ambiguous)`` of a ``_RE_CLOCK`` match."""
    g = m.groups()
    if g[7]:
        return (12, 0, False) if g[7] in ("noon", "midday") else (0, 0, False)
    if g[2]:
        h, mi = int(g[0]), int(g[1] or 0)
        if not 1 <= h <= 12 or mi > 59:
            raise BadInput(f"{raw!r} is not a time of day", field="q", fix=_FIX_TIME)
        return h % 12 + (12 if g[2] == "p" else 0), mi, False
    h, mi = (int(g[3]), int(g[4])) if g[3] else (int(g[5]), int(g[6] or 0)) if g[5] else (int(g[8]), 0)
    if h > 23 or mi > 59:
        raise BadInput(f"{raw!r} is not a time of day", field="q", fix=_FIX_TIME)
    return h, mi, bool(g[8]) and 1 <= h <= 12


def _one_clock(text: str) -> tuple[int, int, bool]:
    text = text.strip()
    m = _RE_CLOCK.fullmatch(text)
    if m:
        return _clock(m, text)
    if text.isdigit() and int(text) <= 23:
        return int(text), 0, 1 <= int(text) <= 12
    raise BadInput(f"{text!r} is not a time of day", field="q", fix=_FIX_TIME)


def _day_of(r: _Reader) -> tuple[date, str | None, str] | None:
    """The day (and period) the question names, consuming it: ``(date, period, words)``."""
    t = r.text
    m = _RE_FUTURE.search(t)
    if m:
        raise BadInput(f"{m.group(1)!r} is in the future", field="q",
                       fix="ask about a time before now, e.g. \"yesterday at 20:00\"")
    m = ISO_STAMP.search(t)
    if m and m.group(4) is None:
        r.eat(m)
        return _valid_date(int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(0)), None, m.group(0)
    m = _RE_PERIOD.search(t)
    if m:
        r.eat(m)
        r.since = bool(_RE_SINCE.search(t[:m.start()]))
        if m.group(1):
            return r.today - timedelta(days=2), None, m.group(1)
        if m.group(2):
            return r.today - timedelta(days=1), m.group(3), m.group(0)
        if m.group(4):
            return (r.today - timedelta(days=1), "night" if m.group(4) == "night" else "evening", m.group(0))
        if m.group(5):
            return r.today, m.group(5), m.group(0)
        if m.group(6):
            return r.today, "night", m.group(0)
        return r.today, None, m.group(0)
    for rx, d_i, m_i, y_i in ((_RE_DAY_MONTH, 1, 2, 3), (_RE_MONTH_DAY, 2, 1, 3)):
        m = rx.search(t)
        if m:
            r.eat(m)
            month = _MONTHS.index(m.group(m_i)[:3]) + 1
            year = int(m.group(y_i)) if m.group(y_i) else None
            d = _valid_date(year or r.today.year, month, int(m.group(d_i)), m.group(0).strip())
            if year is None and (d - r.today).days > 31:
                d = _valid_date(d.year - 1, month, d.day, m.group(0).strip())
            return d, None, m.group(0).strip()
    m = _RE_WEEKDAY.search(t)
    if m:
        r.eat(m)
        name = m.group(2) or m.group(3)
        wd = next(i for i, d in enumerate(_DAYS) if d.startswith(name[:3]))
        back = (r.today.weekday() - wd) % 7 or (7 if m.group(1) else 0)
        return r.today - timedelta(days=back), "weekday", m.group(0).strip()
    m = _RE_DAYS_AGO.search(t)
    if m and (_RE_CLOCK.search(t) or _RE_BARE.search(t)):
        r.eat(m)
        return r.today - timedelta(days=_num(m.group(1))), None, m.group(0)
    return None


def _valid_date(y: int, mo: int, d: int, raw: str) -> date:
    try:
        return date(y, mo, d)
    except ValueError:
        raise BadInput(f"{raw!r} is not a date", field="q",
                       fix='write dates like "Nov 20" or "2026-11-20"') from None


def _place(r: _Reader, h: int, mi: int, ambiguous: bool, day: tuple[date, str | None, str] | None) -> int:
    """The instant of clock ``h:mi`` — on ``day`` (in its period) or the most recent past one."""
    hours = [h, h + 12] if ambiguous and h < 12 else [h]
    if day is None:
        cands = []
        for hh in hours:
            t = r.ts(r.today, hh, mi)
            cands.append(t if t <= r.now else r.ts(r.today - timedelta(days=1), hh, mi))
        return max(cands)
    d, period, _ = day
    if period in _PERIODS:
        lo, hi = _PERIODS[period]
        inside = [hh for hh in hours if lo <= hh < hi or lo <= hh + 24 < hi]
        hh = (inside or hours)[-1 if period != "morning" else 0]
        if period == "night" and hh < 12:
            return r.ts(d + timedelta(days=1), hh, mi)
        return r.ts(d, hh, mi)
    if period == "weekday" and len(hours) == 1 and r.ts(d, h, mi) > r.now and d == r.today:
        return r.ts(d - timedelta(days=7), h, mi)
    return r.ts(d, hours[-1] if len(hours) > 1 and r.ts(d, hours[-1], mi) <= r.now else hours[0], mi)


def parse_when(text: str, now: int, zone: ZoneInfo) -> When:
    """Read the time words of ``text`` (lower case; spans already used are masked with ``|``)."""
    r = _Reader(text, now, zone)
    z = zone.key
    for fn in (_relative, _iso_points):
        w = fn(r)
        if w is not None:
            return w
    day = _day_of(r)
    rng = _RE_RANGE.search(r.text)
    if rng and not any(re.search(r"[:apnh]", g or "") for g in rng.groups() if g):
        rng = None
    if rng:
        a, b = [g for g in rng.groups() if g is not None]
        (h1, m1, amb1), (h2, m2, amb2) = _one_clock(a), _one_clock(b)
        if amb1 and not amb2 and re.search(r"[ap]\.?m", b) and h2 >= 12 and h1 + 12 <= h2:
            h1, amb1 = h1 + 12, False  # "8-9pm", "between 7 and 9pm"
        r.eat(rng)
        end = _place(r, h2, m2, amb2, day)
        start = _place(r, h1, m1, amb1, day)
        while start >= end:
            start -= 86400
        while end - start > 86400:
            start += 86400
        if end > now:
            raise r.future(f"{b.strip()!r}", end)
        r.notes.append(f"{rng.group(0).strip()!r} read as {r.fmt(start)} – {r.fmt(end)} {z}")
        return r.when(end, start, end)
    m = _RE_CLOCK.search(r.text)
    amb = False
    if m:
        h, mi, amb = _clock(m, m.group(0).strip())
    else:
        m = _RE_BARE.search(r.text)
        if m:
            h = int(m.group(1))
            if h > 23:
                raise BadInput(f"{m.group(0).strip()!r} is not a time of day", field="q", fix=_FIX_TIME)
            mi, amb = 0, 1 <= h <= 12
    if m:
        since = bool(_RE_SINCE.search(r.text[:m.start()]))
        raw = m.group(0).strip()
        r.eat(m)
        at = _place(r, h, mi, amb, day)
        if at > now:
            raise r.future(repr(raw), at)
        how = f" ({day[2]})" if day else " (no am/pm: the most recent)" if amb else \
            " (the most recent past one)"
        if since:
            r.notes.append(f"'since {raw}' read as {r.fmt(at)} – now {z}")
            return r.when(now, at, now)
        if r.fmt(at)[-5:] != f"{h:02d}:{mi:02d}" and not amb:
            how += f" ({h:02d}:{mi:02d} did not exist that day: the clocks jumped)"
        r.notes.append(f"{raw!r} read as {r.fmt(at)} {z}{how}")
        return r.when(at)
    if day:
        return _day_range(r, day)
    m = _RE_NOW.search(r.text)
    if m:
        r.eat(m)
    r.notes.append(f"no time in the question: read as now ({r.fmt(now)} {z})")
    return r.when(now)


def _day_range(r: _Reader, day: tuple[date, str | None, str]) -> When:
    d, period, words = day
    lo, hi = _PERIODS.get(period or "", (0, 24))
    start, end = r.ts(d, lo), r.ts(d, hi)
    if r.since:
        end, words = r.now, f"since {words}"
    if start >= r.now:
        raise r.future(repr(words), start)
    note = f"{words!r} read as {r.fmt(start)} – {r.fmt(min(end, r.now))} {r.zone.key}"
    if end > r.now:
        end = r.now
        note += " (up to now)"
    r.notes.append(note)
    return r.when(end, start, end)


def _relative(r: _Reader) -> When | None:
    m = _RE_REL_RANGE.search(r.text)
    if m:
        if len(m.group(2)) == 1 and not (m.group(1) or "").isdigit():
            return None  # "last m" is no duration; "last 15m" is
        secs = (_num(m.group(1)) if m.group(1) else 1) * _unit(m.group(2))
        r.eat(m)
        start = r.now - secs
        r.notes.append(f"{m.group(0).strip()!r} read as {r.fmt(start)} – {r.fmt(r.now)} {r.zone.key}")
        return r.when(r.now, start, r.now)
    m = _RE_REL_AGO.search(r.text)
    if m and not (_RE_CLOCK.search(_mask(r.text, m.span())) and re.search(r"days?\s+ago", m.group(0))):
        if m.group(3) and len(m.group(3)) == 1 and not m.group(2).isdigit():
            return None
        secs = 1800 if m.group(1) else _num(m.group(2)) * _unit(m.group(3))
        r.eat(m)
        at = r.now - secs
        r.notes.append(f"{m.group(0).strip()!r} read as {r.fmt(at)} {r.zone.key}")
        return r.when(at)
    return None


def _iso_points(r: _Reader) -> When | None:
    stamps = []
    for m in ISO_STAMP.finditer(r.text):
        if m.group(4) is None:
            continue
        y, mo, d, h, mi, s, off = m.groups()
        _valid_date(int(y), int(mo), int(d), m.group(0))
        if int(h) > 23 or int(mi) > 59 or int(s or 0) > 59:
            raise BadInput(f"{m.group(0)!r} is not a time", field="q", fix=_FIX_TIME)
        tz = r.zone if not off else UTC if off == "z" else \
            datetime.strptime(off.replace(":", ""), "%z").tzinfo
        t = int(datetime(int(y), int(mo), int(d), int(h), int(mi), int(s or 0), tzinfo=tz).timestamp())
        if t > r.now:
            raise r.future(repr(m.group(0)), t)
        stamps.append((t, m))
    if not stamps:
        return None
    for _, m in stamps:
        r.eat(m)
    ts = sorted({t for t, _ in stamps})
    if len(ts) == 1 and _RE_SINCE.search(r.text[:stamps[0][1].start()]):
        r.notes.append(f"'since {stamps[0][1].group(0)}' read as {r.fmt(ts[0])} – now {r.zone.key}")
        return r.when(r.now, ts[0], r.now) if ts[0] < r.now else r.when(ts[0])
    if len(ts) >= 2:
        r.notes.append(f"read as the range {r.fmt(ts[0])} – {r.fmt(ts[-1])} {r.zone.key}")
        return r.when(ts[-1], ts[0], ts[-1])
    r.notes.append(f"{stamps[0][1].group(0)!r} read as {r.fmt(ts[0])} {r.zone.key}")
    return r.when(ts[0])
