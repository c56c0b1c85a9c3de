"""Incident -> training/evaluation records (the shapes of ``datasets/schemas/*.schema.json``).

The **prompt** is what an on-call engineer would have in front of them: the question (or
alert), the symptom with numbers and units, and the observations the engine made on every
entity it looked at closely — metric anomalies, log-template bursts, trace findings, change
events — listed by entity name, *not* in the engine's rank order (that order would leak the
answer), and without the engine's inferences ("may be an effect of …"). Then what was checked
and found normal and what had no data.

The **completion** is the confirmed diagnosis as JSON, ``{root_cause: {component, category,
summary}, evidence, confidence, remediation}`` (telemetry.md §9.3): the evidence is the root's
own observations, the remediation comes from a per-category catalogue.

**Negatives** (DPO ``rejected``, KTO ``label: false``), hardest first: each hypothesis a human
rejected; the *wrong layer* — an entity on the dependency path between the root and the symptom,
the one that suffered rather than the one that caused (blaming the model for its GPU's XID);
the *symptom* restated as its own cause ("p99 latency of the gateway is high"); and, when that
makes fewer than two, the engine's best other hypothesis (``unrelated``).

Everything passes through one ``Redactor`` per export, so a pseudonymised IP in the prompt
still matches the same IP in the completion.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rca.learn import Label
from rca.rank.categories import describe
from rca.serialize import rfc3339
from rca.types import Evidence, Hypothesis, Incident

__all__ = ["REMEDIATION", "SYSTEM_PROMPT", "Labelled", "build_records", "fingerprint_of", "prompt_of"]

SYSTEM_PROMPT = ("You are an SRE assistant for LLM serving fleets. Given an incident's question or alert, metric "
                 "anomalies, log templates and trace findings, return JSON {\"root_cause\": {\"component\", "
                 "\"category\", \"summary\"}, \"evidence\": [...], \"confidence\": 0..1, \"remediation\": [...]}. "
                 "The component is an entity id kind:name from the context.")

REMEDIATION: Mapping[str, tuple[str, ...]] = {
    "kv_cache_exhaustion": ("cap max_model_len or per-tenant prompt length", "scale out replicas",
                            "enable prefix caching / chunked prefill"),
    "gpu_hw_fault": ("cordon the node and drain the GPU's pods", "check dmesg / nvidia-smi -q for the XID",
                     "reset or replace the GPU"),
    "gpu_thermal_throttle": ("check cooling, fans and inlet temperature", "check the power cap and clocks",
                             "move load off the throttled GPU"),
    "noisy_neighbor": ("isolate or rate-limit the neighbour's workload", "set resource limits / MIG partitions",
                       "move the workload to another node"),
    "traffic_surge": ("scale out", "enable rate limiting or load shedding", "check the caller for retry storms"),
    "bad_deploy": ("roll back the deploy or config change", "compare the new config with the previous one"),
    "input_drift": ("inspect the new input distribution", "re-evaluate the model on recent inputs",
                    "route or filter out-of-distribution requests"),
    "token_loop": ("set max_tokens and stop sequences", "add repetition penalties",
                   "find and fix the prompt or model version that loops"),
    "tool_or_mcp_failure": ("check the tool / MCP server's health and logs", "add timeouts and fallbacks",
                            "fail fast instead of retrying a dead tool"),
    "resource_cpu": ("raise the CPU limit or scale out", "profile the hot path"),
    "resource_memory": ("raise the memory limit", "look for a leak (heap growth over time)"),
    "disk": ("free or grow the volume", "check for runaway logs or temp files"),
    "network_delay": ("check the link and the network path into the service", "check DNS and connection pools"),
    "network_loss": ("check packet loss on the path", "check NIC errors and MTU"),
    "socket": ("raise connection-pool / file-descriptor limits", "look for leaked connections"),
    "code_error": ("read the new exceptions in the logs", "roll back the last code change"),
}
DEFAULT_REMEDIATION = ("look at the root's own logs and recent changes", "compare with a healthy replica")
OBSERVED = ("metric", "log", "trace", "change")
# prompt sections: evidence kind -> (title, most lines)
SECTIONS = {"metric": ("ANOMALIES (incident vs baseline)", 32), "log": ("LOGS", 8), "trace": ("TRACES", 8),
            "change": ("CHANGES", 4)}
MAX_PER_ENTITY = 6


@dataclass(frozen=True)
class Labelled:
    """An incident with its ground truth, from feedback (``origin="feedback"``) or the
    simulator (``origin="sim"``, ``scenario`` and ``seed`` set)."""

    incident: Incident
    label: Label
    origin: str = "feedback"
    scenario: str | None = None
    seed: int | None = None


def fingerprint_of(item: Labelled, redactor: Any) -> str:
    """What the split is keyed on: one simulated run, or one real event — the same root and
    category within the same hour, however many times and ways it was asked about. Hashed from
    the *redacted* root, so the fingerprint cannot be brute-forced back to an IP or a user."""
    if item.origin == "sim":
        key = ["sim", item.scenario, item.seed, item.incident.id]
    else:
        key = ["incident", redactor.redact(item.label.root or ""), item.label.category,
               item.incident.window.start // 3600]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:32]


def _observations(inc: Incident) -> dict[str, list[Evidence]]:
    by: dict[str, list[Evidence]] = {}
    seen: set[str] = set()
    for h in inc.hypotheses:
        for ev in h.evidence:
            if ev.kind in OBSERVED and ev.status == "anomalous" and ev.summary not in seen:
                seen.add(ev.summary)
                by.setdefault(ev.entity, []).append(ev)
    return by


def prompt_of(inc: Incident) -> str:
    lines = [f"QUESTION: {inc.question}" if inc.question else "ALERT: anomaly scan"]
    lines.append(f"WINDOW: {rfc3339(inc.window.start)} to {rfc3339(inc.window.end)}")
    s = inc.symptom
    if s is not None:
        if s.series is not None and s.baseline == s.baseline:
            unit = f" {s.unit}" if s.unit else ""
            lines.append(f"SYMPTOM: {s.signal} of {s.entity} ({s.series.name}) {s.baseline:.3g}{unit} -> "
                         f"{s.observed:.3g}{unit}")
        else:
            lines.append(f"SYMPTOM: {s.signal} of {s.entity}")
    obs = _observations(inc)
    for kind, (title, budget) in SECTIONS.items():
        rows = [f"- {ev.summary}" for ent in sorted(obs) for ev in [e for e in obs[ent] if e.kind == kind]
                [:MAX_PER_ENTITY]][:budget]
        if rows:
            lines += [f"{title}:"] + rows
    normal = sorted({c for h in inc.hypotheses for c in h.checked})
    if normal:
        lines.append("CHECKED AND NORMAL: " + "; ".join(normal[:12]))
    no_data = list(inc.no_data) + sorted({n for h in inc.hypotheses for n in h.no_data})
    if no_data:
        lines.append("NO DATA: " + "; ".join(no_data[:8]))
    return "\n".join(lines)


def _hyp(inc: Incident, root: str | None) -> Hypothesis | None:
    return next((h for h in inc.hypotheses if h.root == root), None)


def diagnosis(inc: Incident, root: str, category: str | None, confidence: float | None = None) -> dict[str, Any]:
    h = _hyp(inc, root)
    cat = category or (h.category if h else None) or "unknown"
    evidence = [ev.summary for ev in (h.evidence if h else ()) if ev.kind in OBSERVED][:6]
    conf = confidence if confidence is not None else (round(h.confidence, 2) if h else 0.5)
    return {"root_cause": {"component": root, "category": cat, "summary": f"{root}: {describe(cat)}"},
            "evidence": evidence, "confidence": conf, "remediation": list(REMEDIATION.get(cat, DEFAULT_REMEDIATION))}


def negatives(inc: Incident, label: Label) -> list[tuple[str, dict[str, Any]]]:
    """(rejected_kind, diagnosis) pairs, hardest first, none naming the true root."""
    root = label.root
    out: list[tuple[str, dict[str, Any]]] = []
    for r in label.rejected:
        if r != root:
            out.append(("rejected_hypothesis", diagnosis(inc, r, None)))
    s = inc.symptom
    sym = s.entity if s is not None else None
    truth_h = _hyp(inc, root)
    # between the root and the symptom: what suffered, not what caused
    between = [e for e in (truth_h.path if truth_h else ()) if e not in (root, sym)]
    layer = next((e for e in between if e not in label.rejected), None)
    if layer is not None:
        out.append(("wrong_layer", diagnosis(inc, layer, None, confidence=0.7)))
    if s is not None and sym != root:
        d = {"root_cause": {"component": s.entity, "category": "symptom",
                            "summary": f"{s.signal} of {s.entity} is high"},
             "evidence": [f"{s.signal} of {s.entity} rose"], "confidence": 0.6,
             "remediation": [f"restart {s.entity}", "scale out"]}
        out.append(("symptom", d))
    if len(out) < 2:
        taken = {root, layer, sym, *label.rejected}
        other = next((h.root for h in inc.hypotheses if h.root not in taken),
                     next((c.entity for c in inc.candidates if c.entity not in taken), None))
        if other is not None:
            out.append(("unrelated", diagnosis(inc, other, None, confidence=0.6)))
    return out


def _msg(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


def build_records(items: Sequence[Labelled], fmt: str, redactor: Any, generator: str,
                  created_at: int) -> dict[str, list[dict[str, Any]]]:
    """Records of every config of ``fmt`` (``sft``, ``dpo``, ``kto``, ``eval``), redacted."""
    out: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        inc, lab = item.incident, item.label
        if lab.root is None:
            continue
        fp = fingerprint_of(item, redactor)
        meta = {"example_id": f"{inc.id}", "incident_id": inc.id, "fingerprint": fp, "origin": item.origin,
                "scenario": item.scenario, "seed": item.seed,
                "window": [rfc3339(inc.window.start), rfc3339(inc.window.end)],
                "labels": {"root_cause": lab.root, "category": lab.category},
                "verdict": "sim" if item.origin == "sim" else lab.verdict, "generator": generator,
                "created_at": rfc3339(lab.at or inc.created_at or created_at)}
        user = prompt_of(inc)
        prompt = [_msg("system", SYSTEM_PROMPT), _msg("user", user)]
        chosen = [_msg("assistant", json.dumps(diagnosis(inc, lab.root, lab.category), ensure_ascii=False))]
        recs: dict[str, list[dict[str, Any]]] = {}
        if fmt == "sft":
            recs["sft_messages"] = [{"messages": prompt + chosen, "meta": meta}]
            recs["sft_prompt_completion"] = [{"prompt": prompt, "completion": chosen, "meta": meta}]
        elif fmt == "eval":
            recs["eval"] = [{"question": inc.question or "", "context": user,
                             "expected": {"root_cause": lab.root, "category": lab.category}, "meta": meta}]
        else:
            negs = negatives(inc, lab)
            if fmt == "kto":
                rows = [{"prompt": prompt, "completion": chosen, "label": True,
                         "meta": {**meta, "example_id": f"{inc.id}:chosen", "rejected_kind": None}}]
                rows += [{"prompt": prompt, "completion": [_msg("assistant", json.dumps(d, ensure_ascii=False))],
                          "label": False, "meta": {**meta, "example_id": f"{inc.id}:{kind}", "rejected_kind": kind}}
                         for kind, d in negs]
                recs["kto"] = rows
            elif fmt == "dpo":
                pairs = [(kind, [_msg("assistant", json.dumps(d, ensure_ascii=False))]) for kind, d in negs]
                recs["dpo"] = [{"prompt": prompt, "chosen": chosen, "rejected": rej,
                                "meta": {**meta, "example_id": f"{inc.id}:{kind}", "rejected_kind": kind}}
                               for kind, rej in pairs]
                recs["dpo_openai"] = [{"input": {"messages": prompt}, "preferred_output": chosen,
                                       "non_preferred_output": rej,
                                       "meta": {**meta, "example_id": f"{inc.id}:{kind}", "rejected_kind": kind}}
                                      for kind, rej in pairs]
        for config, rows in recs.items():
            out.setdefault(config, []).extend(redactor.redact_obj(rows))
    return out
