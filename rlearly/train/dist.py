"""Data-parallel training over torch.distributed, launched by torchrun (docs/DESIGN.md §7): gloo for CPU tensors,
NCCL for CUDA ones.

    torchrun --nproc_per_node 2 -m rlearly.cli pretrain --preset tiny
    torchrun --nproc_per_node 2 -m rlearly.cli branch CHECKPOINT --method rl

Every rank holds the whole model and optimizer and takes a disjoint share of each global batch (the
config's batch: sequences, SFT examples, or whole GRPO prompt groups). Each rank scales its loss to its
share of the one-process loss, counting tokens and rows over the whole batch (a token-mean is not the mean
of per-rank means), and gradients are summed over the ranks before clipping. So N processes take the
steps of one process, up to floating-point order: a batch's sums are added in a different order (per rank,
then across ranks). Rank 0 alone writes files (checkpoints, metrics, meta.json, DONE) and runs the
validation while the others wait; every rank reads the same saved state on resume, so a run may resume
under another number of processes. Outside torchrun (no WORLD_SIZE, or 1) nothing here calls
torch.distributed and every method is the identity: one process runs the plain loop, bit for bit.
"""
from __future__ import annotations

import atexit
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from rlearly.errors import ConfigError


@dataclass(frozen=True)
class DataParallel:
    """This process's place among the data-parallel ranks (rank 0 of 1 outside torchrun)."""

    rank: int = 0
    size: int = 1

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes files and shows progress."""
        return self.rank == 0

    def shard(self, n: int) -> slice:
        """This rank's contiguous part of n items (part sizes differ by at most one; all n on one process)."""
        return slice(n * self.rank // self.size, n * (self.rank + 1) // self.size)

    def require(self, n: int, name: str) -> None:
        """Every rank needs at least one item of each global batch."""
        if n < self.size:
            raise ConfigError(f"{name}={n} is smaller than the {self.size} data-parallel processes; "
                              f"raise it or start fewer processes")

    def all_sum(self, *values) -> list[float]:
        """Each value (number or 0-dim tensor) summed over the ranks, in float64."""
        t = torch.tensor([float(v.detach()) if torch.is_tensor(v) else float(v) for v in values], dtype=torch.float64)
        if self.active:
            torch.distributed.all_reduce(t)
        return t.tolist()

    def sum_grads(self, model: torch.nn.Module) -> None:
        """Sum the gradients over the ranks, in one all_reduce (each rank's loss is its share of the global
        loss, so the sum is the global gradient). A parameter without a gradient here counts as zeros; one
        without a gradient on any rank keeps none, as AdamW then skips it in one process too."""
        if not self.active:
            return
        params = [p for p in model.parameters() if p.requires_grad]
        ref = params[0]
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params]
                         + [torch.tensor([p.grad is not None for p in params], dtype=ref.dtype, device=ref.device)])
        torch.distributed.all_reduce(flat)
        offset, has_grad = 0, flat[-len(params):].tolist()
        for p, has in zip(params, has_grad):
            p.grad = flat[offset:offset + p.numel()].view_as(p) if has else None
            offset += p.numel()

    def reduce_stats(self, stats: dict | None, weight: float, summed: tuple[str, ...] = ()) -> dict:
        """One batch's stats as one process would log them, from every rank's part. Keys in `summed` are
        this rank's share of a sum (of the loss) and add up; the others are means over this rank's part,
        averaged with each rank's `weight` (its tokens or rollouts). `stats` None: this rank holds none of
        the batch."""
        if not self.active:
            return stats or {}
        parts = [None] * self.size
        torch.distributed.all_gather_object(parts, None if stats is None else (stats, float(weight)))
        return combine_stats([p for p in parts if p is not None], summed)

    def broadcast_(self, model: torch.nn.Module) -> None:
        """Copy rank 0's weights to every rank (they start equal anyway: same seed or same checkpoint)."""
        if self.active:
            for t in model.state_dict().values():
                torch.distributed.broadcast(t, 0)

    def broadcast_value(self, value: float) -> float:
        """Rank 0's value on every rank (a decision only rank 0 measured, such as validation pass@1)."""
        if not self.active:
            return float(value)
        t = torch.tensor([float(value)], dtype=torch.float64)
        torch.distributed.broadcast(t, 0)
        return float(t.item())

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()

    @contextmanager
    def main_first(self):
        """Rank 0 runs the block first (creating files), then the others (finding them)."""
        if not self.main:
            self.barrier()
        yield
        if self.main:
            self.barrier()

    def metrics_log(self, path: str | Path):
        """The run's MetricsLog on rank 0; a log that writes nothing on the others."""
        from rlearly.train.common import MetricsLog

        return MetricsLog(path) if self.main else _NoLog()


class _NoLog:
    def write(self, **row) -> None:
        pass

    def truncate_after(self, step: int) -> None:
        pass


def data_parallel() -> DataParallel:
    """This process's DataParallel. Under torchrun (WORLD_SIZE > 1) the first call joins the process group:
    gloo for CPU tensors, and NCCL for CUDA ones where CUDA is available (each rank on GPU LOCAL_RANK)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DataParallel()
    dist = torch.distributed
    if not dist.is_initialized():
        if not dist.is_available():
            raise ConfigError("WORLD_SIZE > 1 but this torch build has no torch.distributed; run one process")
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
        atexit.register(dist.destroy_process_group)
    return DataParallel(dist.get_rank(), dist.get_world_size())


def combine_stats(parts: list[tuple[dict, float]], summed: tuple[str, ...] = ()) -> dict:
    """One batch's stats from its parts' (stats, weight): keys in `summed` add up (each part's share of a summed
    loss), the others are means weighted by the parts' weights (tokens or rows). Ranks and micro-batches alike."""
    total = sum(w for _, w in parts)
    return {k: sum(s[k] for s, _ in parts) if k in summed else sum(s[k] * w for s, w in parts) / max(total, 1.0)
            for k in parts[0][0]}


def loss_share(agg: str, rows: int, all_rows: float, tokens: float, all_tokens: float) -> float:
    """The weight of a part's `losses.aggregate(..., agg)` in the whole batch's, for a part of `rows`
    sequences and `tokens` masked tokens out of the batch's: Σ over parts of weight · aggregate(part)
    = aggregate(batch). token-mean: the part's share of the tokens; seq-mean-token-mean and
    seq-mean-token-sum-norm: its share of the sequences; token-sum: 1."""
    if agg == "token-mean":
        return tokens / max(all_tokens, 1.0)
    if agg in ("seq-mean-token-mean", "seq-mean-token-sum-norm"):
        return rows / max(all_rows, 1.0)
    if agg == "token-sum":
        return 1.0
    from rlearly.losses import AGG_MODES
    raise ValueError(f"unknown loss aggregation {agg!r}; known: {', '.join(AGG_MODES)}")
