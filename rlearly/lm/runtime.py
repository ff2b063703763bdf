"""The runtime: the device and precision a process computes in, resolved once from `cfg.runtime`.

    rt = runtime.resolve(cfg.runtime)  # "auto": cuda where torch sees a GPU (cuda:LOCAL_RANK under torchrun)
                                       # (device kinds: DEVICES, one registered unit each)
    model = rt.place(model)            # fp32 master weights on the device, before any optimizer is built
    x, y = rt.to((x, y))               # batches are built on the CPU and moved once
    with rt.autocast():                # bf16: matmuls in bf16; norms, log-probs and losses stay in fp32
        loss = model(x, y)

Stage runners (pretraining, branches, evaluation) place the model; everything that builds tensors for a
model builds them on `device_of(model)` or moves them with `to`. On this machine the defaults (auto -> cpu,
fp32) change nothing: `place`, `to` and `autocast` are the identity, bit for bit. Checkpoints always hold
fp32 CPU tensors (rlearly.lm.checkpoint moves them).
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass
from typing import Callable

import torch

from rlearly.config import RuntimeConfig
from rlearly.errors import ConfigError
from rlearly.machine import fast_cpu_bf16


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    dtype: str = "fp32"  # "fp32" | "bf16" (autocast)
    activation_checkpointing: bool = False
    device_name: str = "cpu"  # what meta.json records (a GPU's model name)

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
        return {"device": str(self.device), "device_name": self.device_name, "dtype": self.dtype}


@dataclass(frozen=True)
class Device:
    """A kind of device rlearly computes on, one registered unit (docs/EXTENDING.md): `runtime.device` names it as
    "<name>" or "<name>:<index>"; a bare name under torchrun is the process's own device (<name>:LOCAL_RANK)."""
    name: str
    available: Callable[[], bool]  # can this process use one
    torch_device: Callable[[int], torch.device]  # index -> where tensors go
    count: Callable[[], int] = lambda: 1  # how many this machine has
    indexed: bool = True  # False: one device per machine, an index means nothing (the CPU)
    bf16: Callable[[torch.device], bool] = lambda d: True  # does it compute bf16 (runtime.dtype=bf16)
    fast_bf16: Callable[[torch.device], bool] = lambda d: False  # is bf16 faster than fp32 there (runtime.dtype=auto)
    label: Callable[[torch.device], str] = str  # what meta.json records as the device's name
    missing: Callable[[], str] = lambda: ""  # why none is available, for the error


DEVICES: dict[str, Device] = {}


def register_device(device: Device) -> Device:
    if device.name in DEVICES or device.name == "auto":
        raise ValueError(f"a device kind named {device.name!r} is already registered")
    DEVICES[device.name] = device
    return device


register_device(Device("cpu", lambda: True, lambda i: torch.device("cpu"), indexed=False,
                       fast_bf16=lambda d: fast_cpu_bf16(), label=lambda d: "cpu"))
register_device(Device("cuda", torch.cuda.is_available, lambda i: torch.device("cuda", i), torch.cuda.device_count,
                       bf16=lambda d: torch.cuda.is_bf16_supported(),
                       fast_bf16=lambda d: torch.cuda.is_bf16_supported(), label=torch.cuda.get_device_name,
                       missing=lambda: f"this torch sees no GPU (torch {torch.__version__}, cuda {torch.version.cuda})"))


def device_kind(name: str) -> Device:
    """The registered kind of a runtime.device value ("auto": the first accelerator available, else the CPU)."""
    if name == "auto":
        return next((d for d in DEVICES.values() if d.indexed and d.available()), DEVICES["cpu"])
    kind = name.partition(":")[0]
    if kind not in DEVICES:
        raise ConfigError(f"runtime.device={name!r}: unknown device kind {kind!r}; known: auto, "
                          f"{', '.join(DEVICES)} (and <kind>:<index>)")
    return DEVICES[kind]


def resolve(rc: RuntimeConfig | None = None) -> Runtime:
    """A Runtime for `rc` (default: auto device, fp32). A device this machine lacks is a ConfigError, at once."""
    rc = rc or RuntimeConfig()
    dev = device_kind(rc.device)
    if not dev.available():
        raise ConfigError(f"runtime.device={rc.device} but {dev.missing() or f'this machine has no {dev.name} device'}; "
                          "use runtime.device=cpu or auto")
    index = rc.device.partition(":")[2]
    index = int(index) if index else int(os.environ.get("LOCAL_RANK", "0"))  # one device per process under torchrun
    if dev.indexed and index >= dev.count():
        raise ConfigError(f"runtime.device={rc.device}: this machine has {dev.count()} {dev.name} device(s)")
    where = dev.torch_device(index if dev.indexed else 0)
    if rc.dtype == "bf16" and not dev.bf16(where):
        raise ConfigError(f"runtime.dtype=bf16 but this {dev.name} device has no bf16 support; use runtime.dtype=fp32")
    dtype = ("bf16" if dev.fast_bf16(where) else "fp32") if rc.dtype == "auto" else rc.dtype
    return Runtime(where, dtype, rc.activation_checkpointing, dev.label(where))


def resolve_dtype(device: str = "auto", dtype: str = "auto") -> str:
    """The precision `runtime.dtype` means on this machine for `runtime.device`: auto is bf16 where the device
    computes it fast (rlearly.machine.fast_cpu_bf16 on a CPU, bf16 support on a GPU), else fp32."""
    return resolve(RuntimeConfig(device=device, dtype=dtype)).dtype


def matmul_rate(device: str = "cpu", dtype: str = "fp32", size: int = 512, seconds: float = 0.3) -> float:
    """FLOP/s of a size² matmul on `device` in `dtype` (bf16 under autocast) at the process's torch threads: the median
    of products repeated for `seconds` (at least 3), measured now. What the study's time estimate (study.estimate)
    and a branch's compute floor (train.budget) scale by."""
    import statistics
    import time

    dev = torch.device(device)
    a, b = torch.randn(size, size, device=dev), torch.randn(size, size, device=dev)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)  # a GPU runs ahead
    times = []
    with Runtime(dev, dtype).autocast():
        a @ b
        sync()
        t_end = time.perf_counter() + seconds
        while time.perf_counter() < t_end or len(times) < 3:
            t0 = time.perf_counter()
            a @ b
            sync()
            times.append(time.perf_counter() - t0)
    return 2 * size ** 3 / statistics.median(times)


def place(model: torch.nn.Module, device: str = "auto") -> torch.nn.Module:
    """The model on `device` (a runtime.device value: auto, cpu, cuda[:i]) in fp32, for evaluation and sampling."""
    return resolve(RuntimeConfig(device=device)).place(model)


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
