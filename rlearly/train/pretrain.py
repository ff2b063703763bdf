"""Pretraining from scratch on the mixture, with checkpoints on a token schedule and exact resume.

Run directory:
    config.yaml      the resolved config            metrics.jsonl   one row per logged step
    tokenizer/       trained once, shared by all    ckpt-<tokens>/  HF-format checkpoints (+ trainer state)
    state/           latest resumable state         meta.json, DONE written when finished
Checkpoints sit on the cosine schedule where they fall: they are not annealed (as in the paper).
Under torchrun each rank trains on its rows of every batch (rlearly.train.dist); rank 0 writes the files.
"""
from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import torch

from rlearly.config import Config
from rlearly.data.mixture import Mixture, PretrainBatches, heldout_batches
from rlearly.data.world import World
from rlearly.errors import StorageError
from rlearly.evaluation.evaluate import greedy_accuracy, heldout_nll
from rlearly.files import progress, write_atomic
from rlearly.lm.checkpoint import provenance, save_checkpoint
from rlearly.lm.model import LlamaLM
from rlearly.lm.runtime import resolve
from rlearly.lm.tokenizer import Tokenizer, train_tokenizer
from rlearly.train.common import (ckpt_name, claim_run_dir, cosine_lr, make_adamw, resume_latest,  # noqa: F401
                                  set_lr, set_threads)
from rlearly.train.dist import DataParallel, data_parallel, full_optimizer_state, shard_model, unsharded, whole


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Finished checkpoints of a pretraining run, in token order."""
    return sorted(p for p in Path(run_dir).glob("ckpt-*") if (p / "meta.json").is_file())


def run(cfg: Config, out_dir: str | Path, *, show_progress: bool = True, stop_after: int | None = None) -> Path:
    """Pretrain `cfg` into `out_dir`, resuming from its latest saved state. Returns out_dir.

    `stop_after` ends the call after that many steps in total (tests use it to simulate an interruption).
    """
    if cfg.pretrain.engine == "nanotron":  # nanotron trains; rlearly exports, launches and converts back
        from rlearly.train import nanotron
        return nanotron.pretrain(cfg, out_dir)
    out = Path(out_dir)
    dp = data_parallel()
    with dp.main_first():
        claim_run_dir(out, cfg)  # first: a finished run of another config is an error, not "done"
    if (out / "DONE").exists():
        return out
    set_threads(cfg.runtime.threads or cfg.pretrain.threads)
    pc = cfg.pretrain
    dp.require(pc.batch_size, "pretrain.batch_size")
    torch.manual_seed(cfg.seed)
    world = World(cfg.world)
    mixture = Mixture(cfg, world)
    with dp.main_first():
        tok = _tokenizer(out, cfg, mixture)
    rt = resolve(cfg.runtime)
    model = rt.place(LlamaLM(cfg.model, tok.vocab_size))  # initialised on the CPU (the same weights everywhere)
    model = shard_model(model, dp, cfg.runtime.shard)  # FSDP2 under torchrun with runtime.shard=fsdp
    opt = make_adamw(model, pc.lr, pc.weight_decay, (pc.beta1, pc.beta2))
    step_model = torch.compile(model) if cfg.runtime.compile else model  # the step's forward; evaluation stays eager
    log = dp.metrics_log(out / "metrics.jsonl")
    step, elapsed = resume_latest([out / "state", *list_checkpoints(out)], model, {"adamw": opt}, log)
    if step and dp.main:
        print(f"{out}: resuming at step {step} of {pc.total_steps} ({step * pc.tokens_per_step:,} of {pc.tokens:,} "
              "tokens, its latest saved state)")
    dp.broadcast_(model)

    batches = PretrainBatches(cfg, mixture, tok)
    math_docs = [world.math.prompt(p) + world.math.one_demo(p) for p in world.math.split("dev")]  # never test
    heldout = rt.to({"math": heldout_batches(math_docs, tok, pc.batch_size, pc.seq_len, pc.eval_batches),
                     "general": heldout_batches(world.general.heldout_documents(), tok, pc.batch_size, pc.seq_len,
                                                pc.eval_batches)})
    ckpt_steps = set(pc.checkpoint_steps())
    warmup_steps = pc.warmup_tokens // pc.tokens_per_step
    end = pc.total_steps if stop_after is None else min(pc.total_steps, stop_after)
    bar = progress(pc.total_steps, step, "pretrain", show_progress and dp.main)
    losses, t_log = [], time.perf_counter()
    model.train()
    while step < end:
        lr = cosine_lr(step, pc.total_steps, warmup_steps, pc.lr, pc.min_lr_ratio)
        x, y = batches.batch(step)  # the global batch; this rank trains on its rows
        rows = dp.shard(len(x))
        loss, gnorm = train_step(step_model, opt, *rt.to((x[rows], y[rows])), lr, pc.grad_clip, dp, len(x),
                                 rt.autocast(), cfg.runtime.micro_batches)
        step += 1
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
        is_ckpt = step in ckpt_steps
        evaluate = step % pc.eval_every == 0 or is_ckpt
        save = is_ckpt or step % pc.save_every == 0
        # what rank 0 runs alone: the model itself, or a gathered copy of a sharded one (every rank gathers)
        view = unsharded(model, keep=dp.main) if evaluate or save else model
        if evaluate:
            if dp.main:  # rank 0 evaluates and logs
                dt = time.perf_counter() - t_log
                elapsed += dt
                row = dict(step=step, tokens=step * pc.tokens_per_step, lr=lr, loss=sum(losses) / len(losses),
                           grad_norm=float(gnorm), tok_per_s=len(losses) * pc.tokens_per_step / dt,
                           elapsed_s=round(elapsed, 2),
                           **{f"heldout_{k}": heldout_nll(view, b) for k, b in heldout.items()})
                if is_ckpt:  # zero-shot (the format is rare in pretraining) and 2-shot with graded exemplars
                    bar.set_postfix_str("greedy check: 2 x 100 dev problems", refresh=True)  # the bar would sit still
                    for shots in (0, 2):
                        acc = greedy_accuracy(view, tok, world.math, "dev", n_problems=100, shots=shots)
                        row[f"greedy_{shots}shot_answer"] = acc["answer"]
                        row[f"greedy_{shots}shot_graded"] = acc["graded"]
                log.write(**row)
                model.train()
            losses, t_log = [], time.perf_counter()
        if save:
            adamw = full_optimizer_state(opt, model)  # a sharded model's moments gathered whole (every rank)
            if dp.main:
                meta = dict(method="pretrain", parent=None, step=step, tokens=step * pc.tokens_per_step,
                            seed=cfg.seed, config_hash=cfg.hash(), runtime=rt.describe())
                trainer_state = dict(step=step, elapsed_s=elapsed + time.perf_counter() - t_log)
                target = out / (ckpt_name(step * pc.tokens_per_step) if is_ckpt else "state")
                save_checkpoint(target, view, tok, meta, cfg, {"adamw": adamw}, trainer_state)
    bar.close()
    if step >= pc.total_steps and dp.main:
        meta = dict(method="pretrain", parent=None, seed=cfg.seed, config_hash=cfg.hash(), steps=step,
                    tokens=step * pc.tokens_per_step, n_params=model.num_params(), elapsed_s=round(elapsed, 2),
                    checkpoints=[p.name for p in list_checkpoints(out)], runtime=rt.describe(), **provenance())
        write_atomic(out / "meta.json", json.dumps(meta, indent=2) + "\n")
        write_atomic(out / "DONE", "")
    dp.barrier()  # every rank returns once the run is finished on disk
    return out


def train_step(model: LlamaLM, opt: torch.optim.Optimizer, x, y, lr: float, grad_clip: float,
               dp: DataParallel = DataParallel(), batch_rows: int | None = None, autocast=None,
               micro_batches: int = 1):
    """One optimizer step of next-token NLL on x (B, T) -> targets y (B, T) at learning rate `lr`, gradients
    clipped to norm `grad_clip`. Returns (loss, grad norm) as 0-dim tensors (benchmarks/bench_pretrain.py
    times this very function against a plain PyTorch loop). Data-parallel: x, y are this rank's rows of a
    global batch of `batch_rows`; the loss and grad norm returned are the global batch's. `autocast` (a
    context, from Runtime.autocast) covers the forward passes only. `micro_batches` > 1 accumulates the
    gradient over that many parts of the rows, each weighted by its share, as ranks are."""
    set_lr(opt, lr)
    if micro_batches == 1 and not dp.active:  # the plain step
        with autocast or contextlib.nullcontext():
            loss = model(x, y)
        loss.backward()
    else:  # every row has seq_len targets: a part's share of the batch mean is its share of the rows
        loss = torch.zeros((), device=x.device)
        for xs, ys in zip(x.tensor_split(micro_batches), y.tensor_split(micro_batches)):
            if len(xs):
                with autocast or contextlib.nullcontext():
                    part = model(xs, ys) * (len(xs) / (batch_rows or len(x)))
                part.backward()
                loss += part.detach()
    dp.sum_grads(model)
    gnorm = whole(torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip))  # sharded: the global norm
    opt.step()
    opt.zero_grad(set_to_none=True)
    if dp.active:
        loss = torch.tensor(dp.all_sum(loss)[0])
    return loss.detach(), gnorm


def _tokenizer(out: Path, cfg: Config, mixture: Mixture) -> Tokenizer:
    tdir = out / "tokenizer"
    if (tdir / "tokenizer.json").exists():
        return Tokenizer.load(tdir)
    tok = train_tokenizer(mixture.tokenizer_corpus(cfg.data.tokenizer_docs, cfg.world.seed), cfg.data.vocab_size)
    tmp = out / ".tokenizer.tmp"
    try:
        tmp.mkdir(exist_ok=True)
        tok.save(tmp, cfg.model.max_seq_len)
        tmp.rename(tdir)
    except OSError as e:
        raise StorageError.from_os(tdir, e) from e
    return tok
