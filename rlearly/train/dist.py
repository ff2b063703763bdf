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

`runtime.shard=fsdp` (pretraining) shards instead of replicating: FSDP2's `fully_shard` per decoder block and
at the root, so each rank holds 1/N of the weights, gradients and AdamW moments, and gathers a block's weights
only while it runs. The data split, loss shares and global stats are the same as above; the gradient sum is
FSDP's reduce-scatter (set to sum, not its default mean). What one rank runs alone (validation, saving) gets a
gathered copy (`unsharded`, `full_optimizer_state`: collectives every rank calls), so checkpoints are the same
files as one process writes, and a run resumes under either layout (`load_weights`, `shard_optimizer_state`).
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
        if not self.active or is_sharded(model):  # FSDP2 reduce-scatters (sums) in the backward pass
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
        if self.active and not is_sharded(model):  # a sharded model was loaded from the same weights everywhere
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
        from rlearly.files import MetricsLog

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
        atexit.register(_leave)
    return DataParallel(dist.get_rank(), dist.get_world_size())


def _leave() -> None:
    """Leave the process group at exit, unless something else already has (vLLM's engine under torchrun)."""
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


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
    from rlearly.lm.losses import AGG_MODES
    raise ValueError(f"unknown loss aggregation {agg!r}; known: {', '.join(AGG_MODES)}")


# FSDP2 (runtime.shard=fsdp): each rank holds a shard; whole tensors are gathered only where one rank needs them

def shard_model(model: torch.nn.Module, dp: DataParallel, how: str = "none") -> torch.nn.Module:
    """`model` sharded by FSDP2 over the ranks when `how` is "fsdp" under torchrun: one unit per decoder block
    (its weights gathered for its forward and backward, then freed) and the root (embeddings, final norm, LM
    head). Gradients are summed over the ranks, as `sum_grads` sums them. Call it after placing the model and
    before building its optimizers. One process, or "none": the model as it is."""
    if how != "fsdp" or not dp.active:
        return model
    from torch.distributed.fsdp import FSDPModule, fully_shard

    for block in model.model.layers:
        fully_shard(block)
    fully_shard(model)
    for m in model.modules():
        if isinstance(m, FSDPModule):
            m.set_gradient_divide_factor(1.0)  # each rank's loss is its share of the global loss: sum, not mean
            m.set_force_sum_reduction_for_comms(True)  # gloo has no pre-multiplied sum
    return model


def is_sharded(model: torch.nn.Module) -> bool:
    if not torch.distributed.is_available():
        return False
    from torch.distributed.fsdp import FSDPModule

    return isinstance(getattr(model, "_orig_mod", model), FSDPModule)  # torch.compile wraps it: its module


def _is_dtensor(t) -> bool:
    """A sharded tensor (torch's DTensor); never one where this torch has no torch.distributed."""
    if not torch.distributed.is_available():
        return False
    from torch.distributed.tensor import DTensor

    return isinstance(t, DTensor)


def whole(t):
    """A sharded tensor (DTensor) gathered whole (a collective: every rank calls it); any other value as is."""
    return t.full_tensor() if _is_dtensor(t) else t


def unsharded(model: torch.nn.Module, keep: bool = True) -> torch.nn.Module:
    """A plain copy of a sharded model with its whole weights, on its device, for what one rank runs alone
    (validation, greedy checks, saving). A collective every rank calls; only where `keep` (rank 0) is the copy
    built, the others get the model back. A model that is not sharded is returned itself."""
    from rlearly.lm.model import LlamaLM

    if not is_sharded(model):
        return model
    state = {k: whole(v) for k, v in model.state_dict().items()}
    if not keep:
        return model
    emb = state["model.embed_tokens.weight"]
    copy = LlamaLM(model.cfg, emb.shape[0]).to(emb.device)
    copy.load_state_dict(state)
    return copy


def full_optimizer_state(opt: torch.optim.Optimizer, model: torch.nn.Module) -> torch.optim.Optimizer | dict:
    """What a checkpoint saves of `opt`: the optimizer itself, or for a sharded model its state dict with every
    moment gathered whole (a collective), in the layout one process saves."""
    if not is_sharded(model):
        return opt
    sd = opt.state_dict()
    return {**sd, "state": {i: {k: whole(v) for k, v in st.items()} for i, st in sd["state"].items()}}


def load_weights(model: torch.nn.Module, state: dict) -> None:
    """`model.load_state_dict(state)` from whole tensors; a sharded model's ranks each keep their shard."""
    if not is_sharded(model):
        model.load_state_dict(state)
        return
    from torch.distributed.tensor import distribute_tensor

    own = model.state_dict()
    model.load_state_dict({k: distribute_tensor(v.to(own[k].to_local().device), own[k].device_mesh, own[k].placements)
                           if _is_dtensor(own.get(k)) else v for k, v in state.items()})


def shard_optimizer_state(opt: torch.optim.Optimizer) -> None:
    """After `opt.load_state_dict` from whole tensors: each moment of a sharded parameter cut to its shard
    (a no-op for plain parameters)."""
    for p, st in opt.state.items():
        if _is_dtensor(p):
            from torch.distributed.tensor import distribute_tensor

            for k, v in st.items():
                if torch.is_tensor(v) and not _is_dtensor(v) and v.shape == p.shape:
                    st[k] = distribute_tensor(v.to(p.to_local().device), p.device_mesh, p.placements)
