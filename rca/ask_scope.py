"""Which entities a question is about: "on the checkout service", "for llama 3 70b", "gpu-node-2".

``ScopeMatcher(entities).resolve(text)`` finds mentions — runs of words left after stop words
(the time and signal words are masked with ``|`` by the caller) — and matches each against
entity names (the part after ``kind:``) in three layers, stopping at the first that answers:

1. **exact**: the normalised name ("llama 3 70b" == "llama-3-70b" == "Llama_3_70B"), also with
   the separators dropped ("llama3-70b") and with ``db`` spelled ``database``;
2. **fuzzy** (rapidfuzz): typos and partial names ("chekout", "lama-3-70b", "the gateway");
3. **semantic**: sentence embeddings of the mention and the names (``models.embeddings``;
   MiniLM, or hashed n-grams without it) — "the embedding service" -> ``service:embedder``.
   Only runs anchored by a kind word ("service", "pod" ...), a preposition ("on the ...") or
   an identifier shape reach it, so a question without a mention never loads the model.

A kind word next to a mention narrows the candidates to that kind. Two entities scoring about
equally raise ``Ambiguous`` (candidates best first); a kind-anchored or identifier-shaped
mention that matches nothing raises ``BadInput`` listing the closest names. Any exact match
wins over near ones ("checkout" with "checkout-v2" around is not ambiguous).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rapidfuzz import fuzz

from models.embeddings import Embedder
from rca.errors import Ambiguous, BadInput

__all__ = ["KIND_WORDS", "STOP_WORDS", "Mention", "ScopeMatcher"]

KIND_WORDS: dict[str, str] = {
    "service": "service", "services": "service", "svc": "service", "microservice": "service",
    "app": "service", "model": "model", "models": "model", "llm": "model", "node": "node", "nodes": "node",
    "host": "node", "hosts": "node", "machine": "node", "server": "node", "pod": "pod", "pods": "pod",
    "replica": "pod", "replicas": "pod", "container": "pod", "endpoint": "endpoint", "endpoints": "endpoint",
    "route": "endpoint", "path": "endpoint", "gpu": "gpu", "gpus": "gpu", "card": "gpu", "tool": "tool",
    "tools": "tool", "db": "db", "database": "db", "databases": "db", "datastore": "db",
}


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


STOP_WORDS = _wordset("""
a an the and or but of on in for at to from with by via across behind into onto over under within during
around about after before when while since until than then so as if is are was were be been being am do
does did done has have had having can could would should will shall may might must not no nor yes
why what whats which who whom whose where how come please hey hi ok okay just still again also even
it its this that these those there here they them their we us our ours i me my you your he she his her
all any some every each everything anything something nothing things thing one ones much many more most
very really quite too so such only own same other another lot lots bit
high higher highest low lower lowest elevated big bigger huge large small spike spikes spiked spiking jump
jumped jumps increase increased increasing decrease decreased drop dropped dropping rise rose rising
grow grew growing fill filled filling full empty up down out go goes going went gone get gets got
bad worse worst degraded degrade broken broke break breaking wrong healthy unhealthy fine normal weird odd
issue issues problem problems incident incidents outage outages alert alerts alerting page paged
happen happened happening happens cause caused causing causes reason reasons root explain explanation
look looking show tell check see saw seen seem seems seemed make makes made making take took taking
long fast faster slower slowly suddenly sudden time times moment period window users user customers
customer people requests request calls call responses response answer answers value values number
level levels usage used use using behaving behave acting act doing rca analysis investigate
slow slower slowest slowness latency latencies error errors failing failed fails failure failures
""")
_PREPOSITIONS = _wordset("on in for of at from with by via behind across to into inside")
_ARTICLES = _wordset("the a an our my this that")
_EXPAND = {"db": "database", "svc": "service", "llm": "language model"}
_QUANTILE = re.compile(r"p\d{2,3}(?:\.\d+)?")
_WORD = re.compile(r"/?[a-z0-9][a-z0-9_./\-]*[a-z0-9]|[a-z0-9]")
_Row = tuple[str, str, str, str]  # (entity id, kind, normalised name form, compact form)
_BREAK = re.compile(r"[|,;?!()\[\]\"{}]+|\s[-–]\s")


@dataclass(frozen=True)
class Mention:
    """A run of words that may name an entity, with the kind word next to it and its anchor."""

    words: tuple[str, ...]
    kind: str | None = None
    anchored: bool = False
    kind_word: str = ""

    @property
    def text(self) -> str:
        return " ".join(self.words)


def _norm(name: str) -> str:
    return " ".join(re.split(r"[^a-z0-9]+", name.lower())).strip()


def _compact(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", name.lower())


def _identifier(text: str) -> bool:
    return bool(re.search(r"[a-z]", text)) and bool(re.search(r"\d|[a-z][-_./][a-z0-9]", text))


class ScopeMatcher:
    """Resolve entity mentions in a question to ``kind:name`` ids (see the module docstring).

    ``min_score`` is the cosine similarity the semantic layer needs (default 0.55 for MiniLM,
    0.35 for the hashed n-gram fallback); ``fuzzy_min`` the rapidfuzz score (0–100) the fuzzy
    layer needs; ``margin`` how close two fuzzy scores must be to call it ambiguous."""

    def __init__(self, entities: Sequence[str], embedder: Embedder | None = None,
                 min_score: float | None = None, fuzzy_min: float = 80.0, margin: float = 4.0,
                 semantic_margin: float = 0.08) -> None:
        self.entities = tuple(dict.fromkeys(entities))
        self.embedder = embedder
        self.min_score = min_score
        self.fuzzy_min = fuzzy_min
        self.margin = margin
        self.semantic_margin = semantic_margin
        self._index: list[_Row] | None = None
        self._by_name: tuple[dict[str, list[_Row]], dict[str, list[_Row]]] | None = None
        self._vectors: np.ndarray | None = None

    # ---- index ---------------------------------------------------------------------------------
    def _entries(self) -> list[_Row]:
        if self._index is None:
            rows = []
            for eid in self.entities:
                kind, _, name = eid.partition(":") if ":" in eid else ("", "", eid)
                norm = _norm(name)
                forms = {norm, " ".join(_EXPAND.get(w, w) for w in norm.split())}
                rows += [(eid, kind, f, _compact(f)) for f in sorted(forms) if f]
            self._index = rows
        return self._index

    def _lookup(self) -> tuple[dict[str, list[_Row]], dict[str, list[_Row]]]:
        if self._by_name is None:
            by_norm: dict[str, list[_Row]] = {}
            by_compact: dict[str, list[_Row]] = {}
            for r in self._entries():
                by_norm.setdefault(r[2], []).append(r)
                by_compact.setdefault(r[3], []).append(r)
            self._by_name = (by_norm, by_compact)
        return self._by_name

    # ---- mentions ------------------------------------------------------------------------------
    def _sequences(self, text: str) -> list[tuple[list[str], bool]]:
        """Runs of non-stop words (kind words included) and whether a preposition/article precedes."""
        out: list[tuple[list[str], bool]] = []
        for seg in _BREAK.split(re.sub(r"'s\b", "", text.lower())):
            cur: list[str] = []
            anchored = prev_anchor = False
            for w in (m.group(0).strip("./-") or m.group(0) for m in _WORD.finditer(seg)):
                if w in STOP_WORDS or _QUANTILE.fullmatch(w):
                    if cur:
                        out.append((cur, anchored))
                        cur = []
                    prev_anchor = w in _PREPOSITIONS or w in _ARTICLES or (prev_anchor and w in _ARTICLES)
                    continue
                if not cur:
                    anchored = prev_anchor
                cur.append(w)
                prev_anchor = False
            if cur:
                out.append((cur, anchored))
        return out

    def mentions(self, text: str) -> list[Mention]:
        """Candidate mentions (no matching), e.g. for notes when there is no catalogue."""
        out = []
        for seq, anchored in self._sequences(text):
            out += self._runs(seq, [False] * len(seq), anchored)
        return out

    def _runs(self, seq: list[str], used: list[bool], anchored: bool) -> list[Mention]:
        """Runs of unused non-kind words; a kind word right after a run is its own, else the one before."""
        out: list[Mention] = []
        cur: list[str] = []
        start, before = 0, ""
        for i, w in enumerate([*seq, "|"]):
            free = w != "|" and not used[i]
            if free and w not in KIND_WORDS:
                start = i if not cur else start
                cur.append(w)
                continue
            taken = False
            if cur:
                kw = w if free else before
                kind = KIND_WORDS.get(kw)
                # only the run right after "on the" / "for" is anchored by it
                out.append(Mention(tuple(cur), kind, (anchored and start == 0) or kind is not None
                                   or _identifier(" ".join(cur)), kw))
                cur, taken = [], free
            before = w if free and not taken else ""
        return out

    # ---- matching ------------------------------------------------------------------------------
    def resolve(self, text: str) -> tuple[str, ...]:
        """The entity ids the text names, in order of mention (``()`` when none)."""
        return self.resolve_with_notes(text)[0]

    def resolve_with_notes(self, text: str) -> tuple[tuple[str, ...], list[str]]:
        """``(entity ids, notes)``: the notes say which mention was read as what, and what was ignored."""
        found: list[str] = []
        notes: list[str] = []
        pending: list[Mention] = []
        if not self.entities:
            return (), [f"scope {m.text!r}: not resolved (no entity catalogue)" for m in self.mentions(text)
                        if m.anchored]
        for seq, anchored in self._sequences(text):
            used = [False] * len(seq)
            found += self._exact(seq, used)
            for m in self._runs(seq, used, anchored):
                hit = self._fuzzy(m, notes)
                if hit:
                    found.append(hit)
                elif m.anchored and not re.search(r"\d", m.text):
                    pending.append(m)
                elif m.kind or _identifier(m.text):  # "gpu-node-9": numbers are names, not meanings
                    raise self._unknown(m)
        if pending:
            found += self._semantic(pending, notes)
        return tuple(dict.fromkeys(found)), notes

    def _kind_filter(self, kind: str | None) -> list[_Row]:
        rows = self._entries()
        if kind:
            narrowed = [r for r in rows if r[1] == kind]
            return narrowed or rows
        return rows

    def _exact(self, seq: list[str], used: list[bool]) -> list[str]:
        """Longest word runs equal to a name, left to right; marks the words (and kind words) used."""
        out = []
        by_norm, by_compact = self._lookup()
        i = 0
        while i < len(seq):
            for j in range(min(len(seq), i + 8), i, -1):
                gram = " ".join(seq[i:j])
                norm, comp = _norm(gram), _compact(gram)
                hits = by_norm.get(norm) or by_compact.get(comp)
                if not hits or len(comp) < 2:
                    continue
                kind = next((KIND_WORDS[w] for w in (seq[i - 1] if i else "", seq[j] if j < len(seq) else "")
                             if w in KIND_WORDS), None)
                ids = list(dict.fromkeys(r[0] for r in hits if kind is None or r[1] == kind)) or \
                    list(dict.fromkeys(r[0] for r in hits))
                if len(ids) > 1:
                    example = f"the {gram} {ids[0].split(':')[0]}"
                    raise Ambiguous(f"{gram!r} names {len(ids)} entities", field="q", candidates=ids,
                                    fix=f"name the kind too (\"{example}\") or one of: {', '.join(ids)}")
                out.append(ids[0])
                for k in range(i, j):
                    used[k] = True
                for k in (i - 1, j):
                    if 0 <= k < len(seq) and seq[k] in KIND_WORDS:
                        used[k] = True
                i = j - 1
                break
            i += 1
        return out

    def _scores(self, m: Mention) -> dict[str, tuple[float, str]]:
        """``{entity: (score 0-100, the words of the mention that scored it)}``."""
        best: dict[str, tuple[float, str]] = {}
        n = len(m.words)
        grams = {" ".join(m.words[a:b]) for a in range(n) for b in range(a + 1, min(n, a + 5) + 1)}
        grams = {g for g in grams if len(_compact(g)) >= 3}
        if m.kind_word:
            grams |= {f"{m.text} {m.kind_word}", f"{m.kind_word} {m.text}"}
        for eid, _, norm, comp in self._kind_filter(m.kind):
            tokens = set(norm.split())
            numbers = set(re.findall(r"\d+", norm))
            for g in grams:
                if not set(re.findall(r"\d+", g)) <= numbers:
                    continue  # numbers are identifiers: gpu-node-9 is not a typo of gpu-node-1
                gc = _compact(g)
                ratio = fuzz.ratio(gc, comp)
                s = max(ratio, 0.5 * fuzz.token_set_ratio(_norm(g), norm) + 0.5 * ratio)
                if set(_norm(g).split()) <= tokens:  # every word of the mention is a word of the name
                    s = max(s, 85.0 + 15.0 * len(gc) / max(len(comp), 1))
                if s > best.get(eid, (-1.0, ""))[0]:
                    best[eid] = (s, g)
        return best

    def _group(self, m: Mention, close: list[str]) -> str | None:
        """The one candidate whose name the mention fits in and every other candidate's name
        contains ("llama" -> ``model:llama-3-70b``, not its pods ``vllm-llama-3-70b-<i>``)."""
        names = {e: f" {_norm(e.partition(':')[2])} " for e in close}
        words = set(_norm(m.text).split())
        fits = [e for e in close if words <= set(names[e].split())
                and all(names[e] in names[o] for o in close if o != e)]
        return fits[0] if len(fits) == 1 else None

    def _fuzzy(self, m: Mention, notes: list[str]) -> str | None:
        scores = self._scores(m)
        ranked = sorted(((e, sc) for e, (sc, _) in scores.items()), key=lambda kv: (-kv[1], kv[0]))
        if not ranked:
            return None
        top, best = ranked[0]
        short = len(top.partition(":")[2] or top) <= 4  # "rag" is one letter from "rage": ask for more
        if best < self.fuzzy_min + (10 if short else 0):
            return None
        close = [e for e, sc in ranked if sc >= best - self.margin]
        group = self._group(m, close) if len(close) > 1 else top
        if group is None:
            raise Ambiguous(f"{m.text!r} matches {len(close)} entities about equally", field="q",
                            fix="name one of: " + ", ".join(close[:8]), candidates=close[:8])
        notes.append(f"scope {scores[group][1]!r} read as {group} (close match)")
        return group

    def _semantic(self, pending: list[Mention], notes: list[str]) -> list[str]:
        if self.embedder is None:
            self.embedder = Embedder()  # MiniLM when installed; loaded by the first encode, not here
        emb = self.embedder
        if self._vectors is None:
            rows = self._entries()
            self._vectors = emb.encode([r[2] for r in rows])
        minimum = self.min_score if self.min_score is not None else (
            0.35 if emb.backend_used == "tfidf" else 0.55)
        qv = emb.encode([" ".join(_EXPAND.get(w, w) for w in m.words) for m in pending])
        sims = qv @ self._vectors.T
        rows = self._entries()
        kinds = {r[1] for r in rows}
        out = []
        for k, m in enumerate(pending):
            per: dict[str, float] = {}
            for i, r in enumerate(rows):
                if m.kind in kinds and r[1] != m.kind:
                    continue
                per[r[0]] = max(per.get(r[0], -1.0), float(sims[k, i]))
            ranked = sorted(per.items(), key=lambda kv: (-kv[1], kv[0]))
            if ranked and ranked[0][1] >= minimum:
                close = [e for e, s in ranked if s >= ranked[0][1] - self.semantic_margin]
                if len(close) > 1:
                    raise Ambiguous(f"{m.text!r} could mean {len(close)} entities", field="q",
                                    fix="name one of: " + ", ".join(close[:8]), candidates=close[:8])
                top, score = ranked[0]
                notes.append(f"scope {m.text!r} read as {top} (similar meaning, {score:.2f})")
                out.append(top)
            elif m.kind or _identifier(m.text):
                raise self._unknown(m)
            else:
                notes.append(f"{m.text!r} did not name a known entity; ignored")
        return out

    def _unknown(self, m: Mention) -> BadInput:
        rows = self._kind_filter(m.kind)
        scores: dict[str, float] = {}
        for eid, _, norm, _comp in rows:
            scores[eid] = max(scores.get(eid, 0.0), fuzz.WRatio(m.text, norm))
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        what = f"{m.kind} " if m.kind else "entity "
        names = ", ".join(e for e, _ in ranked)
        return BadInput(f"no {what}named {m.text!r}", field="q", fix=f"name a known one, e.g. {names}")
