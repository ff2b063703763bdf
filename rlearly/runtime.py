"""The runtime: the device and precision a process computes in, resolved once from `cfg.runtime`.

    rt = runtime.resolve(cfg.runtime)  # "auto": cuda where torch sees a GPU (cuda:LOCAL_RANK under torchrun)
    model = rt.place(model)            # fp32 master weights on the device, before any optimizer is built
    x, y = rt.to((x, y))               # batches are built on the CPU and moved once
    with rt.autocast():                # bf16: matmuls in bf16; norms, log-probs and losses stay in fp32
        loss = model(x, y)

Stage runners (pretraining, branches, evaluation) place the model; everything that builds tensors for a
model builds them on `device_of(model)` or moves them with `to`. On this machine the defaults (auto -> cpu,
fp32) change nothing: `place`, `to` and `autocast` are the identity, bit for bit. Checkpoints always hold
fp32 CPU tensors (rlearly.checkpoint moves them).
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass

import torch

from rlearly.config import RuntimeConfig
from rlearly.errors import ConfigError


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    dtype: str = "fp32"  # "fp32" | "bf16" (autocast)
    activation_checkpointing: bool = False

    def place(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model on the device, its weights kept in fp32 (bf16 is autocast's, not the weights'), with
        activation checkpointing per block if asked for."""
        model = model.to(self.device)
        if self.activation_checkpointing:
            model.activation_checkpointing = True
        return model

    def to(self, obj):
        """Tensors (also inside tuples, lists, dicts and dataclasses) on the device; anything else as is."""
        return to_device(obj, self.device)

    def autocast(self):
        """bf16 autocast for dtype bf16 (a no-op context for fp32)."""
        if self.dtype == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def describe(self) -> dict:
        """What meta.json records: the device the artifact was computed on, and its precision."""
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"
        return {"device": str(self.device), "device_name": name, "dtype": self.dtype}


def resolve(rc: RuntimeConfig | None = None) -> Runtime:
    """A Runtime for `rc` (default: auto device, fp32). cuda without a GPU is a ConfigError, at once."""
    rc = rc or RuntimeConfig()
    want = rc.device
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"runtime.device={rc.device} but this torch sees no GPU "
                              f"(torch {torch.__version__}, cuda {torch.version.cuda}); use runtime.device=cpu or auto")
        if want == "cuda":  # one process per GPU under torchrun
            want = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        if torch.device(want).index >= torch.cuda.device_count():
            raise ConfigError(f"runtime.device={rc.device}: this machine has {torch.cuda.device_count()} GPU(s)")
    if rc.dtype == "bf16" and want.startswith("cuda") and not torch.cuda.is_bf16_supported():
        raise ConfigError("runtime.dtype=bf16 but this GPU has no bf16 support; use runtime.dtype=fp32")
    return Runtime(torch.device(want), rc.dtype, rc.activation_checkpointing)


def device_of(model: torch.nn.Module) -> torch.device:
    """Where a model's weights are (a model without parameters: the CPU)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def to_device(obj, device: torch.device):
    """`obj` with every tensor in it on `device` (tuples, lists, dicts and dataclasses are rebuilt)."""
    if torch.is_tensor(obj):
        return obj.to(device, non_blocking=device.type == "cuda")  # to the GPU: may overlap; back: synchronous
    if isinstance(obj, tuple):
        return tuple(to_device(o, device) for o in obj)
    if isinstance(obj, list):
        return [to_device(o, device) for o in obj]
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: to_device(getattr(obj, f.name), device)
                                           for f in dataclasses.fields(obj) if f.init})
    return obj
