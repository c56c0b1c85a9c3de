"""Sampled completion texts for inference spans (``gen_ai.output.messages``, opt-in content).

Real deployments capture message content for a sample of requests only. The simulator samples
``SAMPLE_EVERY``-th completions by a hash of the call, so capture never disturbs the main random
stream. A normal completion is varied prose; a looping one (the token black hole) repeats a
short phrase until ``max_tokens``. Whether a ``length`` finish loops is drawn with the share of
``length`` finishes above the normal level (normal truncations are long answers, not loops).
"""

from __future__ import annotations

import json

import numpy as np

__all__ = ["SAMPLE_EVERY", "output_messages"]

SAMPLE_EVERY = 4
_WORDS = tuple(["the", "request", "was", "served", "from", "cache", "after", "the", "retriever", "returned", "five", "passages", "and", "we", "ranked", "them", "by", "relevance", "before", "drafting", "a", "concise", "answer", "with", "citations", "that", "covers", "pricing", "limits", "regions", "quotas", "latency", "budgets", "retries", "backoff", "tokens", "model", "context", "window", "summary", "steps", "table", "user", "asked", "about", "deployment", "rollback", "plan", "metrics", "dashboard", "alert", "threshold", "owner", "runbook", "incident", "timeline", "customer", "impact"])


def output_messages(key: list[int], reason: str, loop_p: float) -> str | None:
    """The JSON ``gen_ai.output.messages`` of one sampled call, None when not sampled."""
    rng = np.random.default_rng(key)
    if rng.integers(0, SAMPLE_EVERY):
        return None
    if reason == "length" and rng.random() < loop_p:
        phrase = " ".join(rng.choice(_WORDS, size=int(rng.integers(3, 7))))
        text = " ".join([phrase] * 12)
    else:
        text = " ".join(rng.choice(_WORDS, size=int(rng.integers(30, 60))))
    return json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": text}],
                        "finish_reason": reason}])
