"""Generic log-line header stripping: ``split_header(line) -> (header, message)``.

Raw log files put a prefix before the message: dates and times, a severity, process and
thread ids, host names, a logger/component name (often followed by ``:``), bracketed
context (``[main]``, ``[req-… - - -]``) and separators (``-``, ``|``). The rules below are
about the *shape* of tokens, never about one system's messages:

1. a leading ``|``-separated run of fields without spaces, starting with a time, is a header
   (``20171223-22:15:29:606|Comp|123|message``);
2. then tokens are consumed left to right while they look like header fields: bracket groups
   (balanced, may span several tokens), timestamps / dates / times / month and weekday names,
   plain numbers and id-like tokens containing a digit (only *before* the severity: after it a
   number is already message), one severity word (``INFO``, ``[error]``, ``W`` after pids …),
   dotted logger names (``nova.compute.manager``), upper-case facility words that lead to a
   severity (``RAS KERNEL INFO``) and separators;
3. a ``name:`` / ``prog[pid]:`` token ends the header (``dfs.DataNode$PacketResponder:``,
   ``sshd(pam_unix)[19939]:``), and so does a ``-`` separator that follows a non-time field
   (``[…] - message``, ``chrome.exe - message``); one host word may precede the ``prog:``.

Nothing is stripped unless something header-like came first, so a bare message survives
whole, and at least one token is always left as message.
"""

from __future__ import annotations

import re

__all__ = ["split_header"]

_LEVELS = frozenset({
    "TRACE", "DEBUG", "DBG", "INFO", "INF", "NOTICE", "WARN", "WARNING", "WRN", "ERROR", "ERR", "CRIT",
    "CRITICAL", "FATAL", "SEVERE", "ALERT", "EMERG", "EMERGENCY", "FINE", "FINER", "FINEST", "VERBOSE",
    "FAILURE", "PANIC",
})
_SHORT_LEVELS = frozenset("VDIWEFA")
_MONTHS = frozenset({"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "sept", "oct", "nov",
                     "dec"})
_DAYS = frozenset({"mon", "tue", "wed", "thu", "fri", "sat", "sun"})
_SEPARATORS = frozenset({"-", "|", "--", ":", "::", ">", "#"})

# dates and times in the usual spellings: 2015-10-18, 17/06/09, 2005.06.03, 03-17 (081109-like
# digit runs are caught by the number rule), 18:01:47,978 / 00:00:00.008 / 2017-05-16T00:00:00Z,
# 2005-06-03-15.42.50.675872, 20171223-22:16:0:119. An IP address is not a date.
_TIME = r"\d{1,2}:\d{1,2}(:\d{1,2})?([.,:]\d+)?"
_DATE = r"(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}|\d{1,2}[-/]\d{1,2})"
_TIME_RE = re.compile(
    rf"^[\[(]?({_DATE}([-T_]({_TIME}|\d{{1,2}}\.\d{{2}}\.\d{{2}}(\.\d+)?))?"
    rf"|\d{{8}}[-T_]?\d{{1,2}}:?\d{{1,2}}:?\d{{1,2}}([.,:]\d+)?|{_TIME})"
    r"(Z|[+-]\d{2}:?\d{2})?[\])]?[,:]?$"
)
_NUMBER_RE = re.compile(r"^[\[(<]?[-+]?\d+([.,]\d+)?[\])>]?[,:]?$")
_IDLIKE_RE = re.compile(r"^(?=[^\s]*\d)[\w.:/@+=-]+$")
_DOTTED_RE = re.compile(r"^[A-Za-z_][\w$-]*(\.[A-Za-z_][\w$-]*)+$")
_COMPONENT_RE = re.compile(r"^[\w.$@/~+-]+(\([\w.:/ -]*\))?(\[[\w.:/-]*\])?(\([\w.:/-]*\))?:$")
_HOST_RE = re.compile(r"^[\w.@-]+$")
_UPPER_RE = re.compile(r"^[A-Z][A-Z0-9_]+$")


def _level(tok: str) -> bool:
    core = tok.strip("[]<>():,")
    return core.upper() in _LEVELS and (core.isupper() or core.istitle() or tok != core)


def _timeish(tok: str) -> bool:
    low = tok.strip("[](),").lower()
    return bool(_TIME_RE.match(tok)) or low in _MONTHS or low in _DAYS


def _bracket_end(toks: list[str], i: int) -> int:
    """Index after the token that closes the ``[`` opened at ``toks[i]`` (balanced), or -1."""
    depth = 0
    for j in range(i, min(len(toks), i + 12)):
        depth += toks[j].count("[") - toks[j].count("]")
        if depth <= 0:
            return j + 1
    return -1


def _split_pipes(line: str) -> tuple[str, str] | None:
    fields = line.split("|")
    if len(fields) < 3 or not _timeish(fields[0].strip()):
        return None
    k = 0
    while k < len(fields) - 1 and fields[k].strip() and not any(c.isspace() for c in fields[k].strip()):
        k += 1
    if k < 2:
        return None
    return "|".join(fields[:k]) + "|", "|".join(fields[k:]).strip()


def split_header(line: str) -> tuple[str, str]:
    """``(header, message)`` of one raw log line; ``header`` may be empty.

    ``header + message`` keeps every non-space character of the line (only the whitespace
    between them is dropped), so nothing is lost, only separated.
    """
    line = line.rstrip("\r\n")
    piped = _split_pipes(line)
    if piped is not None:
        return piped
    spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", line)]
    toks = [line[a:b] for a, b in spans]
    n = len(toks)
    i = 0
    seen_level, level_tok = False, ""
    prev = ""  # kind of the previously stripped field
    while i < n - 1:
        t = toks[i]
        if t.startswith("[") and not t.startswith("[]"):
            if seen_level and (prev not in ("level", "logger") or level_tok.startswith("[")):
                break  # after the severity one bracket is context ([main]); more is message
            end = _bracket_end(toks, i)
            if end == -1 or end >= n:
                break
            i, prev = end, "bracket"
            continue
        if t in _SEPARATORS:
            i += 1
            if t == "-" and prev not in ("", "time", "number"):
                break
            prev = prev or "sep"
            continue
        if _timeish(t):
            i, prev = i + 1, "time"
            continue
        if not seen_level and _level(t):
            i, prev, seen_level, level_tok = i + 1, "level", True, t
            continue
        if (not seen_level and t in _SHORT_LEVELS and prev == "number" and i + 1 < n - 1
                and _COMPONENT_RE.match(toks[i + 1])):
            i, prev, seen_level, level_tok = i + 1, "level", True, t
            continue
        if prev and _COMPONENT_RE.match(t) and len(t) > 1:
            i += 1
            break
        if _NUMBER_RE.match(t):
            if seen_level:
                break
            i, prev = i + 1, "number"
            continue
        if _DOTTED_RE.match(t) and prev:
            i, prev = i + 1, "logger"
            continue
        if not seen_level and _IDLIKE_RE.match(t):
            i, prev = i + 1, "id"
            continue
        if i == 0 and _UPPER_RE.match(t) and not _level(t) and (_NUMBER_RE.match(toks[1]) or _timeish(toks[1])):
            i, prev = 1, "sep"  # a leading tag column (alert label) before a timestamp
            continue
        if not seen_level and prev and _UPPER_RE.match(t) and _leads_to_level(toks, i):
            i, prev = i + 1, "facility"
            continue
        if prev and prev != "level" and _HOST_RE.match(t) and i + 1 < n - 1 and _COMPONENT_RE.match(toks[i + 1]):
            i += 2
            break
        break
    if i <= 0:
        return "", line.strip()
    i = min(i, n - 1)
    cut = spans[i][0]
    return line[:cut].rstrip(), line[cut:].strip()


def _leads_to_level(toks: list[str], i: int) -> bool:
    for j in range(i, min(len(toks) - 1, i + 4)):
        if _level(toks[j]):
            return True
        if not _UPPER_RE.match(toks[j]):
            return False
    return False
