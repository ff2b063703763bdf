"""Post-training branches: every recipe starts from a checkpoint M_t and records its lineage.

    run(cfg, parent, out_dir, method)   method: a registered recipe (rlearly.train.RECIPES)

Branch directory:
    config.yaml  metrics.jsonl  state/ (resumable)  step-<n>/ (intermediate weights)  final/  meta.json  DONE
A two-stage recipe (`after`: `sft_rl`, `sft_gold_rl`) first runs (or reuses) that branch in `<out>/sft`, then
its own from the final checkpoint there (the paper's SFT→RL and SFT-Gold→RL).
A recipe implements rlearly.train.recipe.RecipeInterface; this module owns the loop around it: learning-rate warmup, logging, quick validation pass@k on the dev split, stopping once that has
plateaued (branch.patience), saving and exact resume.
Under torchrun the recipes split each batch over the ranks (rlearly.train.dist); rank 0 validates and
writes the files.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from rlearly.config import Config
from rlearly.errors import ConfigError
from rlearly.evaluation.passk import pass_at_k_curve
from rlearly.files import progress, read_metrics, write_atomic
from rlearly.lm.checkpoint import checkpoint_id, load_checkpoint, provenance, read_meta, save_checkpoint
from rlearly.lm.runtime import resolve
from rlearly.sampling import get_engine
from rlearly.sampling.torch_engine import generate
from rlearly.seeds import branch_seed
from rlearly.tasks import Task, config_task
from rlearly.train import RECIPES, method_name
from rlearly.train.budget import check_fits, say_time
from rlearly.train.common import claim_run_dir, resume_latest, set_lr, set_threads
from rlearly.train.dist import data_parallel


def make_recipe(method: str, cfg: Config, model, tok, task: Task):
    """The registered recipe `method`, built on `model` (its optimizers too)."""
    return RECIPES[method_name(method)].build(cfg, model, tok, task)


def total_steps(method: str, cfg: Config, n_demos: int = 0) -> int:
    """Steps of a branch (at most: branch.patience may stop it earlier), as its recipe counts them: with
    sft.epochs set, SFT takes epochs x n_demos / batch steps (n_demos: the recipe's demonstrations) and
    parallel averaging at least as many, so its SFT half sees as many demos (min_steps)."""
    return RECIPES[method_name(method)].cls().steps(cfg, n_demos)


def min_steps(method: str, cfg: Config, n_demos: int = 0) -> int:
    """Steps before which a branch is not stopped for a plateau (parallel averaging: its SFT epochs)."""
    return RECIPES[method_name(method)].cls().min_steps(cfg, n_demos)


def run(cfg: Config, parent: str | Path, out_dir: str | Path, method: str, *, show_progress: bool = True,
        stop_after: int | None = None, sft_dir: str | Path | None = None, sft_cfg: Config | None = None) -> Path:
    """Train branch `method` from checkpoint `parent` into `out_dir` (resuming if interrupted).
    For `sft_rl` and `sft_gold_rl`, `sft_dir` names the SFT branch to start from (run there if unfinished;
    default <out>/sft) and `sft_cfg` its config (default `cfg`: a study may give the RL stage settings of its own)."""
    method = method_name(method)
    recipe = RECIPES[method]
    if recipe.cls().samples:  # an unknown engine, or a missing extra, fails before any directory is made
        get_engine(cfg.rl.backend, "rl.backend: ").impl().check()
    out = Path(out_dir)
    if recipe.after:  # the paper's pipeline: RL from the SFT branch of the same checkpoint
        sft_dir = run(sft_cfg or cfg, parent, sft_dir or out / "sft", recipe.after,
                      show_progress=show_progress, stop_after=stop_after)
        if not (sft_dir / "DONE").exists():
            return out
        parent = sft_dir / "final"
    return _run(cfg, Path(parent), out, method, show_progress, stop_after)


def compile_blocks(model) -> None:
    """Each block's shared-prompt forward (what GRPO's loss and its reference run, forward and backward) through
    torch.compile with dynamic shapes (a batch's packed length varies every step); sampling keeps the eager forward,
    whose KV cache changes shape as it fills. Inductor caches what it compiles on disk, so a later process reuses it."""
    for block in model.model.layers:
        block.forward_shared = torch.compile(block.forward_shared, dynamic=True)


def _run(cfg: Config, parent: Path, out: Path, method: str, show_progress: bool, stop_after: int | None) -> Path:
    if (out / "DONE").exists():  # finished: only check that it is a run of this very config
        claim_run_dir(out, cfg)
        return out
    parent_meta = read_meta(parent)
    dp = data_parallel()
    if cfg.runtime.shard == "fsdp" and dp.active:
        raise ConfigError("runtime.shard=fsdp shards pretraining only: a branch samples on each rank and calls the "
                          "model outside forward(), so every rank holds the whole model; use runtime.shard=none")
    set_threads(cfg.runtime.threads or cfg.pretrain.threads)
    model, tok, _ = load_checkpoint(parent, verify=False)  # verified by read_meta above
    rt = resolve(cfg.runtime)
    model = rt.place(model)  # before the recipe builds its optimizers (and RL its frozen reference)
    say = dp.main and show_progress  # what a branch needs, said before it starts (rlearly.train.budget)
    check_fits(cfg, model, method, rt.device, log=print if say else (lambda s: None))
    if cfg.runtime.compile:  # the losses' blocks (GRPO's shared-prompt path) through torch.compile, once a process
        compile_blocks(model)
    torch.manual_seed(cfg.seed)
    task = config_task(cfg.task, cfg.world)  # a task made from the world: this config's; else its data
    recipe = make_recipe(method, cfg, model, tok, task)  # a held-out split or bad data fails here, before any file
    with dp.main_first():
        claim_run_dir(out, cfg)
    log = dp.metrics_log(out / "metrics.jsonl")
    n_demos = recipe.n_demos()
    steps, floor = total_steps(method, cfg, n_demos), min_steps(method, cfg, n_demos)
    if say:
        demos = [p for p in task.training_problems(cfg.sft.split)[:32] if p.demo]
        sft_tokens = sum(len(tok.encode(task.prompt(p) + p.demo)) for p in demos) / max(len(demos), 1)
        say_time(cfg, model, method, steps, rt.device, rt.dtype, sft_tokens)
    step, elapsed = resume_latest([out / "state"], model, recipe.optimizers, log)
    if step and dp.main:
        print(f"{out}: resuming at step {step} of {steps} (its saved state)")
    dp.broadcast_(model)
    lineage = dict(method=method, parent=str(parent), parent_id=checkpoint_id(parent),
                   # pretraining tokens of the start checkpoint M_t, carried through SFT for sft_rl
                   parent_tokens=parent_meta.get("tokens", parent_meta.get("parent_tokens")),
                   seed=cfg.seed, config_hash=cfg.hash(), runtime=rt.describe())
    # validation reads the task's validation split (synthetic: dev), never test or hard
    eval_problems = task.problems(task.validation_split)[:cfg.branch.eval_problems] if cfg.branch.eval_every else []
    end = steps if stop_after is None else min(steps, stop_after)
    patience, min_delta = cfg.branch.patience, cfg.branch.min_delta  # rank 0 decides when to stop, for every rank
    val = [r["val_pass@1"] for r in read_metrics(out / "metrics.jsonl") if "val_pass@1" in r] if dp.main else []
    stop = lambda: step >= floor and dp.broadcast_value(dp.main and plateaued(val, patience, min_delta)) > 0  # noqa: E731
    why = "plateau" if patience > 0 and stop() else ""  # why the branch stopped early ("": it did not)
    silent = cfg.branch.no_signal_steps  # RL that has had no learning signal yet stops after this many steps
    if silent and step:
        silent = silent if rl_without_signal(read_metrics(out / "metrics.jsonl")) == step else 0
    bar = progress(steps, step, method, show_progress and dp.main)
    t0 = time.perf_counter()
    while step < end and not why:
        _warmup(recipe, cfg, step)
        with rt.autocast():  # bf16: the recipe's forward passes (sampling included); validation stays fp32
            row = recipe.step(step)
        step += 1
        bar.update(1)
        if "reward_mean" in row:
            bar.set_postfix(reward=f"{row['reward_mean']:.2f}")
        if cfg.branch.eval_every and (step % cfg.branch.eval_every == 0 or step == steps):
            if dp.main:
                row.update(quick_passk(model, tok, task, eval_problems, cfg.branch.eval_n,
                                       branch_seed(cfg.seed, "val")))
            if patience:
                val += [row["val_pass@1"]] if "val_pass@1" in row else []
                why = "plateau" if stop() else why
        if silent and not (row.get("frac_zero_std") == 1.0 and "sft_loss" not in row):
            silent = 0  # a signal (or SFT, which always has one): the usual stopping rules only
        if silent and step >= silent:
            why = "no_signal"
        now = time.perf_counter()
        elapsed, t0 = elapsed + now - t0, now
        log.write(step=step, elapsed_s=round(elapsed, 3), **row)
        if step % cfg.branch.save_every == 0 and step < steps and not why and dp.main:
            save_checkpoint(out / f"step-{step:06d}", model, tok, {**lineage, "step": step}, cfg)
            save_checkpoint(out / "state", model, tok, {**lineage, "step": step}, cfg, recipe.optimizers,
                            {"step": step, "elapsed_s": elapsed})
    bar.close()
    if (step >= steps or why) and dp.main:
        save_checkpoint(out / "final", model, tok, {**lineage, "step": step}, cfg)
        write_atomic(out / "meta.json", json.dumps({**lineage, "steps": step, "elapsed_s": round(elapsed, 2),
                                                    "stopped": why or "steps",
                                                    **provenance()}, indent=2) + "\n")
        write_atomic(out / "DONE", "")
        n_silent = rl_without_signal(read_metrics(out / "metrics.jsonl"))
        if n_silent:
            print(f"warning: {out}: in all {n_silent} RL steps every group's rollouts got the same reward, so the "
                  "policy gradient was zero and RL changed nothing (the start solves none or all of its prompts: "
                  "try a later checkpoint or a larger rl.group_size)", file=sys.stderr)
    dp.barrier()  # every rank returns once the branch is finished on disk
    return out


def rl_without_signal(rows: list[dict]) -> int:
    """The number of RL steps when not one of them had a group with differing rewards (frac_zero_std 1 in
    every step: nothing was learnt); 0 when some step had a signal or there was no RL."""
    fz = [r["frac_zero_std"] for r in rows if r.get("frac_zero_std") is not None]
    return len(fz) if fz and min(fz) >= 1.0 else 0


def plateaued(val: list[float], patience: int, min_delta: float) -> bool:
    """True once the last `patience` validations have all failed to beat the best before them by more than
    `min_delta` (the first validation only sets the best)."""
    if len(val) <= patience:
        return False
    return max(val[-patience:]) <= max(val[:-patience]) + min_delta


def _warmup(recipe, cfg: Config, step: int) -> None:
    """Constant learning rate after a linear warmup (the paper's SFT and RL schedules)."""
    for name, opt in recipe.optimizers.items():
        sec = getattr(cfg, recipe.sections[name])
        factor = min(1.0, (step + 1) / sec.warmup_steps) if sec.warmup_steps else 1.0
        set_lr(opt, sec.lr * factor)


@torch.no_grad()
def quick_passk(model, tok, task: Task, problems, n: int, seed: int) -> dict:
    """Zero-shot validation during training: pass@1 and pass@n on a few dev problems at T=0.6, top-p 0.95
    (the paper's evaluation sampling). The full evaluation with stored samples lives in rlearly.evaluation.evaluate."""
    if not problems:
        return {}
    prompts = [tok.encode(task.prompt(p)) for p in problems]
    budget = task.max_new_tokens if task.multiline else 128  # one-line: 128, as before protocols existed
    outs = generate(model, prompts, n=n, max_new_tokens=min(budget, model.cfg.max_seq_len - max(map(len, prompts))),
                    temperature=0.6, top_p=0.95, stop_ids=task.stop_ids(tok), seed=seed,
                    pad_id=tok.pad_id)
    correct = np.array([sum(task.reward(task.rollout_text(tok.decode(outs[i * n + j].tokens)), p) > 0 for j in range(n))
                        for i, p in enumerate(problems)])
    curve = pass_at_k_curve(n, correct, ks=[1, n])
    se = float(np.std(correct / n, ddof=1) / np.sqrt(len(problems))) if len(problems) > 1 else float("nan")
    return {"val_pass@1": curve[1], f"val_pass@{n}": curve[n], "val_pass@1_se": se}
