"""Scrub secrets and personal data from text before it leaves (dataset exports, prompts).

Secrets (private keys, tokens, passwords, URL credentials) become ``<secret>``,
``<private-key>`` or ``<url-credentials>``: never a hash of a secret. Identifiers become
**pseudonyms**, ``<ip:1a2b3c4d>``, ``<email:…>``, ``<user:…>``: the first 8 hex of
HMAC-SHA256(salt, kind + value), so the same address reads the same everywhere in one export
(an IP in an entity id of the prompt still matches the completion) and differs between exports
with different salts. Short ids can be brute-forced back when the salt is known: use a secret,
per-export salt when that matters.

Kinds apply in :data:`DEFAULT_KINDS` order, after the user's ``patterns``; each is one regex
pass. A replacement never cuts through an earlier placeholder, which makes ``redact``
idempotent, and never touches text inside a ``keep`` literal.

Choices:

* A dotted quad is an IPv4 address, also when it could be a version (``1.2.3.4``) — privacy
  first — unless it follows ``v``, ``version``/``ver``/``release``/``build`` or ``==``, ``>=``…,
  or is part of a longer dotted run (``1.3.6.1.4.1``).
* IPv6 needs >= 2 colons, is validated by :mod:`ipaddress` and must contain a digit (so
  ``16:38:00``, MAC addresses, ``std::vector`` and ``dead::beef`` survive). IPv4-mapped
  addresses (``::ffff:10.0.0.1``) get the pseudonym of their IPv4 address.
* ``key: value`` needs a space after the colon, so entity ids (``session:abc``) and metric
  names (``vllm:…``) are never read as keys; the value runs to the end of the line (YAML,
  HTTP headers). Numbers under token-ish keys are counts (``"token": 512``), not secrets.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rca.errors import BadInput
from rca.redact_patterns import (
    KIND_SPECS,
    NOT_SECRET_VALUE,
    NUMBERISH,
    PLACEHOLDER,
    SECRET_KEY,
    USER_KEY,
    VERSION_CONTEXT,
)

__all__ = ["DEFAULT_KINDS", "Redactor", "check_patterns"]

DEFAULT_KINDS: tuple[str, ...] = tuple(k.name for k in KIND_SPECS)

_FIX = "give each pattern as a valid Python regular expression that cannot match the empty string"
_PASSWORDISH = re.compile(r"(?i)(?:pass|pwd|secret|private|signing|encryption|master|credential)")
_SECRET_KEY_RX = re.compile(SECRET_KEY, re.IGNORECASE)
_USER_KEY_RX = re.compile(USER_KEY, re.IGNORECASE)
_PAIR_NAMES = ("name", "key")  # k8s env {"name": "DB_PASSWORD", "value": …}, OTel {"key": …, "value": …}

Edit = tuple[int, int, str]


def _named(patterns: Any) -> list[tuple[str, str]]:
    if isinstance(patterns, str):
        return [("custom", patterns)]
    if isinstance(patterns, Mapping):
        return [(k, v) for k, v in patterns.items()]
    if isinstance(patterns, Sequence):
        return [("custom", p) for p in patterns]
    raise BadInput(f"expected a mapping name -> regex or a list of regexes, got {type(patterns).__name__}",
                   field="redact_patterns", fix=_FIX)


def _kind_name(name: str) -> str:
    kind = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-")[:40]
    return kind if kind[:1].isalpha() else f"custom-{kind}"[:40].rstrip("-")


def check_patterns(patterns: Mapping[str, str] | Sequence[str]) -> None:
    """Raise :class:`BadInput` (``field="redact_patterns"``) naming the first bad pattern."""
    _compile_custom(patterns)


def _compile_custom(patterns: Any) -> list[tuple[str, re.Pattern[str]]]:
    out = []
    for name, src in _named(patterns):
        label = f"{name!r}" if name != "custom" else repr(src)
        if not isinstance(name, str) or not name.strip():
            raise BadInput(f"pattern name {name!r} must be a non-empty string", field="redact_patterns", fix=_FIX)
        if not isinstance(src, str):
            raise BadInput(f"pattern {label} is a {type(src).__name__}, not a string",
                           field="redact_patterns", fix=_FIX)
        try:
            rx = re.compile(src)
        except re.error as e:
            raise BadInput(f"pattern {label} ({src!r}) is not a valid regex: {e}",
                           field="redact_patterns", fix=_FIX) from None
        if rx.match("") is not None:
            raise BadInput(f"pattern {label} ({src!r}) matches the empty string",
                           field="redact_patterns", fix=_FIX)
        out.append((_kind_name(name), rx))
    return out


class Redactor:
    """Constructor only stores parameters (scikit-learn style): no compiling in __init__.

    ``patterns``: extra regexes applied first (``{name: regex}`` or a list, named ``custom``);
    a match becomes ``<name:pseudonym>`` — of the named group ``value`` or the first group when
    the regex has groups, else of the whole match. ``salt`` keys the pseudonyms. ``keep``:
    literal strings never redacted (a public hostname, a support address).
    """

    def __init__(self, patterns: Mapping[str, str] | Sequence[str] = (), salt: str = "rca",
                 keep: Sequence[str] = ()) -> None:
        self.patterns = patterns
        self.salt = salt
        self.keep = keep

    # --- public ------------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        """``text`` with every secret and identifier replaced (idempotent)."""
        return self._run(text, None)

    def findings(self, text: str) -> list[tuple[str, str]]:
        """``(kind, matched text)`` for every replacement :meth:`redact` would make, in order."""
        found: list[tuple[str, str]] = []
        self._run(text, found)
        return found

    def redact_obj(self, obj: Any) -> Any:
        """Recursively redact strings in dicts (values and string keys), lists and tuples.

        A value under a key that names a secret (``"password"``, ``"Authorization"``) becomes
        ``<secret>``; under a user key (``"user_id"``, ``"enduser.id"``) ``<user:…>``. Pairs
        ``{"name"|"key": "DB_PASSWORD", "value": …}`` (k8s env, OTel attributes) count too.
        Other scalars are returned unchanged."""
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, Mapping):
            return self._redact_mapping(obj)
        if isinstance(obj, list):
            return [self.redact_obj(v) for v in obj]
        if isinstance(obj, tuple):
            items = [self.redact_obj(v) for v in obj]
            return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
        return obj

    # --- objects -------------------------------------------------------------------------------

    def _redact_mapping(self, obj: Mapping[Any, Any]) -> dict[Any, Any]:
        pair = next((obj[n] for n in _PAIR_NAMES if isinstance(obj.get(n), str)), None)
        pair_role = _key_role(pair) if pair is not None else None
        out: dict[Any, Any] = {}
        for k, v in obj.items():
            if k == "value" and pair_role:  # the value may be wrapped: OTel {"stringValue": …}
                new_v = self._under(pair_role, v, deep=True)
            else:
                role = _key_role(k)
                new_v = self._under(role, v) if role else self.redact_obj(v)
            new_k = self.redact(k) if isinstance(k, str) else k
            n = 2
            while isinstance(k, str) and new_k in out:  # two keys redacted alike: keep both
                new_k, n = f"{self.redact(k)} ({n})", n + 1
            out[new_k] = new_v
        return out

    def _under(self, role: str, v: Any, deep: bool = False) -> Any:
        """``v`` sitting under a secret (role ``secret``/``secret-pw``) or user key. A mapping
        there names its own keys (``credentials: {username, password}``) unless ``deep``."""
        if isinstance(v, Mapping):
            if not deep:
                return self.redact_obj(v)
            return {self.redact(k) if isinstance(k, str) else k: self._under(role, x, deep) for k, x in v.items()}
        if isinstance(v, list):
            return [self._under(role, x, deep) for x in v]
        if isinstance(v, bool) or v is None or not isinstance(v, str | int | float):
            return self.redact_obj(v)
        s = str(v)
        if role == "user":
            return self._pseudo("user", s.strip()) if _user_value_ok(s.strip()) else self.redact_obj(v)
        return "<secret>" if _secret_value_ok(s, role == "secret-pw") else self.redact_obj(v)

    # --- the passes ----------------------------------------------------------------------------

    def _compiled(self) -> list[tuple[str, re.Pattern[str], tuple[str, ...], Callable[..., list[Edit]]]]:
        cached = getattr(self, "passes_", None)
        if cached is None:
            passes: list[tuple[str, re.Pattern[str], tuple[str, ...], Callable[..., list[Edit]]]] = []
            for kind, rx in _compile_custom(self.patterns):
                passes.append((kind, rx, (), self._custom_edit))
            for spec in KIND_SPECS:
                handler = getattr(self, f"_edit_{spec.name}")
                passes.append((spec.name, re.compile(spec.pattern, spec.flags), spec.needles, handler))
            keep = [self.keep] if isinstance(self.keep, str) else self.keep
            self.keep_ = sorted({k for k in keep if k}, key=len, reverse=True)
            self.pseudonyms_: dict[tuple[str, str], str] = {}
            self.passes_ = cached = passes
        return cached

    def _run(self, text: str, found: list[tuple[str, str]] | None) -> str:
        if not isinstance(text, str):
            raise TypeError(f"redact() takes a str, not {type(text).__name__}")
        for kind, rx, needles, handler in self._compiled():
            if needles:
                low = text.lower()
                if not any(n in low for n in needles):
                    continue
            pieces: list[str] = []
            pos = at = 0
            resume_at_key = "key" in rx.groupindex
            while (m := rx.search(text, at)) is not None:
                done = False
                for s, e, rep in handler(kind, m, text):
                    if s < pos or s >= e or self._protected(text, s, e):
                        continue
                    if found is not None:
                        found.append((kind, text[s:e]))
                    pieces += (text[pos:s], rep)
                    pos, done = e, True
                # a rejected key/value match gives back its value: it may hold the next key
                at = m.end() if done or not resume_at_key else m.end("key")
                at = max(at, m.start() + 1, pos)
            if pieces:
                pieces.append(text[pos:])
                text = "".join(pieces)
        return text

    def _protected(self, text: str, s: int, e: int) -> bool:
        """True when [s, e) cuts through a placeholder or lies inside a ``keep`` literal."""
        lo = max(0, s - 60)
        for p in PLACEHOLDER.finditer(text, lo, min(len(text), e + 60)):
            ps, pe = p.span()
            if ps < e and s < pe and not (s <= ps and pe <= e):
                return True
        for k in self.keep_:
            i = text.find(k, max(0, e - len(k)), s + len(k))
            if i != -1 and i <= s and e <= i + len(k):
                return True
        return False

    def _pseudo(self, kind: str, value: str) -> str:
        key = (kind, value)
        got = self.pseudonyms_.get(key)
        if got is None:
            digest = hmac.new(self.salt.encode(), f"{kind}\0{value}".encode(), hashlib.sha256).hexdigest()
            got = self.pseudonyms_[key] = f"<{kind}:{digest[:8]}>"
        return got

    # --- one handler per kind: (start, end, replacement) edits for a match ----------------------

    def _custom_edit(self, kind: str, m: re.Match[str], text: str) -> list[Edit]:
        g: str | int = "value" if "value" in m.re.groupindex else (1 if m.re.groups else 0)
        if m.group(g) is None:
            g = 0
        s, e = m.span(g)
        return [(s, e, self._pseudo(kind, m.group(g)))] if e > s else []

    def _edit_private_key(self, kind: str, m: re.Match[str], text: str) -> list[Edit]:
        return [(m.start(), m.end(), "<private-key>")]

    def _edit_auth(self, kind: str, m: re.Match[str], text: str) -> list[Edit]:
        g = next(g for g in ("tok", "tok2", "cred", "flag") if m.group(g) is not None)
        return [(*m.span(g), "<secret>")]

    def _edit_jwt(self, kind: str, m: re.Match[str], text: str) -> list[Edit]:
        return [(m.start(), m.end(), "<secret>")]

    _edit_api_key = _edit_jwt

    def _edit_url_credentials(self, kind: str, m: re.Match[str], text: str) -> list[Edit]:
        return [(*m.span("cred"), "<url-credentials>")]

    @staticmethod
    def _kv_value(m: re.Match[str], text: str) -> tuple[int, int, int] | None:
        """(key start, value start, value end) of a key/value match; None for an XML-ish value
        whose key is not an opening tag."""
        g, s, e = _value_span(m)
        ks = _key_start(text, m.start("key"))
        if g == "xv" and not _opens_tag(text, ks):
            return None
        return ks, s, e

    def _edit_secret_kv(self, kind: str, m: re.Match[str], text: str) -> list[Edit]:
        kv = self._kv_value(m, text)
        if kv is None:
            return []
        ks, s, e = kv
        if not _secret_value_ok(text[s:e], bool(_PASSWORDISH.search(text[ks:m.end("key")]))):
            return []
        return [(s, e, "<secret>")]

    def _edit_user_id(self, kind: str, m: re.Match[str], text: str) -> list[Edit]:
        kv = self._kv_value(m, text)
        if kv is None:
            return []
        _, s, e = kv
        value = text[s:e]
        return [(s, e, self._pseudo("user", value))] if _user_value_ok(value) else []

    def _edit_email(self, kind: str, m: re.Match[str], text: str) -> list[Edit]:
        return [(*m.span("email"), self._pseudo("email", m.group("email").replace("%40", "@").lower()))]

    def _edit_ipv6(self, kind: str, m: re.Match[str], text: str) -> list[Edit]:
        cand = m.group("ip6")
        if not any(c.isdigit() for c in cand):
            return []
        try:
            addr = ipaddress.IPv6Address(cand)
        except ValueError:
            return []
        norm = str(addr.ipv4_mapped) if addr.ipv4_mapped else addr.compressed
        return [(m.start("ip6"), m.end(), self._pseudo("ip", norm))]

    def _edit_ipv4(self, kind: str, m: re.Match[str], text: str) -> list[Edit]:
        s = m.start("ip4")
        if VERSION_CONTEXT.search(text, max(0, s - 12), s):
            return []
        return [(s, m.end("ip4"), self._pseudo("ip", m.group("ip4")))]


def _value_span(m: re.Match[str]) -> tuple[str, int, int]:
    """The value group that matched in a key/value regex, with its span (right-trimmed)."""
    g = next(g for g in ("qv", "ev", "jv", "lv", "xv") if m.group(g) is not None)
    s, e = m.span(g)
    return g, s, s + len(m.group(g).rstrip())


def _opens_tag(text: str, ks: int) -> bool:
    """The key at ``ks`` is an XML tag name (``<password>``), not a placeholder (``<secret>``)."""
    return ks > 0 and text[ks - 1] == "<" and not PLACEHOLDER.match(text, ks - 1)


def _key_start(text: str, pos: int) -> int:
    """Where the key whose key word starts at ``pos`` begins (``DB_`` of ``DB_PASSWORD``)."""
    while pos > 0 and (text[pos - 1].isalnum() or text[pos - 1] in "_.-"):
        pos -= 1
    return pos


def _key_role(key: Any) -> str | None:
    if not isinstance(key, str):
        return None
    if _SECRET_KEY_RX.fullmatch(key):
        return "secret-pw" if _PASSWORDISH.search(key) else "secret"
    if _USER_KEY_RX.fullmatch(key):
        return "user"
    return None


def _only_placeholders(value: str) -> bool:
    rest = PLACEHOLDER.sub(" ", value)
    return rest != value and not any(w and not NOT_SECRET_VALUE.fullmatch(w) for w in re.split(r"[\s,;:]+", rest))


def _secret_value_ok(value: str, passwordish: bool) -> bool:
    v = value.strip()
    if not v or NOT_SECRET_VALUE.fullmatch(v) or _only_placeholders(v):
        return False
    return passwordish or not NUMBERISH.fullmatch(v)


def _user_value_ok(value: str) -> bool:
    v = value.strip()
    if not v or NOT_SECRET_VALUE.fullmatch(v) or _only_placeholders(v) or PLACEHOLDER.search(v):
        return False
    return not (NUMBERISH.fullmatch(v) and not v.isdigit())
