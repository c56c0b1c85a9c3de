"""The vLLM replicas' latent model, vectorised over ``(pods, steps)``.

Per step and pod: arrival rate, prompt and generation token mixtures and GPU slowdowns go in;
TPOT, TTFT, queue time, e2e, running/waiting requests, KV-cache usage, preemptions and
finish-reason shares come out. The model:

* prefill time = prompt tokens / prefill speed (slower with a fuller batch); TPOT = base x (1 + 0.3 running/max_num_seqs)
  x GPU slowdown; e2e = TTFT + generated tokens x TPOT; running = rate x e2e (Little);
* KV demand = running x (prompt + generated/2) tokens / KV capacity; usage saturates near 1;
* above ~95 % demand the scheduler preempts (RECOMPUTE), requests wait (queue time relaxes
  towards a level growing with the overload, time constant 45 s), TTFT and TPOT inflate and
  requests waiting too long are aborted by their clients.

A varied fleet's model servers are provisioned for its load level: KV capacity and
``max_num_seqs`` scale with ``Latent.load_scale`` (fp8 KV cache, a larger
``gpu_memory_utilization``), so the KV and scheduler headroom, and with them what each LLM fault
shows, stay as calibrated; absolute rates, running and waiting requests follow the load.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from rca.sim.latent import Comp, Latent, LlmState, mix_mean
from rca.sim.topology import MODELS
from rca.sim.workload import STEP, ar1, rng_for

__all__ = ["BASE_ABORT_SHARE", "BASE_LENGTH_SHARE", "base_llm", "finish_shares", "solve_llm"]

PROMPT_SIGMA = 0.6
GEN_SIGMA = 0.5
BASE_LENGTH_SHARE = 0.06
BASE_ABORT_SHARE = 0.01


def base_llm(lat: Latent) -> LlmState:
    rng = rng_for(lat.seed, "llm")
    pods = lat.fleet.vllm_pods
    specs = [next(m for m in MODELS if m.name == p.model) for p in pods]
    shape = (len(pods), lat.n)
    share = np.array([[m.share / m.replicas] for m in specs])
    imbalance = 1 + 0.03 * lat.noise * rng.standard_normal((len(pods), 1))
    lam = lat.load[None, :] * share * imbalance * np.exp(ar1(rng, shape, 0.03 * lat.noise, 4))
    pmed = np.array([[m.prompt_median] for m in specs]) * np.exp(ar1(rng, shape, 0.04 * lat.noise, 20))
    gmed = np.array([[m.gen_median] for m in specs]) * np.exp(ar1(rng, shape, 0.03 * lat.noise, 20))
    max_len = np.array([[m.max_model_len] for m in specs], dtype=float)
    max_tok = np.array([[m.max_tokens] for m in specs], dtype=float)
    ones = np.ones(shape)
    prompt = [Comp(ones.copy(), pmed, PROMPT_SIGMA, cap=max_len)]
    gen = [Comp(ones * (1 - BASE_LENGTH_SHARE), gmed, GEN_SIGMA, "stop", cap=max_tok),
           Comp(ones * BASE_LENGTH_SHARE, max_tok * ones, 0.005, "length")]
    return LlmState(pods, specs, lam, np.ones(shape, bool), prompt, gen, ones.copy(), ones.copy(),
                    np.zeros(shape))


def _ema(x: np.ndarray, a: float) -> np.ndarray:
    y, _ = lfilter([1 - a], [1.0, -a], x, axis=-1, zi=a * x[..., :1])
    return y


def solve_llm(lat: Latent) -> None:
    """Fill ``lat.llm.out`` and ``lat.llm.comps`` from the inputs."""
    s = lat.llm
    assert s is not None
    rng = rng_for(lat.seed, "llm-solve")
    lam = s.lam * (1 - s.fail) * s.alive
    p_mean, g_mean = mix_mean(s.prompt), mix_mean(s.gen)
    speed, tpot0 = s.col("prefill_tok_s"), s.col("tpot_s")
    max_seqs, cap = s.col("max_num_seqs") * lat.load_scale, s.col("kv_capacity_tokens") * lat.load_scale
    over = np.zeros_like(lam)
    running = lam * (p_mean / speed + g_mean * tpot0)
    for _ in range(6):
        batch = np.minimum(running, max_seqs) / max_seqs
        tpot = tpot0 * (1 + 0.3 * batch) * s.slow_decode * (1 + 0.5 * over)
        prefill_slow = s.slow_prefill * (1 + 0.5 * batch) * (1 + over)   # chunked prefill shares steps
        prefill = p_mean / speed * prefill_slow
        running = lam * (0.02 + prefill + g_mean * tpot)
        rho = running * (p_mean + g_mean / 2) / cap
        over = np.clip((rho - 0.95) / 0.35, 0, 1)
    shape = lam.shape
    tpot = tpot * np.exp(ar1(rng, shape, 0.02 * lat.noise, 6))
    kv = rho * (1 + (rho / 0.993) ** 10) ** -0.1
    kv = np.clip(kv * np.exp(ar1(rng, shape, 0.03 * lat.noise, 3)), 0, 1)
    kv = np.where(rho > 0.97, np.clip(0.985 + 0.01 * rng.standard_normal(shape), 0.96, 1.0), kv)
    queue = _ema(0.008 + 25 * over ** 1.5, float(np.exp(-STEP / 45.0)))
    queue = queue * np.exp(ar1(rng, shape, 0.05 * lat.noise, 3))
    capacity = np.minimum(1.0, 0.99 / np.maximum(rho, 1e-9))
    run_obs = np.minimum(running * capacity, max_seqs)
    waiting = lam * queue + np.maximum(running - run_obs, 0)
    abort = BASE_ABORT_SHARE + 0.15 * np.clip((queue - 8) / 30, 0, 1)
    ttft_base = queue + 0.015
    ttft_mean = ttft_base + prefill
    e2e_mean = ttft_mean + g_mean * tpot
    s.out.update(lam_eff=lam, tpot=tpot, queue=queue, ttft=ttft_mean, e2e=e2e_mean, running=run_obs,
                 waiting=waiting, kv=kv, rho=rho, over=over, preempt=lam * 0.6 * over ** 1.3,
                 abort=abort, prompt_mean=p_mean, gen_mean=g_mean, prefill_slow=prefill_slow)
    s.comps["ttft"] = [Comp(c.weight, ttft_base + c.median / speed * prefill_slow, 0.4) for c in s.prompt]
    s.comps["itl"] = [Comp(1 - 0.03 * over, tpot, 0.25), Comp(0.03 * over + 1e-9, tpot * 20, 0.6)]
    s.comps["e2e"] = [Comp(c.weight, ttft_mean + c.median * tpot, 0.45 if c.tag == "stop" else 0.12)
                      for c in s.gen]
    s.comps["queue"] = [Comp(np.ones(shape), queue + 0.003, 0.9)]
    s.comps["prompt"] = s.prompt
    s.comps["gen"] = s.gen


def finish_shares(s: LlmState) -> np.ndarray:
    """``(3, P, T)`` shares of finished requests by reason: stop, length, abort."""
    total = sum(c.weight for c in s.gen)
    length = sum(c.weight for c in s.gen if c.tag == "length") / total
    abort = s.out["abort"]
    return np.stack([(1 - length) * (1 - abort), length * (1 - abort), abort])
