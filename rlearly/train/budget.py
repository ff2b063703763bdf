"""What a branch will hold in memory and about how long it will compute, said before it starts (issue 39: real
checkpoints bring real sizes). Memory: the fp32 master weights, their gradients, AdamW's two moments, RL's frozen
reference (when its KL term is on) and the KV cache of one rollout batch; checked against what the device has, so a
1B model that cannot fit fails in one line before any step, not with an out-of-memory error an hour in. Activations
are not counted (they scale with `runtime.micro_batches` and `runtime.activation_checkpointing`): the total is a
floor. Time: the branch's matmul FLOPs (rollouts counted at rl.max_new_tokens, SFT at its demos' mean length) at
the matmul rate this device gives now, in the branch's precision: its compute floor, which attention, sampling's
per-token overhead and evaluation add to (benchmarks/README.md measures the share of the floor each stage reaches).
"""
from __future__ import annotations

import functools
from pathlib import Path

import torch

from rlearly.config import Config
from rlearly.errors import ConfigError
from rlearly.lm.runtime import matmul_rate as runtime_matmul_rate

GIB = 2**30
# the recipes that sample rollouts and take GRPO steps, and those that take SFT steps
RL_PARTS = ("rl", "sft_rl", "sft_gold_rl", "parallel", "combined", "interleaved")
SFT_PARTS = ("sft", "sft_gold", "parallel", "combined", "interleaved")


def branch_memory(cfg: Config, model, method: str) -> dict[str, int]:
    """Bytes per part for a branch of `method` (a recipe name) from `model` under `cfg`."""
    params = sum(p.numel() for p in model.parameters())
    m = model.cfg
    rl = method in RL_PARTS
    rows = cfg.rl.prompts_per_step * cfg.rl.group_size
    positions = min(m.max_seq_len, 512 + cfg.rl.max_new_tokens)  # prompts rarely pass 512 tokens
    cache_dtype = 2 if cfg.runtime.dtype == "bf16" and cfg.runtime.device.startswith("cuda") else 4
    parts = {"weights": 4 * params, "gradients": 4 * params, "AdamW moments": 8 * params,
             "RL reference": 4 * params if rl and cfg.rl.kl_coef > 0 else 0,
             "KV cache (one rollout batch)": (2 * m.n_layer * rows * m.n_kv_head * m.head_dim * positions * cache_dtype
                                              if rl else 0)}
    if method == "parallel":  # parallel averaging keeps an RL and an SFT copy with their optimizers
        parts["second copy (parallel)"] = 16 * params
    return {k: v for k, v in parts.items() if v}


def device_memory(device: torch.device) -> int | None:
    """Bytes free on `device` (a GPU: what CUDA reports free; the CPU: MemAvailable), None when unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_fits(cfg: Config, model, method: str, device: torch.device, log=print) -> dict[str, int]:
    """Print the branch's memory before it starts; a ConfigError when it cannot fit the device."""
    parts = branch_memory(cfg, model, method)
    total, free = sum(parts.values()), device_memory(device)
    n = sum(p.numel() for p in model.parameters())
    said = ", ".join(f"{k} {v / GIB:.2f}" for k, v in parts.items())
    log(f"memory: {method} on a {n / 1e6:,.1f}M-parameter model needs at least {total / GIB:.2f} GiB ({said}; "
        f"activations not counted)" + (f"; {device} has {free / GIB:.1f} GiB free" if free else ""))
    if free is not None and total > free:
        raise ConfigError(f"{method} on this {n / 1e6:,.0f}M-parameter model needs at least {total / GIB:.1f} GiB "
                          f"({said}) and {device} has {free / GIB:.1f} GiB free; use a larger device, "
                          "rl.prompts_per_step or rl.group_size smaller, or rl.kl_coef=0 (no reference copy)")
    return parts


def matmul_params(model) -> int:
    """Weights every token multiplies through (each linear layer, the LM head included; not the embedding lookup)."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


@functools.lru_cache(maxsize=8)
def matmul_rate(device: str, dtype: str) -> float:
    """FLOP/s of a 512² matmul on `device` in `dtype`, measured once a process (~50 ms: lm.runtime.matmul_rate)."""
    return runtime_matmul_rate(device, dtype, seconds=0.05)


def branch_flops(cfg: Config, model, method: str, steps: int, sft_tokens: float = 0.0) -> float:
    """Matmul FLOPs of `steps` steps of `method`: an RL step samples and updates on prompts x group rollouts of
    rl.max_new_tokens (2N a sampled token, 6N a trained one, 2N more for the reference), an SFT step trains on
    sft.batch_size demos of `sft_tokens` tokens each (6N a token); parallel averaging and its kin do both."""
    n = matmul_params(model)
    rl = method in RL_PARTS
    sft = method in SFT_PARTS
    per = 0.0
    if rl:
        tokens = cfg.rl.prompts_per_step * cfg.rl.group_size * cfg.rl.max_new_tokens
        per += tokens * n * (2 + 6 + (2 if cfg.rl.kl_coef > 0 else 0))
    if sft:
        per += cfg.sft.batch_size * sft_tokens * 6 * n
    return per * steps


def say_time(cfg: Config, model, method: str, steps: int, device: torch.device, dtype: str, sft_tokens: float,
             log=print) -> float:
    """Print the branch's compute floor (branch_flops at matmul_rate); returns it in seconds."""
    flops = branch_flops(cfg, model, method, steps, sft_tokens)
    rate = matmul_rate(str(device), dtype)
    seconds = flops / rate
    log(f"time: {method}, {steps} steps, {flops / 1e12:,.2f} TFLOP of matmuls: at least {_clock(seconds)} at this "
        f"device's {rate / 1e9:,.0f} GFLOP/s ({dtype}); attention, sampling overhead and validation come on top")
    return seconds


def _clock(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h"
