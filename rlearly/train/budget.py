"""What a branch will hold in memory, said before it starts (issue 39: real checkpoints bring real sizes): the
fp32 master weights, their gradients, AdamW's two moments, RL's frozen reference (when its KL term is on) and the KV
cache of one rollout batch; checked against what the device has, so a 1B model that cannot fit fails in one line
before any step, not with an out-of-memory error an hour in. Activations are not counted (they scale with
`runtime.micro_batches` and `runtime.activation_checkpointing`): the total is a floor.
"""
from __future__ import annotations

from pathlib import Path

import torch

from rlearly.config import Config
from rlearly.errors import ConfigError

GIB = 2**30


def branch_memory(cfg: Config, model, method: str) -> dict[str, int]:
    """Bytes per part for a branch of `method` (a recipe name) from `model` under `cfg`."""
    params = sum(p.numel() for p in model.parameters())
    m = model.cfg
    rl = method in ("rl", "sft_rl", "sft_gold_rl", "parallel", "combined", "interleaved")
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
