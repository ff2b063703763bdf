"""SFT and SFT-Gold (paper §3.2–3.3): next-token NLL on response tokens only.

`sft` trains on one demonstration per problem, `sft_gold` on every known demonstration. An example is
BOS + prompt + demonstration + EOS; only the demonstration and EOS are scored. Batch `step` is a pure
function of (seed, step): examples are visited in a fresh seeded permutation every epoch. Under torchrun
each rank takes its examples of every batch, its loss weighted by its share of the batch's tokens (or rows).
"""
from __future__ import annotations

import math

import torch

from rlearly.config import Config
from rlearly.lm.losses import masked_nll
from rlearly.lm.runtime import device_of, to_device
from rlearly.lm.tokenizer import Tokenizer
from rlearly.tasks import Task, demonstrations
from rlearly.train.common import epoch_batch, make_adamw
from rlearly.train.dist import data_parallel, loss_share
from rlearly.train.recipe import RecipeInterface


def collate(pairs: list[tuple[list[int], list[int]]], pad_id: int):
    """(prompt ids, response ids) pairs -> x, y (B, L-1) right-padded, and mask (B, L-1) of the targets
    that are response tokens. Right padding keeps positions 0.. so a plain causal forward is exact."""
    L = max(len(p) + len(r) for p, r in pairs)
    seq = torch.full((len(pairs), L), pad_id, dtype=torch.long)
    mask = torch.zeros(len(pairs), L - 1)
    for i, (p, r) in enumerate(pairs):
        seq[i, :len(p) + len(r)] = torch.tensor(p + r)
        mask[i, len(p) - 1:len(p) + len(r) - 1] = 1.0  # target j is token j+1: response starts at len(p)
    return seq[:, :-1], seq[:, 1:], mask


def sft_steps(cfg: Config, n_demos: int) -> int:
    """SFT's steps: sft.epochs over `n_demos` demonstrations when set, else sft.steps."""
    return math.ceil(cfg.sft.epochs * n_demos / cfg.sft.batch_size) if cfg.sft.epochs else cfg.sft.steps


class SFTRecipe(RecipeInterface):
    """One optimizer step of SFT per call; `loss(step)` alone serves the combined recipe."""

    sections = {"sft": "sft"}  # optimizer -> the config section of its learning rate and warmup
    samples = False  # no rollouts (no sampling engine is needed)
    steps = staticmethod(sft_steps)

    def __init__(self, cfg: Config, model, tok: Tokenizer, task: Task, all_demos: bool):
        self.cfg, self.model, self.tok = cfg, model, tok
        sc = cfg.sft
        problems = task.training_problems(sc.split)
        if sc.demo_merge > 0:
            problems = task.teacher_demos(problems, sc.demo_merge)
        self.examples = [(tok.encode(task.prompt(p)), tok.encode(demo, bos=False) + [tok.eos_id])
                         for p, demo in demonstrations(problems, "all" if all_demos else "one")]
        self.opt = make_adamw(model, sc.lr, sc.weight_decay, (sc.beta1, sc.beta2))
        self.optimizers = {"sft": self.opt}
        self.dp = data_parallel()
        self.dp.require(sc.batch_size, "sft.batch_size")

    def n_demos(self) -> int:
        return len(self.examples)

    def batch(self, step: int):
        idx = epoch_batch(self.cfg.seed, step, self.cfg.sft.batch_size, len(self.examples))
        idx = idx[self.dp.shard(len(idx))]  # this rank's examples (all of them in one process)
        return to_device(collate([self.examples[i] for i in idx], self.tok.pad_id), device_of(self.model))

    def loss(self, batch, totals: tuple[float, float] | None = None) -> tuple[torch.Tensor, dict]:
        """The SFT loss of `batch`. With `totals` (rows, tokens of the whole step's batch, every rank and
        micro-batch counted), `batch` is one part of it: the loss returned is its share, and `sft_loss` that
        share on this process. Data-parallel without `totals`: this rank's share of the batch's loss."""
        x, y, mask = batch
        lp, _ = self.model.masked_logprobs(x, y, mask, chunk=self.cfg.runtime.logit_chunk)  # (B, L-1)
        loss, stats = masked_nll(lp, mask, agg=self.cfg.sft.loss_agg)
        if totals is None and not self.dp.active:
            return loss, {"sft_loss": loss.item(), "sft_tokens": stats["n_tokens"]}
        # this part's share of the batch's loss, by the batch's token (row) counts
        rows, tokens = totals if totals is not None else self.dp.all_sum(len(x), stats["n_tokens"])
        loss = loss * loss_share(self.cfg.sft.loss_agg, len(x), rows, stats["n_tokens"], tokens)
        part = loss.item() if totals is not None else self.dp.all_sum(loss)[0]
        return loss, {"sft_loss": part, "sft_tokens": tokens}

    def step(self, step: int) -> dict:
        self.model.train()
        batch, micro = self.batch(step), self.cfg.runtime.micro_batches
        if micro == 1:
            loss, stats = self.loss(batch)
            loss.backward()
        else:  # gradient accumulation over parts of the rows, each weighted by its share (as ranks are)
            totals = tuple(self.dp.all_sum(len(batch[0]), float(batch[2].sum())))
            done = 0.0
            for part in zip(*(t.tensor_split(micro) for t in batch)):
                if len(part[0]):
                    loss, s = self.loss(part, totals)
                    loss.backward()
                    done += s["sft_loss"]
            stats = {"sft_loss": self.dp.all_sum(done)[0], "sft_tokens": totals[1]}
        self.dp.sum_grads(self.model)
        gnorm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.sft.grad_clip)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return {**stats, "sft_grad_norm": float(gnorm)}
