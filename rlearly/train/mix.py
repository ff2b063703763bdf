"""Recipes that mix RL with SFT: the paper's parallel averaging, and two alternatives beyond the paper.

- parallel (paper §3.5): two AdamW optimizers with their own moments. Each step: snapshot theta;
  RL step from the snapshot -> theta_A; restore; SFT step from the snapshot -> theta_B;
  theta <- w * theta_A + (1 - w) * theta_B (w = 1/2 in the paper).
- combined: RL's update on lambda * L_SFT + (1 - lambda) * L_RL, per RL mini-batch (one optimizer).
- interleaved: alternating blocks of `interleave_block` SFT steps then as many RL steps.
"""
from __future__ import annotations

import torch

from rlearly.config import Config
from rlearly.errors import ConfigError
from rlearly.train.recipe import RecipeInterface
from rlearly.train.rl import RLRecipe
from rlearly.train.sft import SFTRecipe, sft_steps


class ParallelRecipe(RecipeInterface):
    sections = {"rl": "rl", "sft": "sft"}

    @staticmethod
    def steps(cfg: Config, n_demos: int) -> int:
        """RL's steps, and with sft.epochs at least SFT's, so that its SFT half sees as many demonstrations."""
        return max(cfg.rl.steps, sft_steps(cfg, n_demos)) if cfg.sft.epochs else cfg.rl.steps

    @staticmethod
    def min_steps(cfg: Config, n_demos: int) -> int:
        """No plateau stop before its SFT half has seen SFT's demonstrations."""
        return sft_steps(cfg, n_demos) if cfg.sft.epochs else 0

    def __init__(self, cfg: Config, model, tok, task):
        self.model, self.w = model, cfg.branch.parallel_rl_weight
        self.rl = RLRecipe(cfg, model, tok, task)
        self.sft = SFTRecipe(cfg, model, tok, task, all_demos=False)
        self.optimizers = {**self.rl.optimizers, **self.sft.optimizers}

    def n_demos(self) -> int:
        return self.sft.n_demos()

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


class CombinedRecipe(RecipeInterface):
    """RL's update (its optimizer, settings and mini-batches) with one more loss term: each mini-batch's loss is
    lambda * L_SFT(this step's SFT batch) + (1 - lambda) * L_GRPO."""

    sections = {"combined": "rl"}
    steps = staticmethod(RLRecipe.steps)

    def __init__(self, cfg: Config, model, tok, task):
        if cfg.rl.filter_groups:  # its SFT term trains on every RL mini-batch, signal or not
            raise ConfigError("rl.filter_groups does not apply to the combined recipe; set it false")
        if cfg.runtime.micro_batches > 1:
            raise ConfigError("runtime.micro_batches does not apply to the combined recipe (one loss of two batches); "
                              "set it to 1")
        self.lam = cfg.branch.combined_sft_weight
        self.rl = RLRecipe(cfg, model, tok, task)
        self.sft = SFTRecipe(cfg, model, tok, task, all_demos=False)
        self.optimizers = {"combined": self.rl.opt}  # RL's optimizer, under the name its saved states carry

    def n_demos(self) -> int:
        return self.sft.n_demos()

    def step(self, step: int) -> dict:
        batch = self.sft.batch(step)
        return self.rl.step(step, extra=(self.lam, lambda: self.sft.loss(batch)))


class InterleavedRecipe(RecipeInterface):
    """Steps 0..k-1 SFT, k..2k-1 RL, ... until sft.steps SFT and rl.steps RL steps are spent."""

    sections = {"rl": "rl", "sft": "sft"}

    @staticmethod
    def steps(cfg: Config, n_demos: int = 0) -> int:
        return cfg.sft.steps + cfg.rl.steps

    def __init__(self, cfg: Config, model, tok, task):
        self.rl = RLRecipe(cfg, model, tok, task)
        self.sft = SFTRecipe(cfg, model, tok, task, all_demos=False)
        self.optimizers = {**self.rl.optimizers, **self.sft.optimizers}
        self.schedule = interleave_schedule(cfg.sft.steps, cfg.rl.steps, cfg.branch.interleave_block)

    def n_demos(self) -> int:
        return self.sft.n_demos()

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
