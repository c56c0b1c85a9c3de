"""Parameter masking for log messages: one rule set for every log type.

``mask(message)`` replaces the variable parts of a message by ``<*>`` before template mining,
so the miner only has to group what is left. The rules are ordered from the most specific
(URLs, UUIDs, paths, addresses) to the most generic (any token that carries a digit), because
an earlier rule must swallow a whole value before a later one can cut it into pieces
(``/10.1.2.3:80`` is one address, not a path plus a number).

Choices that matter for grouping accuracy, all generic:

* a number with a unit (``12 ms``, ``3.5 MB``, ``7 bytes``) is *one* parameter, unit included,
  so ``1.2 KB`` and ``3 MB`` land in one template;
* the value of ``key=value`` is a parameter whatever it looks like (``class=org.x.Y``);
* ``true``/``false``/``null`` are values;
* any run of letters/digits/``_``/``-`` that contains a digit is an id (``blk_-42``,
  ``attempt_1445_0020_m_000000_0``, ``R02-M1-N0``): constants with digits (``jk2_init``) lose
  nothing for grouping because they are masked the same way on every line;
* finally adjacent parameters joined only by separators (``<*>:<*>``, ``<*>, <*>``,
  ``<*>##<*>``) collapse to one ``<*>``, which makes variable-length lists one parameter.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

__all__ = ["MASK", "MASK_RULES", "glue", "mask", "normalise_template", "render", "tokens"]

MASK = "<*>"

_UNITS = (r"(?:[KMGTP]i?B|[kmg]b|B|bytes?|ms|us|µs|ns|s|secs?|seconds?|mins?|minutes?|hrs?|hours?|days?"
          r"|%)")

# (name, pattern, replacement) — applied in order; names appear in the bench's config dump.
MASK_RULES: tuple[tuple[str, str, str], ...] = (
    ("url", r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+", MASK),
    ("uuid", r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b", MASK),
    ("timestamp", r"\b\d{4}-\d{1,2}-\d{1,2}(?:[T ]\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?)?"
                  r"(?:Z|[+-]\d{2}:?\d{2})?(?![\w.])", MASK),
    ("time", r"(?<![\w:.])\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?(?![\w:])", MASK),
    ("ipv4", r"(?<![\w.])/?\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?(?![\w.])", MASK),
    ("mac", r"(?<![\w:])[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}(?![\w:])", MASK),
    ("ipv6", r"(?<![\w:])\[?(?:(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}"
             r"|(?:[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4}){0,6})?::(?:[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4}){0,6})?"
             r"(?<!::))\]?(?::\d{1,5})?(?![\w:])", MASK),
    ("host_port", r"(?<![\w.-])[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+:\d{1,5}(?![\w])", MASK),
    ("win_path", r"\b[A-Za-z]:\\[^\s\"',;]*", MASK),
    ("path", r"(?<![\w/.:<])(?:~|\.{1,2})?(?:/[\w.@%+~$-]+)+/?(?:\?[^\s\"']*)?", MASK),
    ("hex", r"\b0[xX][0-9a-fA-F]+\b", MASK),
    ("hex_id", r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b", MASK),
    ("size_duration", rf"(?<![\w.])[-+]?\d+(?:[.,]\d+)?\s?{_UNITS}(?![\w])", MASK),
    ("kv_value", r"(?<=[\w\]\)]=)[^\s,;&)\]}\"']+", MASK),
    ("bool_null", r"\b(?:true|false|null|none|nil|True|False|None|NULL|TRUE|FALSE)\b", MASK),
    ("digit_id", r"(?<![\w<*>-])(?=[\w-]*\d)[\w-]+", MASK),
    ("number", r"(?<![\w.])[-+]?\d+(?:[.,]\d+)*(?![\w])", MASK),
)
_COMPILED = tuple((re.compile(p), r) for _, p, r in MASK_RULES)
_RUN = re.compile(r"<\*>(?:[\s,;:/|#.+\-=]*<\*>)+")

# Speed, not semantics: per rule a cheap *necessary* condition for a match (a literal the
# pattern must contain, or a short literal-led regex the match must contain). A rule whose
# condition fails cannot match, so skipping its ``sub`` leaves the text unchanged. Conditions
# are checked on the current text (earlier rules only ever remove characters into ``<*>``),
# and are tied to the exact pattern they were derived from: an edited pattern loses its
# pre-check (and stays correct) until the pre-check is re-derived.
_DIGIT = re.compile(r"\d")
_BOOL_WORDS = ("true", "false", "null", "none", "nil", "True", "False", "None", "NULL", "TRUE", "FALSE")


def _pre(rx: str, *literals: str, counts: tuple[str, int] | None = None):  # noqa: ANN202
    """A pre-check: all ``literals`` present, ``counts`` (char, n) at least n times, then ``rx``."""
    crx = re.compile(rx) if rx else None

    def check(m: str) -> bool:
        if counts is not None and m.count(counts[0]) < counts[1]:
            return False
        for lit in literals:
            if lit not in m:
                return False
        return crx is None or crx.search(m) is not None
    return check


_PRECHECKS = {
    "url": (MASK_RULES[0][1], _pre("", "://")),
    "uuid": (MASK_RULES[1][1], _pre(r"-[0-9a-fA-F]{4}-", counts=("-", 4))),
    "timestamp": (MASK_RULES[2][1], _pre(r"-\d{1,2}-\d", counts=("-", 2))),
    "time": (MASK_RULES[3][1], _pre(r":\d\d:", counts=(":", 2))),
    "ipv4": (MASK_RULES[4][1], _pre(r"\.\d{1,3}\.\d{1,3}\.\d", counts=(".", 3))),
    "mac": (MASK_RULES[5][1], _pre(r":[0-9a-fA-F]{2}:", counts=(":", 5))),
    "ipv6": (MASK_RULES[6][1], lambda m: "::" in m or (m.count(":") >= 7 and _IPV6_PRE.search(m) is not None)),
    "host_port": (MASK_RULES[7][1], _pre(r":\d", ".")),
    "win_path": (MASK_RULES[8][1], _pre("", ":\\")),
    "path": (MASK_RULES[9][1], _pre("", "/")),
    "hex": (MASK_RULES[10][1], lambda m: "0x" in m or "0X" in m),
    "kv_value": (MASK_RULES[13][1], _pre("", "=")),
    "bool_null": (MASK_RULES[14][1], lambda m: any(w in m for w in _BOOL_WORDS)),
}
_IPV6_PRE = re.compile(r":[0-9a-fA-F]{1,4}:")
# rules that cannot match text without a (unicode) decimal digit: ``\d`` is part of every match
_NEEDS_DIGIT = frozenset({"timestamp", "time", "ipv4", "host_port", "hex", "size_duration", "digit_id", "number"})
_PIPELINE = tuple(
    (rx, repl, _PRECHECKS[name][1] if name in _PRECHECKS and _PRECHECKS[name][0] == pat else None,
     name in _NEEDS_DIGIT)
    for (name, pat, _), (rx, repl) in zip(MASK_RULES, _COMPILED, strict=True))


def normalise_template(text: str) -> str:
    """Collapse adjacent ``<*>`` joined by separators into one ``<*>`` and squeeze spaces."""
    return " ".join(_RUN.sub(MASK, text).split())


_GLUED = re.compile(r"\s*<\*>\s*")


@lru_cache(maxsize=1 << 16)
def mask(message: str) -> str:
    """The message with its parameters replaced by ``<*>`` (then normalised).

    Results are cached (log lines repeat, within a window and across overlapping windows);
    rules that cannot match are skipped (see ``_PRECHECKS``): the output is the one of applying
    every rule of ``MASK_RULES`` in order."""
    digit = _DIGIT.search(message) is not None
    for rx, repl, pre, needs_digit in _PIPELINE:
        if needs_digit and not digit:
            continue  # digits are only ever removed, never added
        if pre is not None and not pre(message):
            continue
        out = rx.sub(repl, message)
        if out is not message and out != message:
            message = out
            if digit:
                digit = _DIGIT.search(message) is not None
    return normalise_template(message)


def tokens(masked: str) -> list[str]:
    """Miner tokens of a masked message: whitespace split, and every ``<*>`` is a token of its
    own (``[<*>]`` -> ``[``, ``<*>``, ``]``) so a parameter never makes a literal token differ."""
    return _GLUED.sub(" <*> ", masked).split()


def glue(masked: str) -> tuple[bool, ...]:
    """Per token of ``tokens(masked)``: was it preceded by whitespace? (to print templates back)"""
    flags: list[bool] = []
    for chunk in masked.split():
        pieces = _GLUED.sub(" <*> ", chunk).split()
        flags.extend([bool(flags)] + [False] * (len(pieces) - 1))
    return tuple(flags)


def render(toks: Sequence[str], flags: Sequence[bool]) -> str:
    """Join tokens back into text with the spacing ``flags`` from ``glue``."""
    return normalise_template("".join((" " if f else "") + t for t, f in zip(toks, flags, strict=True)))
