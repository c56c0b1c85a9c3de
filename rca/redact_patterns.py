"""The regular expressions behind :mod:`rca.redact`, as data: one entry per kind, in the order
the kinds apply. ``rca.redact`` compiles them once per redactor and owns the replacement logic.

Shared conventions:

* ``_lb()`` ("left boundary") starts a token only where the previous character cannot
  continue it — or right after a backslash escape such as ``\\n``, so ``"...\\nalice@example.com"``
  (JSON inside a JSON string) is still caught without eating the escape's ``n``.
* Each regex opens with a lookahead on its possible first characters (``(?=[pstaemc])``):
  about 3x faster than letting every position try the whole alternation.
* ``_Q`` is a quote that may itself be escaped any number of times (``"``, ``\\"``,
  ``\\\\\\"``): keys and values inside JSON strings, also double-encoded.
* Token bodies use possessive quantifiers (``{4,}+``) so a lookahead cannot make the engine
  settle on a shorter prefix of a secret.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["KIND_SPECS", "NOT_SECRET_VALUE", "NUMBERISH", "PLACEHOLDER", "SECRET_KEY", "USER_KEY",
           "VERSION_CONTEXT", "KindSpec"]


def _lb(chars: str) -> str:
    """Left boundary: not after any of ``chars`` nor a backslash — except right after a ``\\n``-style
    escape (so the escape's letter is never taken as the token's first character)."""
    return rf"(?:(?<![\\{chars}])|(?<=\\[nrt]))"


_Q = r"""\\*["']"""
_SEP_ANY = r"[ \t]*(?:=>|:=|=|:)[ \t]*"
_QUOTED = r"(?P<vq>" + _Q + r")(?P<qv>(?:(?!(?P=vq))(?:\\.|[^\\\n]))*+)(?P=vq)?"

# Key names that say "the value is a secret". A key must END with one of these (plus an
# optional id/key/hash-like suffix), so ``token_type``, ``max_tokens``, ``author`` and
# ``input_tokens`` are not secret keys while ``DB_PASSWORD``, ``X-Auth-Token``, ``apiKey`` and
# ``aws_secret_access_key`` are.
_SECRET_WORDS = (
    r"(?:pass(?:word|wd|phrase)|(?<![a-z])pass|pwd|secrets?|token|api[_-]?key|apikey"
    r"|(?:access|private|secret|signing|encryption|master|account|shared)[_-]?key"
    r"|auth|authorization|credentials?|session|cookie|signature)"
)
_SECRET_SUFFIX = r"(?:[_.-]?(?:id|key|value|hash|b64|base64|string|str))?\d?"
SECRET_KEY = r"[\w.-]*?" + _SECRET_WORDS + _SECRET_SUFFIX
"""A whole key that names a secret (``re.fullmatch`` with IGNORECASE; also used by redact_obj)."""

# Keys that hold a person: user, userId, user_name, enduser.id (OTel), customer_id, account_id, uid.
USER_KEY = (r"(?:(?:[\w-]*[_.-])?(?:end)?user(?:[_.-]?(?:id|name))?|username"
            r"|(?:[\w-]*[_.-])?(?:customer|account)[_.-]?id|uid)")

_VALUE_ALTS = (
    # quoted value: "…", '…', \"…\" (to the matching quote; an unclosed quote runs to end of line)
    r"(?:(?P<kq>" + _Q + r")?(?P<s1>" + _SEP_ANY + r")" + _QUOTED
    # key=value, unquoted: up to whitespace or a delimiter (query strings, log fields, env files)
    + r"|(?P<s2>(?:" + _Q + r")?[ \t]*(?:=>|:=|=)[ \t]*)(?P<ev>[^\s\"'`,;&<>(){}\[\]\\=][^\s\"'`,;&<>(){}\[\]\\]*)"
    # "key": value unquoted (JSON numbers, null)
    + r"|(?P<s3>" + _Q + r"[ \t]*:[ \t]*)(?P<jv>[^\s\"'`,;<>(){}\[\]\\]+)"
    # key: value (YAML, HTTP headers): a space after the colon is required, so entity ids and
    # metric names (``session:abc``, ``vllm:…``) never look like keys
    + "{colon}"
    # <password>value</password> (the handler checks the key opens a tag)
    + r"|(?P<s5>>)(?P<xv>[^<>\n]+)(?=</)"
    + r")"
)
_SECRET_COLON = r"|(?P<s4>[ \t]*:[ \t]+)(?P<lv>[^\s\"'`<>{}\[\]\\][^\n\r\"'`<>{}\[\]\\]*)"
_USER_COLON = r"|(?P<s4>[ \t]*:[ \t]+)(?P<lv>[^\s\"'`,;<>(){}\[\]\\]+)"

# The regexes start at the key word itself (a lazy scan over every word's prefix costs ~5x);
# the handler reads the whole key back from the text.
SECRET_KV = (r"(?=[pstaemc])(?P<key>" + _SECRET_WORDS + _SECRET_SUFFIX + r")"
             + _VALUE_ALTS.replace("{colon}", _SECRET_COLON))
USER_KV = (r"(?=[euca])(?P<key>(?:(?:" + _lb(r"\w.-") + r"|(?<=[_.-]))(?:(?:end)?user(?:[_.-]?(?:id|name))?|username"
           r"|(?:customer|account)[_.-]?id)|" + _lb(r"\w.-") + r"uid))(?![\w.-])"
           + _VALUE_ALTS.replace("{colon}", _USER_COLON))

PRIVATE_KEY = (
    r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
    r"(?:(?:[^-]|-(?!----))*+-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|(?:[A-Za-z0-9+/=\r\n]|\\[nr])*+)"
)

_TOKEN = r"[A-Za-z0-9._~+/=-]"
_NEXT_LINE = r"[ \t]*(?:\\?\r?\n[ \t]*)?"  # the token may sit on the next line (also after a `\`)
AUTH = (
    # Authorization: Bearer xxx / "Authorization": "Basic xxx" / -H 'Proxy-Authorization: token xxx'
    r"(?=[apb-])(?:" + _lb(r"\w-") + r"(?:proxy-)?authorization(?:" + _Q + r")?[ \t]*[:=][ \t]*(?:" + _Q + r")?[ \t]*"
    r"(?:bearer|basic|token|negotiate|ntlm|apikey)" + _NEXT_LINE + r"(?P<tok>" + _TOKEN + r"{4,}+)(?!:)"
    # a bare "Bearer <token>" when the token looks random (has a digit, 16+ characters)
    + r"|" + _lb(r"\w-") + r"bearer" + _NEXT_LINE + r"(?P<tok2>(?=" + _TOKEN + r"*\d)" + _TOKEN + r"{16,}+)"
    # curl -u user:pass / --user=user:pass
    + r"|(?<!\S)(?:-u|--user)(?:[ \t]+|=)['\"]?(?P<cred>[^\s'\":]+:[^\s'\"]+)"
    # --password xxx / --token xxx (space-separated CLI flags; `--password=x` is a key=value)
    + r"|(?<!\S)--(?:password|passwd|token|api-key|secret|client-secret)[ \t]+['\"]?(?P<flag>[^\s'\"]+))"
)

JWT = r"(?=e)" + _lb(r"\w-") + r"eyJ[A-Za-z0-9_-]{5,}+\.eyJ[A-Za-z0-9_-]{5,}+\.[A-Za-z0-9_-]*+"

_API_KEYS = (
    r"sk-ant-[A-Za-z0-9_-]{20,}+",                  # Anthropic
    r"sk-(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{20,}+",  # OpenAI sk-, sk-proj-, sk-svcacct- (random: has a digit)
    r"gh[pousr]_[A-Za-z0-9]{30,}+",                 # GitHub classic tokens
    r"github_pat_[A-Za-z0-9_]{20,}+",               # GitHub fine-grained
    r"glpat-[A-Za-z0-9_-]{20,}+",                   # GitLab
    r"xox[abprse]-[A-Za-z0-9-]{10,}+",              # Slack
    r"xapp-[A-Za-z0-9-]{10,}+",
    r"(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])",  # AWS access key id
    r"AIza[0-9A-Za-z_-]{35}",                        # Google
    r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}+",   # Stripe
    r"hf_[A-Za-z0-9]{30,}+",                         # Hugging Face
    r"npm_[A-Za-z0-9]{36}",
    r"rca_[0-9a-f]{8}_[A-Za-z0-9_-]{20,}+",          # ours (rca.apikeys)
)
API_KEY = r"(?=[sgxAahrn])" + _lb(r"\w-") + r"(?:" + "|".join(_API_KEYS) + r")"

# scheme://userinfo@host — userinfo may contain '@' (unencoded passwords): up to the last '@'
URL_CREDENTIALS = (r"(?=[A-Za-z])" + _lb(r"\w+.-") + r"[A-Za-z][A-Za-z0-9+.-]{1,20}://"
                   r"(?P<cred>[^\s/?#\"'<>\\]+)@(?=[\w\[])")

EMAIL = (r"(?=\w)" + _lb(r"\w.%+-") + r"(?P<email>[A-Za-z0-9_][A-Za-z0-9._%+-]{0,63}(?:@|%40)"
         r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24})(?![\w-])")

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
# IPv6 candidates (>= 2 colons, hex groups of <= 4, optional dotted tail and %zone); every
# candidate is then validated by ``ipaddress``, so times (16:38:00) and MACs never pass.
IPV6 = (r"(?=[0-9A-Fa-f:])" + _lb(r"\w:.") + r"(?P<ip6>(?:[0-9A-Fa-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{1,4})?)"
        r"(?P<zone>%[\w.-]+)?(?![\w:]|\.\d)")
IPV4 = r"(?=\d)" + _lb(r"\w.") + rf"(?P<ip4>{_IPV4})(?![\w]|\.\d)"

PLACEHOLDER = re.compile(r"<(?:secret|private-key|url-credentials|[a-z][a-z0-9_-]{0,39}:[0-9a-f]{8})>")
"""What the redactor writes; nothing may cut through one (this keeps redact idempotent)."""

NOT_SECRET_VALUE = re.compile(
    r"(?i)(?:true|false|null|none|nil|yes|no|on|off|ok|enabled|disabled|required|optional|"
    r"redacted|masked|hidden|bearer|basic|token|negotiate|ntlm|apikey|\*+|x{3,}|-+|"
    r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?|\{\{[^}]*\}\}|%\([a-z_]+\)s)"
)
"""Values that are never secrets (booleans, schemes, masks, ``${ENV}`` / template references)."""

NUMBERISH = re.compile(r"-?\d+(?:[.,]\d+)*(?:[ \t]*[A-Za-z/%µ]{1,12})?")
"""A count or a quantity with a unit: ``512``, ``45.2 tokens/s`` — not a secret unless the key is a
password, not a user id when it has a decimal point or a unit."""

VERSION_CONTEXT = re.compile(r"(?i)(?:version|ver|release|build|rev)[ \t]*[=:]?[ \t]*[\"']?$|[=~<>!]=$")
"""Text right before a dotted quad that makes it a version, not an address."""


@dataclass(frozen=True)
class KindSpec:
    """One built-in kind: its regex, flags and a cheap literal test that must pass first."""

    name: str
    pattern: str
    flags: int = 0
    needles: tuple[str, ...] = ()  # skip the regex when none of these occurs (lowercased text)


KIND_SPECS: tuple[KindSpec, ...] = (
    KindSpec("private_key", PRIVATE_KEY, re.DOTALL, ("private key",)),
    KindSpec("auth", AUTH, re.IGNORECASE, ("authorization", "bearer", "-u", "--user", "--")),
    KindSpec("jwt", JWT, 0, ("eyj",)),
    KindSpec("api_key", API_KEY, 0, ("sk-", "gh", "github_pat_", "glpat-", "xox", "xapp-", "akia", "asia",
                                     "abia", "acca", "aiza", "sk_", "rk_", "hf_", "npm_", "rca_")),
    KindSpec("url_credentials", URL_CREDENTIALS, 0, ("://",)),
    KindSpec("secret_kv", SECRET_KV, re.IGNORECASE, ("pass", "pwd", "secret", "token", "key", "auth",
                                                     "credential", "session", "cookie", "signature")),
    KindSpec("email", EMAIL, 0, ("@", "%40")),
    KindSpec("user_id", USER_KV, re.IGNORECASE, ("user", "customer", "account", "uid")),
    KindSpec("ipv6", IPV6, 0, ("::", ":0", ":1", ":2", ":3", ":4", ":5", ":6", ":7", ":8", ":9",
                               ":a", ":b", ":c", ":d", ":e", ":f")),
    KindSpec("ipv4", IPV4, 0, (".",)),
)
