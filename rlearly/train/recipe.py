"""The recipe interface: what the branch runner (rlearly.train.branch) needs of a post-training recipe.

A recipe trains one branch from a checkpoint; the runner owns the loop around it (learning-rate warmup, logging,
validation, stopping, saving, exact resume). Subclass RecipeInterface, implement `__init__`, `steps` and `step`,
and register it in rlearly.train (one `register(Recipe(...))` line; docs/EXTENDING.md).
"""
from __future__ import annotations

import abc


class RecipeInterface(abc.ABC):
    sections: dict[str, str] = {}  # optimizer name -> the config section of its learning rate and warmup
    samples: bool = True  # draws rollouts: the rl.backend sampling engine is checked before the branch starts
    optimizers: dict  # optimizer name -> torch optimizer, built by __init__ (saved and restored on resume)

    @abc.abstractmethod
    def __init__(self, cfg, model, tok, task, **options):
        """Build the recipe on `model` (already on its device), its optimizers included; `options` are its
        registration's (e.g. SFT's all_demos)."""

    @staticmethod
    @abc.abstractmethod
    def steps(cfg, n_demos: int = 0) -> int:
        """The branch's steps (at most: branch.patience may stop it earlier); `n_demos` as n_demos() gives."""

    @staticmethod
    def min_steps(cfg, n_demos: int = 0) -> int:
        """Steps before which the branch is not stopped for a plateau."""
        return 0

    def n_demos(self) -> int:
        """The demonstrations it trains on (SFT, or a mix's SFT half): epochs of SFT are counted in them."""
        return 0

    @abc.abstractmethod
    def step(self, step: int) -> dict:
        """One training step (step counts from 0); returns the stats to log."""
