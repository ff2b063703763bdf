"""The `torch` sampling engine (rlearly.sampling): batched, seeded autoregressive sampling with a KV cache, token
ids in, token ids + log-probs out.

Reproducibility: every sample carries an integer `key` (e.g. derived from problem id and sample index).
Its random numbers, one uniform per generated position, come from its own Philox stream seeded with
(seed, key), and tokens are drawn by inverse-CDF from the (temperature, top-p) distribution. So a sample
depends on the model, its prompt, `seed` and `key` only, not on which other samples share its batch.

Prompts are left-padded to a common length; one prefill per distinct prompt is shared by its n samples.
"""
from __future__ import annotations

import numpy as np
import torch

from rlearly.lm.checkpoint import load_checkpoint
from rlearly.lm.model import KVCache, LlamaLM
from rlearly.lm.runtime import Runtime, place
from rlearly.sampling import Completion


def check() -> None:
    """Nothing to check: torch is always there."""


def load(path, device: str = "auto") -> LlamaLM:
    """A checkpoint's model on `device` (a runtime.device value), in fp32, for sampling."""
    return place(load_checkpoint(path)[0], device)


class RolloutSampler:
    """RL's rollouts from the live policy itself: its log-probs are pi_old exactly."""

    exact_logprobs = True

    def __init__(self, model, tok=None, rl=None):
        self.model = model

    def generate(self, prompts, **kw) -> list[Completion]:
        return generate(self.model, prompts, **kw)


def rollout_sampler(model, tok, rl) -> RolloutSampler:
    return RolloutSampler(model)


def sample_uniforms(seed: int, keys, length: int) -> np.ndarray:
    """(len(keys), length) uniforms in [0, 1), one Philox stream per key."""
    return np.stack([np.random.Generator(np.random.Philox(key=[seed, int(k)])).random(length) for k in keys])


COMPACT_BELOW = 0.5  # once at most this fraction of a batch's samples is still going, drop the stopped ones
NUCLEUS_CANDIDATES = 64  # top-p looks for its cut among this many most likely tokens before sorting a row


def nucleus_threshold(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """(B,) the smallest probability inside each row's nucleus: the most likely tokens whose mass before
    them is < top_p. Found among the top NUCLEUS_CANDIDATES tokens; only rows whose nucleus is wider are
    fully sorted."""
    K = min(NUCLEUS_CANDIDATES, probs.size(-1))
    vals = probs.topk(K, dim=-1).values  # (B, K), descending
    wide = vals.sum(-1) < top_p  # the cut may lie beyond the candidates
    if bool(wide.any()):
        full = probs[wide].sort(dim=-1, descending=True).values
        vals = torch.cat([vals, vals.new_zeros(vals.size(0), full.size(-1) - K)], -1)
        vals[wide] = full
    return nucleus_cut(vals, top_p)


def nucleus_cut(vals: torch.Tensor, top_p: float) -> torch.Tensor:
    """(B,) the smallest probability inside each row's nucleus, from its most likely probabilities vals (B, K),
    descending: the last whose mass before it is < top_p (the first always is)."""
    inside = (vals.cumsum(-1) - vals) < top_p
    return vals.gather(-1, inside.sum(-1, keepdim=True) - 1).squeeze(-1)


def pick_tokens(logits: torch.Tensor, u: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """Draw one token per row by inverse CDF. logits (B, V) fp32, u (B,) uniforms. temperature 0 = greedy.

    The CDF runs in vocabulary order over the allowed tokens, so no per-token sort is needed; top-p keeps
    every token at least as likely as the least likely token of the nucleus (ties at the cut all stay)."""
    if temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits if temperature == 1 else logits / temperature, dim=-1)  # x / 1 is x
    if top_p < 1.0:
        probs = probs * (probs >= nucleus_threshold(probs, top_p).unsqueeze(-1))
    return inverse_cdf(probs, u)


def inverse_cdf(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """(B,) one token per row of probs (B, V) (unnormalized: tokens outside the nucleus at 0) for uniforms u (B,),
    the CDF running in vocabulary order."""
    cum = probs.cumsum(-1)
    idx = torch.searchsorted(cum, u.unsqueeze(-1) * cum[:, -1:], right=True).clamp(max=cum.size(-1) - 1)
    return idx.squeeze(-1)


@torch.no_grad()
def generate(model: LlamaLM, prompts: list[list[int]], *, n: int = 1, max_new_tokens: int = 64,
             temperature: float = 1.0, top_p: float = 1.0, stop_ids=(), seed: int = 0,
             keys: list[int] | None = None, pad_id: int = 0, use_cache: bool = True,
             dtype: str | None = None) -> list[Completion]:
    """Sample n completions for each prompt. Returns len(prompts) * n completions, prompt-major.

    `keys` (one per completion) fix each sample's random stream; default: its index in the output.
    `use_cache=False` recomputes the whole sequence every step (the slow reference).
    `dtype` "bf16": the forward passes under bf16 autocast (on the CPU attention stays fp32 over an fp32 KV cache:
    rlearly.lm.model.attention_precision); token picking and log-probs stay fp32. None: bf16 inside a bf16 autocast
    context (a branch's rollouts under runtime.dtype bf16), else fp32, bit for bit as before bf16 sampling existed.
    """
    model.eval()
    device = model.rope_cos.device
    if dtype is None:
        bf16 = torch.is_autocast_enabled(device.type) and torch.get_autocast_dtype(device.type) == torch.bfloat16
        dtype = "bf16" if bf16 else "fp32"
    if dtype not in ("fp32", "bf16"):
        raise ValueError(f"sampling dtype {dtype!r}: known fp32, bf16")
    with Runtime(device, dtype).autocast():  # bf16 autocast on the model's device, or nothing
        return _generate(model, prompts, n, max_new_tokens, temperature, top_p, stop_ids, seed, keys, pad_id,
                         use_cache)


def left_pad(prompts: list[list[int]], pad_id: int, room: int, device) -> tuple[torch.Tensor, ...]:
    """Prompts left-padded to their longest length P, so every one ends at column P-1: ids (Bp, P), real (Bp, P + room)
    True on real tokens (room: the positions that follow), pad (Bp,) each prompt's padding."""
    P = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), P), pad_id, dtype=torch.long, device=device)
    real = torch.zeros(len(prompts), P + room, dtype=torch.bool, device=device)
    for i, p in enumerate(prompts):
        ids[i, P - len(p):] = torch.tensor(p, dtype=torch.long)
        real[i, P - len(p):] = True
    return ids, real, (~real[:, :P]).sum(1)


def prefill(model: LlamaLM, ids, real, pad, n: int, room: int) -> tuple[KVCache, torch.Tensor]:
    """Run each left-padded prompt (left_pad's ids, real over its P columns, pad) once; its n samples share its
    keys/values (KVCache.share_prefix) with `room` positions of their own. Returns (cache, last-position logits
    (Bp * n, V) fp32)."""
    P = ids.shape[1]
    cache = KVCache.empty(model.cfg, len(ids), P, device=ids.device)
    cache.key_mask = real
    pos = (torch.arange(P, device=ids.device) - pad[:, None]).clamp(min=0)
    logits = model(ids, cache=cache, positions=pos)[:, -1].float()
    return cache.share_prefix(n, room), logits.repeat_interleave(n, 0)


def _generate(model, prompts, n, max_new_tokens, temperature, top_p, stop_ids, seed, keys, pad_id, use_cache):
    total = len(prompts) * n
    keys = list(range(total)) if keys is None else list(keys)
    if len(keys) != total:
        raise ValueError(f"need {total} sample keys, got {len(keys)}")
    P = max(len(p) for p in prompts)
    if P + max_new_tokens > model.cfg.max_seq_len:
        raise ValueError(f"prompt ({P}) + max_new_tokens ({max_new_tokens}) exceeds model.max_seq_len={model.cfg.max_seq_len}")
    device = model.rope_cos.device
    ids, real, pad = left_pad(prompts, pad_id, max_new_tokens, device)
    u = torch.from_numpy(sample_uniforms(seed, keys, max_new_tokens)).float().to(device)  # (B, T_new)
    stops = torch.tensor(list(stop_ids) or [-1], device=device)

    if use_cache:  # prefill each prompt once; its n samples share those keys/values
        cache, logits = prefill(model, ids, real[:, :P], pad, n, max_new_tokens)
    else:
        seq, seq_real = ids.repeat_interleave(n, 0), real.repeat_interleave(n, 0)
    pad = pad.repeat_interleave(n)
    out = torch.full((total, max_new_tokens), pad_id, dtype=torch.long, device=device)
    lps = torch.zeros(total, max_new_tokens, device=device)
    lengths = torch.full((total,), max_new_tokens, dtype=torch.long, device=device)
    finished = torch.zeros(total, dtype=torch.bool, device=device)
    live = torch.arange(total, device=device)  # the samples still in the batch (row i is sample live[i])
    done = torch.zeros(total, dtype=torch.bool, device=device)  # per live row
    for t in range(max_new_tokens):
        if not use_cache:
            logits = _full_forward_last(model, seq, seq_real[:, :seq.size(1)], pad)
        tok = pick_tokens(logits, u[live, t], temperature, top_p)
        lp = torch.log_softmax(logits, -1).gather(-1, tok[:, None]).squeeze(-1)
        tok = torch.where(done, torch.full_like(tok, pad_id), tok)
        out[live, t], lps[live, t] = tok, torch.where(done, torch.zeros_like(lp), lp)
        hit = ~done & torch.isin(tok, stops)
        lengths[live[hit]], finished[live[hit]] = t + 1, True
        done |= hit
        if bool(done.all()) or t == max_new_tokens - 1:
            break
        if use_cache:
            if int((~done).sum()) <= COMPACT_BELOW * len(live):  # drop stopped samples from the batch
                keep = (~done).nonzero().squeeze(1)
                cache, live, done, tok, pad = cache.select(keep), live[keep], done[keep], tok[keep], pad[keep]
            pos = (P + t - pad)[:, None]
            logits = model(tok[:, None], cache=cache, positions=pos)[:, -1].float()
        else:
            seq = torch.cat([seq, tok[:, None]], 1)
    out, lps, lengths, finished = out.tolist(), lps.tolist(), lengths.tolist(), finished.tolist()
    return [Completion(out[i][:lengths[i]], lps[i][:lengths[i]], finished[i]) for i in range(total)]


def _full_forward_last(model: LlamaLM, seq, real, pad):
    """No-cache reference: rerun the whole left-padded sequence; return last-position logits (B, V)."""
    B, L = seq.shape
    pos = (torch.arange(L, device=seq.device) - pad[:, None]).clamp(min=0)
    cache = KVCache.empty(model.cfg, B, L, device=seq.device)  # scratch space only, for the padding mask
    cache.key_mask = real
    return model(seq, cache=cache, positions=pos)[:, -1].float()
