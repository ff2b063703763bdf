"""Loss math for SFT and GRPO as pure tensor functions: tensors in, (loss, stats) out.

Owns: token log-probs and entropy from logits, masked NLL, GRPO group advantages, the clipped (and
dual-clipped) policy loss, KL estimators, and the loss aggregation modes. Nothing here touches a model,
an optimizer or a config object. Shapes: B sequences, T response positions, V vocabulary; `mask` (B, T) is 1
for response tokens that count. The GRPO settings follow VeRL as the paper ran it (docs/PAPER.md §3.1).
"""
from __future__ import annotations

import torch
import torch.utils.checkpoint
from torch import Tensor

from rlearly.config import AGG_MODES

KL_ESTIMATORS = ("k1", "k2", "k3")


def token_logprobs(logits: Tensor, targets: Tensor) -> Tensor:
    """log π(target | prefix) per position, computed in fp32 (a bf16 log-softmax loses ~2 digits).
    logits (B, T, V), targets (B, T) → (B, T) fp32."""
    logits = logits.float()
    picked = logits.gather(-1, targets.long().unsqueeze(-1)).squeeze(-1)  # (B, T)
    return picked - torch.logsumexp(logits, dim=-1)  # log_softmax gathered, without a (B,T,V) copy


def chunked_logprobs(hidden: Tensor, head: Tensor, targets: Tensor, chunk: int) -> tuple[Tensor, Tensor]:
    """log π(target) (M,) and the entropy of π (M,, no gradient) at M positions from their final hidden states
    hidden (M, d) and the LM head's weight head (V, d), `chunk` positions at a time: each chunk's (chunk, V)
    logits are recomputed in the backward pass instead of kept, so no (M, V) tensor is held (the paper's
    vocabulary is 100k). Equal to token_logprobs and token_entropy on the whole logits, to float tolerance."""
    lps, ents = [], []
    for h, t in zip(hidden.split(chunk), targets.split(chunk)):
        lp, ent = torch.utils.checkpoint.checkpoint(_chunk_logprobs, h, head, t, use_reentrant=False)
        lps.append(lp)
        ents.append(ent)
    if not lps:
        return hidden.new_zeros(0), hidden.new_zeros(0)
    return torch.cat(lps), torch.cat(ents)


def _chunk_logprobs(h: Tensor, head: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    logits = torch.nn.functional.linear(h, head).float()
    return token_logprobs(logits, t), token_entropy(logits)


@torch.no_grad()
def token_entropy(logits: Tensor) -> Tensor:
    """H(π(·|prefix)) in nats per position, fp32, no gradient: logits (..., V) → (...)."""
    return torch.special.entr(torch.softmax(logits.float(), dim=-1)).sum(-1)  # entr(0) = 0: −inf logits give no NaN


def scatter_masked(values: Tensor, mask: Tensor) -> Tensor:
    """Place (M,) values at the M nonzero positions of mask (B, T), row-major; 0 elsewhere (differentiable)."""
    return torch.zeros(mask.shape, dtype=values.dtype, device=values.device).masked_scatter(mask.bool(), values)


def aggregate(per_token: Tensor, mask: Tensor, agg: str = "token-mean", max_len: int | None = None) -> Tensor:
    """Reduce a (B, T) per-token loss to a scalar, with VeRL's `loss_agg_mode` names.

    - "token-mean" (paper default): Σ_{b,t} m·x / Σ m — every token in the batch weighs the same.
    - "seq-mean-token-mean" (original GRPO): (1/B) Σ_b [Σ_t m·x / Σ_t m] — every sequence weighs the same.
    - "seq-mean-token-sum-norm" (Dr.GRPO): (1/B) Σ_b [Σ_t m·x / max_len], max_len a constant (default T,
      the mask width). This is current VeRL's form; older VeRL divided the batch sum by T without 1/B.
    - "token-sum": Σ m·x (VeRL's SFT default in the paper's parallel mode).
    Empty masks give no NaN: a sequence without tokens contributes 0 (it still counts in 1/B) and an
    all-empty mask gives 0.
    """
    m = mask.to(per_token.dtype)  # (B, T)
    # where, not multiply: padding may hold inf/NaN (e.g. −inf logprobs) and 0·inf = NaN
    masked = torch.where(m > 0, per_token, torch.zeros_like(per_token))  # (B, T)
    if agg == "token-mean":
        return masked.sum() / m.sum().clamp(min=1.0)
    if agg == "seq-mean-token-mean":
        seq = masked.sum(-1) / m.sum(-1).clamp(min=1.0)  # (B,)
        return seq.mean() if seq.numel() else masked.sum()
    if agg == "seq-mean-token-sum-norm":
        norm = float(max_len if max_len is not None else per_token.shape[-1])
        seq = masked.sum(-1) / max(norm, 1.0)  # (B,)
        return seq.mean() if seq.numel() else masked.sum()
    if agg == "token-sum":
        return masked.sum()
    raise ValueError(f"unknown loss aggregation {agg!r}; known: {', '.join(AGG_MODES)}")


def _masked_mean(x: Tensor, mask: Tensor) -> float:
    """Token mean of x (B, T) over the mask, for logging; 0.0 when the mask is empty."""
    return float(aggregate(x.float().expand(mask.shape), mask, "token-mean"))


def masked_nll(logprobs: Tensor, mask: Tensor, agg: str = "token-mean", max_len: int | None = None):
    """SFT loss: next-token NLL on response tokens only, −aggregate(logprobs), token-mean by default
    (the paper's pure-SFT scripts; docs/PAPER.md §3.2). logprobs (B, T) from `token_logprobs`."""
    loss = aggregate(-logprobs, mask, agg, max_len)
    n_tok = float(mask.to(torch.float32).sum())
    return loss, {"nll": float(loss.detach()), "n_tokens": n_tok}


@torch.no_grad()
def group_advantages(rewards: Tensor, group_size: int, normalize_std: bool = True, eps: float = 1e-6):
    """GRPO outcome advantage per rollout (no critic), VeRL `grpo` estimator.

    rewards (N,) with N = n_groups·group_size, each prompt's G rollouts contiguous.
    normalize_std=True (paper, `norm_adv_by_std_in_grpo=True`): Â = (r − mean_g) / (std_g + eps);
    False (Dr.GRPO): Â = r − mean_g. std_g is the UNBIASED sample std (divides by G−1, torch.std
    default), as in VeRL and TRL. Groups whose rewards are all equal get exactly 0 (no signal; also
    avoids 0/eps noise and the NaN std of G = 1). Returns (adv (N,), stats).
    """
    if group_size < 1 or rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}; "
                         "pass N = n_prompts * group_size rewards with each group contiguous")
    r = rewards.float().reshape(-1, group_size)  # (n_groups, G)
    zero_var = (r == r[:, :1]).all(dim=1, keepdim=True)  # (n_groups, 1)
    adv = r - r.mean(dim=1, keepdim=True)
    if normalize_std and group_size > 1:
        adv = adv / (r.std(dim=1, keepdim=True) + eps)
    adv = torch.where(zero_var, torch.zeros_like(adv), adv).reshape(-1)  # (N,)
    flat = rewards.float()
    stats = {"frac_zero_std": float(zero_var.float().mean()),
             "reward_mean": float(flat.mean()),
             "reward_std": float(flat.std()) if flat.numel() > 1 else 0.0}
    return adv, stats


def policy_loss(logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor,
                clip_low: float = 0.2, clip_high: float = 0.2, dual_clip: float | None = None,
                agg: str = "token-mean", max_len: int | None = None):
    """PPO/GRPO clipped surrogate, VeRL `vanilla` policy loss. The paper's setting (docs/PAPER.md §3.1) is
    clip_low = clip_high = 0.2, dual_clip=3.0 (pass it: the default here is off), agg="token-mean".

    ρ_t = exp(logp − old_logp) (log-ratio clamped to ±20 like VeRL, so exp cannot overflow);
    per-token loss ℓ = −min(ρ·A, clip(ρ, 1−clip_low, 1+clip_high)·A) = max(−ρA, −clip(ρ)A).
    Dual clip (VeRL's, Ye et al. 2020), for A < 0 only: ℓ ← min(ℓ, −c·A), so a huge ratio costs at
    most c·|A|; dual_clip=None disables it. Then `aggregate(ℓ, mask, agg, max_len)`.
    advantages: (B,) broadcast to every token of its sequence, or (B, T).
    stats: clip_frac (masked tokens where the clipped term wins, i.e. ρ > 1+ε_h with A > 0 or ρ < 1−ε_l
    with A < 0), dual_clip_frac, ratio_mean, approx_kl = masked mean of old − new logprob (VeRL ppo_kl).
    """
    adv = advantages.unsqueeze(-1) if advantages.dim() == 1 else advantages  # (B, 1) or (B, T)
    log_ratio = (logprobs - old_logprobs).clamp(-20.0, 20.0)  # (B, T)
    ratio = log_ratio.exp()
    unclipped = -adv * ratio  # (B, T)
    clipped = -adv * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    per_token = torch.maximum(unclipped, clipped)  # = −min(ρA, clip(ρ)A)
    dual_active = torch.zeros_like(per_token, dtype=torch.bool)
    if dual_clip is not None:
        if dual_clip <= 1.0:
            raise ValueError(f"dual_clip must be > 1 (the paper uses 3.0), got {dual_clip}")
        bound = -adv * dual_clip  # c·|A| where A < 0
        dual_active = (adv < 0) & (per_token > bound)
        per_token = torch.where(adv < 0, torch.minimum(per_token, bound), per_token)
    loss = aggregate(per_token, mask, agg, max_len)

    with torch.no_grad():
        stats = {"clip_frac": _masked_mean(clipped > unclipped, mask),
                 "dual_clip_frac": _masked_mean(dual_active, mask),
                 "ratio_mean": _masked_mean(ratio, mask), "approx_kl": _masked_mean(-log_ratio, mask)}
    return loss, stats


def kl_penalty(logprobs: Tensor, ref_logprobs: Tensor, mask: Tensor, estimator: str = "k3",
               agg: str = "token-mean", max_len: int | None = None):
    """KL(π_θ ‖ π_ref) from tokens sampled by π_θ, aggregated like the policy loss.

    Per token, with d = logp − ref_logp:
    - "k1" (VeRL "kl"): d — unbiased, high variance, can be negative.
    - "k2" (VeRL "mse"): ½·d².
    - "k3" (VeRL "low_var_kl", the paper's, β = 0.001): e^{−d} + d − 1 ≥ 0, 0 iff d = 0; clamped to
      [−10, 10] as VeRL does (and d to ±20 before exp).
    """
    d = logprobs - ref_logprobs  # (B, T)
    if estimator == "k1":
        per_token = d
    elif estimator == "k2":
        per_token = 0.5 * d.square()
    elif estimator == "k3":
        nd = (-d).clamp(-20.0, 20.0)  # ref − logp
        per_token = (nd.exp() - nd - 1.0).clamp(-10.0, 10.0)
    else:
        raise ValueError(f"unknown KL estimator {estimator!r}; known: {', '.join(KL_ESTIMATORS)}")
    loss = aggregate(per_token, mask, agg, max_len)
    return loss, {"kl": float(loss.detach())}


def grpo_loss(logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor,
              ref_logprobs: Tensor | None = None, kl_coef: float = 0.0, *, clip_low: float = 0.2,
              clip_high: float = 0.2, dual_clip: float | None = None, kl_estimator: str = "k3",
              agg: str = "token-mean", max_len: int | None = None):
    """The paper's GRPO actor loss (docs/PAPER.md §3.1): policy_loss + kl_coef·kl_penalty, both aggregated
    with the same `agg` (VeRL's `use_kl_loss`, no KL in the reward). The KL term is computed (and
    logged) whenever ref_logprobs is given.
    stats: pg_loss, pg_* (policy_loss's stats), kl (before kl_coef) when ref_logprobs is given, loss."""
    pg, pg_stats = policy_loss(logprobs, old_logprobs, advantages, mask, clip_low, clip_high,
                               dual_clip, agg, max_len)
    stats = {"pg_loss": float(pg.detach()), **{"pg_" + k: v for k, v in pg_stats.items()}}
    loss = pg
    if ref_logprobs is None:
        if kl_coef:
            raise ValueError(f"kl_coef={kl_coef} needs ref_logprobs from the frozen start checkpoint")
    else:
        kl, kl_stats = kl_penalty(logprobs, ref_logprobs, mask, kl_estimator, agg, max_len)
        loss = pg + kl_coef * kl
        stats.update(kl_stats)  # "kl": the aggregated estimate, before kl_coef
    stats["loss"] = float(loss.detach())
    return loss, stats
