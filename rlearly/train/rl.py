"""GRPO with a verifiable binary reward (paper §3.1): rollouts, group advantages, clipped policy updates.

Each step: draw `prompts_per_step` training prompts (seeded epoch order), sample `group_size` rollouts per
prompt from the current policy (pi_old) at the rollout temperature, score them with the task's reward,
compute group-normalised advantages, then take `mini_batches` x `epochs` optimizer steps on the clipped
token-level loss (+ optional k3 KL to the frozen start checkpoint). Rollout randomness is a pure function
of (seed, step, sample), so a resumed run samples exactly what an uninterrupted one would.

The rollouts come from the sampling engine `rl.backend` names (rlearly.sampling): rlearly's own sampler on the
policy itself, or vLLM (an engine built once from the start weights, loaded with the policy's weights whenever they
changed; pi_old is then recomputed by the policy itself).

Under torchrun each rank samples the groups of its share of the step's prompts, with the sample keys
one process would use (so the same rollouts), and computes its share of each mini-batch's loss; the
logged stats are the whole batch's (rlearly.train.dist).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch

from rlearly.config import Config
from rlearly.lm.losses import group_advantages, grpo_loss
from rlearly.lm.runtime import device_of, to_device
from rlearly.lm.tokenizer import Tokenizer
from rlearly.sampling import get_engine
from rlearly.seeds import branch_seed
from rlearly.tasks import Task
from rlearly.train.common import epoch_batch, make_adamw
from rlearly.train.dist import combine_stats, data_parallel, loss_share
from rlearly.train.recipe import RecipeInterface

LOSS_STATS = ("loss", "pg_loss", "kl")  # stats that are aggregated losses; grpo_loss's others are token means


@dataclass
class Rollouts:
    """A rollout batch, each prompt stored once for its `group` rollouts (rows b*group .. b*group+group-1).
    The prompt minus its last token is the shared prefix; a row's inputs are the prompt's last token and
    the completion, so target t of a row is completion token t."""
    prefix: torch.Tensor  # (N/group, P) prompts without their last token, left-padded
    prefix_real: torch.Tensor  # (N/group, P) bool, True on real prompt tokens
    x: torch.Tensor  # (N, T) inputs: last prompt token + completion[:-1], right-padded
    y: torch.Tensor  # (N, T) next-token targets: the completion, right-padded
    mask: torch.Tensor  # (N, T) 1 on completion targets
    old_logprobs: torch.Tensor  # (N, T) log pi_old of the targets (0 off the mask)
    rewards: torch.Tensor  # (N,)
    finished: torch.Tensor  # (N,) bool: stopped by EOS/newline rather than max_new_tokens
    lengths: torch.Tensor  # (N,) completion lengths
    group: int


def rollout_tensors(prompts: list[list[int]], completions, rewards, pad_id: int, group: int) -> Rollouts:
    """Pack `group` completions per prompt (prompt-major) around each prompt stored once."""
    if len(completions) != len(prompts) * group:
        raise ValueError(f"{len(completions)} completions for {len(prompts)} prompts x group {group}")
    P, T, N = max(len(p) for p in prompts) - 1, max(len(c.tokens) for c in completions), len(completions)
    prefix = torch.full((len(prompts), P), pad_id, dtype=torch.long)
    real = torch.zeros(len(prompts), P, dtype=torch.bool)
    for g, p in enumerate(prompts):
        if len(p) > 1:
            prefix[g, P - len(p) + 1:], real[g, P - len(p) + 1:] = torch.tensor(p[:-1]), True
    x, y = torch.full((N, T), pad_id, dtype=torch.long), torch.full((N, T), pad_id, dtype=torch.long)
    mask, old = torch.zeros(N, T), torch.zeros(N, T)
    for i, c in enumerate(completions):
        n = len(c.tokens)
        x[i, :n] = torch.tensor([prompts[i // group][-1]] + c.tokens[:-1])
        y[i, :n], mask[i, :n], old[i, :n] = torch.tensor(c.tokens), 1.0, torch.tensor(c.logprobs)
    return Rollouts(prefix, real, x, y, mask, old, torch.tensor(rewards, dtype=torch.float32),
                    torch.tensor([c.finished for c in completions]),
                    torch.tensor([len(c.tokens) for c in completions]), group)


def whole_groups(rows: torch.Tensor, group: int) -> torch.Tensor:
    """The groups of `rows` (a GRPO mini-batch: whole groups, each group's rows in order), or a ValueError."""
    groups = rows[::group] // group
    if not torch.equal(rows, (groups[:, None] * group + torch.arange(group, device=rows.device)).reshape(-1)):
        raise ValueError("a GRPO mini-batch must hold whole groups, each group's rows in order")
    return groups


class RLRecipe(RecipeInterface):
    """One GRPO rollout batch + its updates per call; `collect` and `loss` serve the mixed recipes."""

    sections = {"rl": "rl"}  # optimizer -> the config section of its learning rate and warmup

    @staticmethod
    def steps(cfg: Config, n_demos: int = 0) -> int:
        return cfg.rl.steps

    def __init__(self, cfg: Config, model, tok: Tokenizer, task: Task):
        self.cfg, self.model, self.tok, self.task = cfg, model, tok, task
        rc = cfg.rl
        self.problems = task.training_problems(rc.split)
        self.prompts = [tok.encode(task.prompt(p)) for p in self.problems]
        self.opt = make_adamw(model, rc.lr, rc.weight_decay, (rc.beta1, rc.beta2))
        self.optimizers = {"rl": self.opt}
        self.dp = data_parallel()
        self.dp.require(rc.prompts_per_step, "rl.prompts_per_step")
        self.part = self.dp.shard(rc.prompts_per_step)  # this rank's prompts of each step (all in one process)
        self.batch_rollouts = rc.prompts_per_step * rc.group_size  # rollouts per step, over all ranks
        self.ref = None
        if rc.kl_coef > 0:  # frozen start checkpoint for the KL term
            self.ref = copy.deepcopy(model).eval().requires_grad_(False)
        self.sampler = get_engine(rc.backend, "rl.backend: ").impl().rollout_sampler(model, tok, rc)

    def collect(self, step: int) -> tuple[Rollouts, torch.Tensor, dict]:
        """Sample rollouts from the current weights; returns them with advantages and stats."""
        rc, G = self.cfg.rl, self.cfg.rl.group_size
        idx = epoch_batch(self.cfg.seed, step, rc.prompts_per_step, len(self.prompts))[self.part]
        prompts = [self.prompts[i] for i in idx]
        keys = range(self.part.start * G, self.part.stop * G)  # a sample's key is its index in the whole batch
        kw = dict(n=G, max_new_tokens=rc.max_new_tokens, temperature=rc.temperature, top_p=rc.top_p,
                  stop_ids=self.task.stop_ids(self.tok), seed=branch_seed(self.cfg.seed, "rl", step), keys=keys,
                  pad_id=self.tok.pad_id)
        outs = self.sampler.generate(prompts, **kw)
        texts = [self.task.rollout_text(self.tok.decode(o.tokens)) for o in outs]
        correct = [self.task.reward(t, self.problems[idx[k // G]]) for k, t in enumerate(texts)]
        rewards = correct if rc.format_score == 0 else \
            [max(r, rc.format_score * (self.task.extract(t) is not None)) for r, t in zip(correct, texts)]
        ro = to_device(rollout_tensors(prompts, outs, rewards, self.tok.pad_id, G), device_of(self.model))
        adv, astats = group_advantages(ro.rewards, G, normalize_std=rc.normalize_std)
        stats = {"reward_mean": astats["reward_mean"], "frac_zero_std": astats["frac_zero_std"],
                 "truncated_frac": float((~ro.finished).float().mean()),
                 "response_len": float(ro.lengths.float().mean())}
        if rc.format_score:  # reward_mean then counts the partial credit; this is the task's own score
            stats["correct_mean"] = sum(correct) / len(correct)
        if not self.sampler.exact_logprobs:
            # pi_old from the policy, not from the engine's kernels (another dtype and attention): the ratio of the
            # first update is 1 as with torch sampling; the gap stays in the log (it grows if weights were not loaded)
            engine_lp, ro.old_logprobs = ro.old_logprobs, self.policy_logprobs(ro)
            stats[f"{rc.backend}_logprob_gap"] = float((engine_lp - ro.old_logprobs).abs().sum()
                                                       / ro.mask.sum().clamp(min=1))
        if self.dp.active:
            stats = self.dp.reduce_stats(stats, len(outs))  # means over rollouts (groups: G rollouts each)
        return ro, adv, stats

    @torch.no_grad()
    def policy_logprobs(self, ro: Rollouts) -> torch.Tensor:
        """(N, T) log pi of the rollouts' targets under the current weights (0 off the mask), computed as the loss
        computes them, `rl.mini_batches` parts of whole groups at a time."""
        G, out, dev = ro.group, torch.zeros_like(ro.old_logprobs), ro.x.device
        for groups in torch.arange(len(ro.prefix), device=dev).tensor_split(self.cfg.rl.mini_batches):
            if len(groups) == 0:  # data-parallel: fewer groups on this rank than parts
                continue
            rows = (groups[:, None] * G + torch.arange(G, device=dev)).reshape(-1)
            out[rows] = self.model.masked_logprobs(ro.x[rows], ro.y[rows], ro.mask[rows], prefix=ro.prefix[groups],
                                                   prefix_real=ro.prefix_real[groups], group=G)[0]
        return out

    def loss(self, ro: Rollouts, adv: torch.Tensor, rows) -> tuple[torch.Tensor, dict]:
        """GRPO loss on the rollouts `rows` (a mini-batch of whole groups, from `local_rows`). Each prompt's
        forward pass is shared by its group's rollouts (`LlamaLM.shared_prefix_hidden`). Data-parallel:
        `rows` are this rank's part of the mini-batch (maybe none), the loss is its share of the mini-batch's
        loss (global token or row counts) and the stats are the mini-batch's."""
        rc, G = self.cfg.rl, ro.group
        groups = whole_groups(rows, G)
        if not self.dp.active:
            return self._loss(ro, adv, rows, groups)
        tokens = float(ro.mask[rows].sum())
        all_rows, all_tokens = self.dp.all_sum(len(rows), tokens)
        if len(rows) == 0:  # other ranks sampled this whole mini-batch: no gradient from this one
            return torch.zeros((), requires_grad=True), self.dp.reduce_stats(None, 0.0)
        loss, stats = self._loss(ro, adv, rows, groups)
        share = loss_share(rc.loss_agg, len(rows), all_rows, tokens, all_tokens)
        stats = {k: v * share if k in LOSS_STATS else v for k, v in stats.items()}
        return loss * share, self.dp.reduce_stats(stats, tokens, summed=LOSS_STATS)

    def backward(self, ro: Rollouts, adv: torch.Tensor, rows) -> dict:
        """The gradient of a mini-batch's GRPO loss (`loss(...).backward()`), in `runtime.micro_batches` parts of
        whole groups: each part's loss weighted by its share of the mini-batch's tokens (or rows), as ranks are.
        Returns the mini-batch's stats."""
        micro, G = self.cfg.runtime.micro_batches, ro.group
        if micro == 1:
            loss, stats = self.loss(ro, adv, rows)
            loss.backward()
            return stats
        whole_groups(rows, G)
        tokens = float(ro.mask[rows].sum())
        all_rows, all_tokens = self.dp.all_sum(len(rows), tokens)
        parts = []
        for part in rows.reshape(-1, G).tensor_split(micro):
            part = part.reshape(-1)
            if len(part):
                loss, stats = self._loss(ro, adv, part, part[::G] // G)
                t = float(ro.mask[part].sum())
                share = loss_share(self.cfg.rl.loss_agg, len(part), all_rows, t, all_tokens)
                (loss * share).backward()
                parts.append(({k: v * share if k in LOSS_STATS else v for k, v in stats.items()}, t))
        return self.dp.reduce_stats(combine_stats(parts, LOSS_STATS) if parts else None, tokens, summed=LOSS_STATS)

    def _loss(self, ro: Rollouts, adv: torch.Tensor, rows, groups) -> tuple[torch.Tensor, dict]:
        rc, G = self.cfg.rl, ro.group
        x, y, mask = ro.x[rows], ro.y[rows], ro.mask[rows]
        shared = dict(prefix=ro.prefix[groups], prefix_real=ro.prefix_real[groups], group=G)
        # the LM head, log-probs and entropy run on response positions only
        lp, entropy = self.model.masked_logprobs(x, y, mask, chunk=self.cfg.runtime.logit_chunk, entropy=True, **shared)
        ref_lp = None
        if self.ref is not None:
            with torch.no_grad():
                ref_lp = self.ref.masked_logprobs(x, y, mask, **shared)[0]
        loss, stats = grpo_loss(lp, ro.old_logprobs[rows], adv[rows], mask, ref_lp, rc.kl_coef,
                                clip_low=rc.clip_low, clip_high=rc.clip_high, dual_clip=rc.dual_clip or None,
                                kl_estimator=rc.kl_estimator, agg=rc.loss_agg, max_len=rc.max_new_tokens)
        stats["entropy"] = float(entropy.mean()) if entropy.numel() else 0.0
        return loss, stats

    def minibatches(self, step: int, n: int, keep: np.ndarray | None = None) -> list[np.ndarray]:
        """Row indices of each optimizer step: per epoch, a seeded permutation of the prompts split into
        `mini_batches` parts, each prompt bringing its G rollouts (as VeRL splits by prompt). With `keep`
        (a bool per prompt of the batch, from `signal_groups`) the other prompts are left out first, so
        every mini-batch holds only groups with a learning signal; none is returned when no group has one."""
        rc, G = self.cfg.rl, self.cfg.rl.group_size
        out = []
        for epoch in range(rc.epochs):
            perm = np.random.default_rng([self.cfg.seed, 0x61, step, epoch]).permutation(n // G)
            if keep is not None:
                perm = perm[keep[perm]]
            if len(perm) == 0:
                continue
            parts = np.array_split(perm, min(rc.mini_batches, len(perm)))
            out += [(part[:, None] * G + np.arange(G)).reshape(-1) for part in parts]
        return out

    def signal_groups(self, adv: torch.Tensor) -> np.ndarray | None:
        """With `rl.filter_groups`, a bool per prompt of the whole batch: does its group carry a learning
        signal (rewards not all equal, so advantages not all 0)? Those without add no policy gradient but
        dilute a token-mean loss; DAPO's dynamic sampling drops them (it also resamples; here the batch
        just shrinks). None when the filter is off. Data-parallel: each rank flags its own prompts."""
        if not self.cfg.rl.filter_groups:
            return None
        G = self.cfg.rl.group_size
        mine = adv.reshape(-1, G).ne(0).any(dim=1).tolist()
        flags = [0.0] * self.cfg.rl.prompts_per_step
        flags[self.part] = [float(f) for f in mine]
        return np.array(self.dp.all_sum(*flags)) > 0

    def local_rows(self, rows: np.ndarray) -> torch.Tensor:
        """The rows of a mini-batch from `minibatches` that this rank sampled, as indices into its rollouts
        (data-parallel: the mini-batch's groups among this rank's prompts, maybe none)."""
        if self.dp.active:
            G, part = self.cfg.rl.group_size, self.part
            groups = rows[::G] // G
            mine = groups[(groups >= part.start) & (groups < part.stop)] - part.start
            rows = (mine[:, None] * G + np.arange(G)).reshape(-1)
        return torch.from_numpy(rows).to(device_of(self.model))

    def step(self, step: int, extra=None) -> dict:
        """One rollout batch and its updates; the stats include this process's seconds in each (rollout_s:
        sampling and scoring, update_s: the optimizer steps), so a study's time splits into the two.
        `extra` (the combined recipe): (weight w, a function giving (loss, stats)) makes each mini-batch's loss
        w * extra + (1 - w) * GRPO; its stats are the last mini-batch's."""
        t0 = time.perf_counter()
        ro, adv, stats = self.collect(step)
        t1 = time.perf_counter()
        self.model.train()
        agg: dict[str, list] = {}
        extra_stats: dict = {}
        for rows in self.minibatches(step, self.batch_rollouts, self.signal_groups(adv)):
            if extra is None:
                s = self.backward(ro, adv, self.local_rows(rows))
            else:
                w, term = extra
                rl_loss, s = self.loss(ro, adv, self.local_rows(rows))
                extra_loss, extra_stats = term()
                (w * extra_loss + (1 - w) * rl_loss).backward()
            self.dp.sum_grads(self.model)
            s["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.rl.grad_clip))
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
            for k, v in s.items():
                agg.setdefault(k, []).append(v)
        times = {"rollout_s": round(t1 - t0, 4), "update_s": round(time.perf_counter() - t1, 4)}
        return {**stats, **{f"rl_{k}": sum(v) / len(v) for k, v in agg.items()}, **extra_stats, **times}
