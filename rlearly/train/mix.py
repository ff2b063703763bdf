"""Recipes that mix RL with SFT: the paper's parallel averaging, and two alternatives beyond the paper.

- parallel (paper §3.5): two AdamW optimizers with their own moments. Each step: snapshot theta;
  RL step from the snapshot -> theta_A; restore; SFT step from the snapshot -> theta_B;
  theta <- w * theta_A + (1 - w) * theta_B (w = 1/2 in the paper).
- combined: one optimizer on lambda * L_SFT + (1 - lambda) * L_RL, per RL mini-batch.
- interleaved: alternating blocks of `interleave_block` SFT steps then as many RL steps.
"""
from __future__ import annotations

import torch

from rlearly.config import Config
from rlearly.errors import ConfigError
from rlearly.train.common import make_adamw
from rlearly.train.rl import RLRecipe
from rlearly.train.sft import SFTRecipe


class ParallelRecipe:
    def __init__(self, cfg: Config, model, tok, task):
        self.model, self.w = model, cfg.branch.parallel_rl_weight
        self.rl = RLRecipe(cfg, model, tok, task)
        self.sft = SFTRecipe(cfg, model, tok, task, all_demos=False)
        self.optimizers = {**self.rl.optimizers, **self.sft.optimizers}

    def step(self, step: int) -> dict:
        params = list(self.model.parameters())
        snapshot = [p.detach().clone() for p in params]
        stats = self.rl.step(step)  # rollouts are drawn from the snapshot, then theta -> theta_A
        theta_a = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, s in zip(params, snapshot):
                p.copy_(s)
        stats.update(self.sft.step(step))  # theta -> theta_B, from the same snapshot
        with torch.no_grad():
            for p, a in zip(params, theta_a):
                p.mul_(1 - self.w).add_(a, alpha=self.w)
        return stats


class CombinedRecipe:
    def __init__(self, cfg: Config, model, tok, task):
        if cfg.rl.filter_groups:  # its SFT term trains on every RL mini-batch, signal or not
            raise ConfigError("rl.filter_groups does not apply to the combined recipe; set it false")
        if cfg.runtime.micro_batches > 1:
            raise ConfigError("runtime.micro_batches does not apply to the combined recipe (one loss of two batches); "
                              "set it to 1")
        self.cfg, self.model, self.lam = cfg, model, cfg.branch.combined_sft_weight
        self.rl = RLRecipe(cfg, model, tok, task)
        self.sft = SFTRecipe(cfg, model, tok, task, all_demos=False)
        rc = cfg.rl  # one optimizer, with the RL settings
        self.opt = make_adamw(model, rc.lr, rc.weight_decay, (rc.beta1, rc.beta2))
        self.optimizers = {"combined": self.opt}

    def step(self, step: int) -> dict:
        ro, adv, stats = self.rl.collect(step)
        sft_batch = self.sft.batch(step)
        self.model.train()
        for rows in self.rl.minibatches(step, self.rl.batch_rollouts):
            rl_loss, rl_stats = self.rl.loss(ro, adv, self.rl.local_rows(rows))
            sft_loss, sft_stats = self.sft.loss(sft_batch)
            loss = self.lam * sft_loss + (1 - self.lam) * rl_loss
            loss.backward()
            self.rl.dp.sum_grads(self.model)
            gnorm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.rl.grad_clip)
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
        return {**stats, **{f"rl_{k}": v for k, v in rl_stats.items()}, **sft_stats, "grad_norm": float(gnorm)}


class InterleavedRecipe:
    """Steps 0..k-1 SFT, k..2k-1 RL, ... until sft.steps SFT and rl.steps RL steps are spent."""

    def __init__(self, cfg: Config, model, tok, task):
        self.rl = RLRecipe(cfg, model, tok, task)
        self.sft = SFTRecipe(cfg, model, tok, task, all_demos=False)
        self.optimizers = {**self.rl.optimizers, **self.sft.optimizers}
        self.schedule = interleave_schedule(cfg.sft.steps, cfg.rl.steps, cfg.branch.interleave_block)

    def step(self, step: int) -> dict:
        kind, k = self.schedule[step]
        stats = self.sft.step(k) if kind == "sft" else self.rl.step(k)
        return {"phase": kind, **stats}


def interleave_schedule(n_sft: int, n_rl: int, block: int) -> list[tuple[str, int]]:
    """[(kind, index within kind)] alternating blocks; the leftover of the longer one comes last."""
    out, i, j = [], 0, 0
    while i < n_sft or j < n_rl:
        take = min(block, n_sft - i)
        out += [("sft", i + t) for t in range(take)]
        i += take
        take = min(block, n_rl - j)
        out += [("rl", j + t) for t in range(take)]
        j += take
    return out
