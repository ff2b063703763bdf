"""Helpers shared by every training stage: optimizer, LR schedule, run directories, resume, data order,
checkpoint names.

Shared helpers, not a framework: each stage keeps its own explicit loop (files: rlearly.files).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from rlearly.errors import CheckpointError, ConfigError
from rlearly.files import MetricsLog, write_atomic
from rlearly.lm.model import LlamaLM


def make_adamw(model: LlamaLM, lr: float, weight_decay: float, betas=(0.9, 0.95), eps: float = 1e-8):
    """AdamW with weight decay on matrices only (not on embeddings or norm gains, as in OLMo2)."""
    embed = {id(model.model.embed_tokens.weight)}
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2 and id(p) not in embed]
    ids = {id(p) for p in decay}
    no_decay = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, foreach=True)


def cosine_lr(step: int, total: int, warmup: int, peak: float, min_ratio: float) -> float:
    """Linear warmup to `peak`, then cosine decay to `min_ratio * peak` at step `total` (paper §2)."""
    if warmup > 0 and step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for g in opt.param_groups:
        g["lr"] = lr


def set_threads(n: int) -> None:
    if n > 0:
        torch.set_num_threads(n)


def claim_run_dir(out: Path, cfg) -> None:
    """Write config.yaml into a new run directory, or check that it holds a run of this very config
    (so a finished run is never overwritten by a different one)."""
    from rlearly.config import load_config, stored_schema
    from rlearly.config.tree import SCHEMA

    out.mkdir(parents=True, exist_ok=True)
    f = out / "config.yaml"
    if f.exists():
        if stored_schema(f) != SCHEMA:
            raise ConfigError(f"{out} holds a run of config schema {stored_schema(f)}, written by another version of "
                              f"rlearly (this one writes schema {SCHEMA}); use a new output directory")
        old = load_config(f)
        if old.hash() != cfg.hash():
            raise ConfigError(f"{out} holds a run of another config (hash {old.hash()} != {cfg.hash()}); "
                              "use a new output directory")
    else:
        write_atomic(f, cfg.to_yaml())


def resume_latest(candidates: list[Path], model: LlamaLM, optimizers: dict, log: MetricsLog) -> tuple[int, float]:
    """Load the most advanced saved trainer state among `candidates` into model and optimizers.
    Returns (step, elapsed seconds); (0, 0.0) when there is none. Metrics logged later are dropped."""
    from rlearly.lm.checkpoint import load_checkpoint, load_trainer_state, trainer_dir
    from rlearly.train.dist import load_weights, shard_optimizer_state

    found = [(_saved_step(p), p) for p in candidates if (trainer_dir(p) / "trainer_state.json").is_file()]
    if not found:
        log.truncate_after(0)
        return 0, 0.0
    step, path = max(found, key=lambda c: c[0])
    saved, _, _ = load_checkpoint(path)
    load_weights(model, saved.state_dict())  # a sharded (FSDP2) model keeps this rank's shard
    state = load_trainer_state(path, optimizers)
    for opt in optimizers.values():
        shard_optimizer_state(opt)  # a sharded (FSDP2) model's moments cut to this rank's shards
    log.truncate_after(step)
    return step, float(state.get("elapsed_s", 0.0))


def _saved_step(path: Path) -> int:
    from rlearly.lm.checkpoint import trainer_dir

    f = trainer_dir(path) / "trainer_state.json"
    try:
        step = json.loads(f.read_text()).get("step")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        step = None
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise CheckpointError(f"{f} is corrupt (no step); delete {path} to resume from an earlier state")
    return step


def ckpt_name(tokens: int) -> str:
    """A pretraining checkpoint's folder name: its tokens, zero-padded so names sort in token order."""
    return f"ckpt-{tokens:010d}"


def epoch_batch(seed: int, step: int, batch_size: int, n_items: int) -> list[int]:
    """Indices of batch `step` when items are visited in a fresh seeded permutation each epoch.
    A pure function of (seed, step), so a resumed run draws the same batches."""
    import numpy as np

    start = step * batch_size
    out = []
    while len(out) < batch_size:
        epoch, offset = divmod(start + len(out), n_items)
        perm = np.random.default_rng([seed, 0xE90C, epoch]).permutation(n_items)
        out.extend(int(i) for i in perm[offset:offset + batch_size - len(out)])
    return out
