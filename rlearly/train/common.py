"""Helpers shared by every training stage: optimizer, LR schedule, metrics log, progress bar, node files.

Shared helpers, not a framework: each stage keeps its own explicit loop. Files are written atomically
(a hidden temp file, fsync, rename); a write that fails (disk full) raises StorageError naming the file
and leaves the earlier version in place.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from rlearly.errors import CheckpointError, ConfigError, DataError, StorageError
from rlearly.model import LlamaLM


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


class MetricsLog:
    """Append-only metrics.jsonl: one JSON object per logged step."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def write(self, **row) -> None:
        try:
            with open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise StorageError.from_os(self.path, e) from e

    def truncate_after(self, step: int) -> None:
        """On resume: drop rows logged after the step we restart from (they will be logged again), and a
        last row torn by a crash mid-write. A malformed row anywhere else is an error naming the line."""
        if not self.path.exists():
            return
        lines = [l for l in self.path.read_text().splitlines() if l.strip()]
        keep = []
        for i, line in enumerate(lines):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                if i == len(lines) - 1:
                    break  # torn by a crash while being appended: it is logged again
                raise DataError(f"{self.path}: line {i + 1} is not valid JSON; the log is corrupt") from None
            if row.get("step", 0) <= step:
                keep.append(line)
        write_atomic(self.path, "".join(l + "\n" for l in keep))


def read_metrics(path: str | Path) -> list[dict]:
    """The rows of a JSONL log ([] if there is none); a malformed line is a DataError naming the file and line."""
    p = Path(path)
    rows = []
    for i, line in enumerate(p.read_text().splitlines() if p.exists() else [], 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise DataError(f"{p}: line {i} is not valid JSON; the log is corrupt") from None
    return rows


def progress(total: int, initial: int = 0, desc: str = "", enabled: bool = True):
    """A tqdm bar that reads well in a terminal and, refreshed less often, in papermill/CI logs."""
    return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, dynamic_ncols=True,
                mininterval=0.5 if sys.stderr.isatty() else 10.0, file=sys.stderr)


class Timer:
    def __init__(self):
        self.t0 = time.perf_counter()

    def lap(self) -> float:
        t, self.t0 = self.t0, time.perf_counter()
        return self.t0 - t


def write_atomic(path: str | Path, text: str) -> None:
    """Replace `path` by `text` all at once: readers see the old file or the new one, never a part.
    On failure (disk full) the temp file is removed, the old file is untouched and StorageError names `path`."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise StorageError.from_os(path, e) from e
        raise


def set_threads(n: int) -> None:
    if n > 0:
        torch.set_num_threads(n)


def claim_run_dir(out: Path, cfg) -> None:
    """Write config.yaml into a new run directory, or check that it holds a run of this very config
    (so a finished run is never overwritten by a different one)."""
    from rlearly.config import SCHEMA, load_config, stored_schema

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
    from rlearly.checkpoint import load_checkpoint, load_trainer_state, trainer_dir
    from rlearly.train.dist import load_weights

    found = [(_saved_step(p), p) for p in candidates if (trainer_dir(p) / "trainer_state.json").is_file()]
    if not found:
        log.truncate_after(0)
        return 0, 0.0
    step, path = max(found, key=lambda c: c[0])
    saved, _, _ = load_checkpoint(path)
    load_weights(model, saved.state_dict())  # a sharded (FSDP2) model keeps this rank's shard
    state = load_trainer_state(path, optimizers)
    log.truncate_after(step)
    return step, float(state.get("elapsed_s", 0.0))


def _saved_step(path: Path) -> int:
    from rlearly.checkpoint import trainer_dir

    f = trainer_dir(path) / "trainer_state.json"
    try:
        step = json.loads(f.read_text()).get("step")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        step = None
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise CheckpointError(f"{f} is corrupt (no step); delete {path} to resume from an earlier state")
    return step


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
