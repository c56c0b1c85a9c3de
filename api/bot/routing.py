"""Notification routing: which notifiers hear about an incident, when, and above what confidence.

Routes come from ``RCA_NOTIFY_ROUTES`` (JSON or YAML), a list evaluated in order, Alertmanager
style::

    - match: {team: ml, service: "~vllm-.*"}       # every matcher must hold
      notifiers: [pagerduty, slack]
      min_confidence: 0.6                          # else settings.notify_min_confidence
      quiet_hours: "22:00-07:00 Europe/Paris"      # zone optional (UTC)
      continue: true                               # keep matching later routes
    - match: {}                                    # catch-all
      notifiers: [slack]

* A matcher value is an exact string, or ``~regex`` matched against the whole value; a label the
  incident lacks counts as ``""``. Special labels: ``severity`` (critical|error|warning|info, the
  message's) and ``source`` (``alert`` | ``scan``). Alert incidents carry the group's common
  labels; scan incidents ``<kind>: <name>`` of the root entity, ``entity`` and ``category``.
* ``min_confidence`` is part of the match: a route whose threshold the top hypothesis misses is
  passed over (a later route may take the incident). Resolutions ignore confidence.
* The first matching route wins unless it says ``continue``; notifiers of all routes taken are
  used once each. No route matching means no notification (add ``match: {}`` as a catch-all).
  No routes configured at all means every configured notifier (above the default threshold).
* Quiet hours ``HH:MM-HH:MM [Zone]`` (may cross midnight; the instant is converted with zoneinfo,
  so DST is handled): only ``critical`` messages go out; others are *held* — recorded in the
  delivery log as an undelivered record whose one attempt reads ``quiet`` — and the bot worker's
  redelivery pass sends the incident's then-current message once the period ends.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from api.bot.notifiers import Attempt, DeliveryRecord, Dispatcher, DispatchResult, IncidentMessage, Notifier
from rca.errors import BadInput
from rca.settings import parse_json_or_yaml

__all__ = ["QUIET", "Matcher", "QuietHours", "Route", "Router", "Targets", "dispatch_routed", "load_routes",
           "scan_labels"]

QUIET = "quiet"  # the result of the one attempt of a held record
_FIELDS = {"match", "notifiers", "min_confidence", "quiet_hours", "continue"}
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class Matcher:
    """``label`` equals ``value``, or (``regex``) fully matches it."""

    label: str
    value: str
    regex: re.Pattern[str] | None = None

    def __call__(self, labels: Mapping[str, str]) -> bool:
        got = str(labels.get(self.label, ""))
        return bool(self.regex.fullmatch(got)) if self.regex is not None else got == self.value


@dataclass(frozen=True)
class QuietHours:
    """``start``-``end`` minutes after local midnight in ``zone``; ``start > end`` crosses midnight."""

    start_min: int
    end_min: int
    zone: str = "UTC"

    def contains(self, now: float) -> bool:
        t = datetime.fromtimestamp(now, ZoneInfo(self.zone))
        m = t.hour * 60 + t.minute
        if self.start_min <= self.end_min:
            return self.start_min <= m < self.end_min
        return m >= self.start_min or m < self.end_min


@dataclass(frozen=True)
class Route:
    match: tuple[Matcher, ...] = ()
    notifiers: tuple[str, ...] = ()
    min_confidence: float | None = None
    quiet_hours: QuietHours | None = None
    continue_: bool = False

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m(labels) for m in self.match)


@dataclass(frozen=True)
class Targets:
    """Notifiers to send to now, notifiers whose message is held by quiet hours, and why."""

    notifiers: tuple[Notifier, ...]
    held: tuple[Notifier, ...]
    reason: str


# --- loading --------------------------------------------------------------------------------------

def _quiet(text: Any, where: str) -> QuietHours:
    fix = 'write "HH:MM-HH:MM Zone", e.g. "22:00-07:00 Europe/Paris"'
    if not isinstance(text, str) or not text.strip():
        raise BadInput(f"{where}: quiet_hours must be a string", field=f"{where}.quiet_hours", fix=fix)
    span, _, zone = text.strip().partition(" ")
    a, _, b = span.partition("-")
    ma, mb = _HHMM.match(a), _HHMM.match(b)
    if not ma or not mb:
        raise BadInput(f"{where}: cannot read quiet_hours {text!r}", field=f"{where}.quiet_hours", fix=fix)
    zone = zone.strip() or "UTC"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadInput(f"{where}: unknown time zone {zone!r}", field=f"{where}.quiet_hours",
                       fix="use an IANA zone name such as Europe/Paris") from None
    qh = QuietHours(int(ma[1]) * 60 + int(ma[2]), int(mb[1]) * 60 + int(mb[2]), zone)
    if qh.start_min == qh.end_min:
        raise BadInput(f"{where}: quiet_hours {text!r} is empty", field=f"{where}.quiet_hours", fix=fix)
    return qh


def _route(doc: Any, i: int) -> Route:
    where = f"routes[{i}]"
    if not isinstance(doc, dict):
        raise BadInput(f"{where} must be a mapping", field=where, fix="give match, notifiers, ...")
    extra = set(doc) - _FIELDS
    if extra:
        bad = sorted(map(str, extra))[0]
        raise BadInput(f"{where}: unknown field {bad!r}", field=f"{where}.{bad}",
                       fix=f"use only {', '.join(sorted(_FIELDS))}")
    match = doc.get("match") or {}
    if not isinstance(match, dict):
        raise BadInput(f"{where}: match must be a mapping of label to value", field=f"{where}.match",
                       fix='e.g. {"team": "ml", "service": "~vllm-.*"}')
    matchers = []
    for k, v in match.items():
        if not isinstance(v, str | int | float) or isinstance(v, bool):
            raise BadInput(f"{where}: matcher {k!r} must be a string", field=f"{where}.match.{k}",
                           fix='an exact value, or "~regex"')
        v = str(v)
        if v.startswith("~"):
            try:
                matchers.append(Matcher(str(k), v, re.compile(v[1:])))
            except re.error as e:
                raise BadInput(f"{where}: bad regex for {k!r}: {e}", field=f"{where}.match.{k}",
                               fix="use a Python regular expression after the ~") from None
        else:
            matchers.append(Matcher(str(k), v))
    names = doc.get("notifiers")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise BadInput(f"{where}: notifiers must be a non-empty list of names", field=f"{where}.notifiers",
                       fix="e.g. [slack, pagerduty]")
    mc = doc.get("min_confidence")
    if mc is not None and (isinstance(mc, bool) or not isinstance(mc, int | float) or not 0 <= mc <= 1):
        raise BadInput(f"{where}: min_confidence must be a number in [0, 1]", field=f"{where}.min_confidence",
                       fix="e.g. 0.6")
    cont = doc.get("continue", False)
    if not isinstance(cont, bool):
        raise BadInput(f"{where}: continue must be true or false", field=f"{where}.continue", fix="true or false")
    qh = _quiet(doc["quiet_hours"], where) if doc.get("quiet_hours") is not None else None
    return Route(tuple(matchers), tuple(dict.fromkeys(names)), None if mc is None else float(mc), qh, cont)


def load_routes(text: str) -> list[Route]:
    """Routes from JSON or YAML text (a list, or a mapping with a ``routes`` list); ``""`` -> ``[]``."""
    if not text or not text.strip():
        return []
    doc = parse_json_or_yaml(text, "notify_routes", "give a list of {match, notifiers, ...}")
    if isinstance(doc, dict) and "routes" in doc:
        doc = doc["routes"]
    if not isinstance(doc, list):
        raise BadInput("notify routes must be a list", field="notify_routes", fix="give a list of {match, notifiers}")
    return [_route(d, i) for i, d in enumerate(doc)]


# --- deciding -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Router:
    """Decides :class:`Targets` for a message. :meth:`check` (run at start) refuses routes naming
    notifiers that are not configured."""

    routes: Sequence[Route]
    notifiers_by_name: Mapping[str, Notifier]
    default_min_confidence: float = 0.0

    def check(self) -> Router:
        known = set(self.notifiers_by_name)
        for i, r in enumerate(self.routes):
            for n in r.notifiers:
                if n not in known:
                    raise BadInput(f"routes[{i}]: notifier {n!r} is not configured", field=f"routes[{i}].notifiers",
                                   fix=f"configure it, or use one of {', '.join(sorted(known)) or '(none)'}")
        return self

    def targets(self, msg: IncidentMessage, labels: Mapping[str, str], confidence: float,
                now: float | None = None) -> Targets:
        """Where ``msg`` goes at ``now`` (unix s). ``labels`` get ``severity`` from ``msg``."""
        now = time.time() if now is None else now
        labels = {**{str(k): str(v) for k, v in labels.items()}, "severity": msg.severity}
        resolved = msg.status == "resolved"
        conf = float(confidence) if confidence is not None else math.nan
        if not self.routes:
            if not resolved and not conf >= self.default_min_confidence:
                return Targets((), (), f"top confidence {conf:.2f} < {self.default_min_confidence:.2f}")
            return Targets(tuple(self.notifiers_by_name.values()), (), "no routes: every notifier")
        send: dict[str, None] = {}
        held: dict[str, None] = {}
        why: list[str] = []
        for i, r in enumerate(self.routes):
            if not r.matches(labels):
                continue
            thr = self.default_min_confidence if r.min_confidence is None else r.min_confidence
            if not resolved and not conf >= thr:
                why.append(f"route {i} skipped: confidence {conf:.2f} < {thr:.2f}")
                continue
            quiet = r.quiet_hours is not None and msg.severity != "critical" and r.quiet_hours.contains(now)
            for n in r.notifiers:
                (held if quiet else send)[n] = None
            why.append(f"route {i}" + (" (quiet hours)" if quiet else ""))
            if not r.continue_:
                break
        held = {n: None for n in held if n not in send}
        pick = self.notifiers_by_name
        return Targets(tuple(pick[n] for n in send if n in pick), tuple(pick[n] for n in held if n in pick),
                       "; ".join(why) or "no route matched")


def scan_labels(root: str | None, category: str | None) -> dict[str, str]:
    """Routing labels of a scan incident: ``{<kind>: <name>, entity, category, source: scan}``."""
    out = {"source": "scan", "entity": root or "", "category": category or ""}
    if root and ":" in root:
        kind, name = root.split(":", 1)
        out.setdefault(kind, name)
    return out


def dispatch_routed(dispatcher: Dispatcher, router: Router, msg: IncidentMessage, labels: Mapping[str, str],
                    confidence: float, now: float | None = None,
                    only: Collection[str] | None = None) -> tuple[list[DispatchResult], str]:
    """Route ``msg`` and dispatch it to the routed notifiers (within ``only``, if given); held ones get
    a ``quiet`` record (once per content) and a ``DispatchResult`` with outcome ``quiet``."""
    now = time.time() if now is None else now
    t = router.targets(msg, labels, confidence, now)
    keep = (lambda n: True) if only is None else (lambda n: n.name in only)
    out: list[DispatchResult] = []
    for n in t.held:
        if not keep(n):
            continue
        prev = dispatcher.log.last(msg.incident_id, n.name)
        if prev is not None and prev.status == msg.status and prev.content_hash == msg.content_hash():
            out.append(DispatchResult(n.name, "duplicate", prev))
            continue
        newest = _newest(dispatcher.log, msg.incident_id, n.name)
        rec = DeliveryRecord(n.name, msg.incident_id, msg.fingerprint, msg.status, "quiet hours",
                             (Attempt(now, QUIET),), False, msg.content_hash())
        if not (newest is not None and _is_quiet(newest) and newest.content_hash == rec.content_hash
                and newest.status == rec.status):
            dispatcher.log.record(rec)
        out.append(DispatchResult(n.name, QUIET, rec))
    names = [n.name for n in t.notifiers if keep(n)]
    if names:
        out += dispatcher.dispatch(msg, only=names)
    return out, t.reason


def _is_quiet(rec: DeliveryRecord) -> bool:
    return not rec.delivered and len(rec.attempts) == 1 and rec.attempts[0].result == QUIET


def _newest(log: Any, incident_id: str, notifier: str) -> DeliveryRecord | None:
    """The newest record, delivered or not (``SqlDeliveryLog.records()`` or ``MemoryDeliveryLog.records``)."""
    recs = log.records(incident_id) if callable(getattr(log, "records", None)) else getattr(log, "records", [])
    mine = [r for r in recs if r.incident_id == incident_id and r.notifier == notifier]
    return mine[-1] if mine else None
