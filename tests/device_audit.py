"""A second device on a machine that has only a CPU, to catch tensors built off the runtime device.

On a GPU, a tensor made by `torch.zeros(n)` (no device) or `torch.from_numpy` lives on the CPU, and the first
operation that meets a tensor on the GPU fails. On a CPU-only machine both are the CPU and nothing fails, so a
missing `.to(device)` hides until someone runs on a GPU. `HostAudit` brings the failure here: while it is
active, every tensor made by a factory without a `device` (and every `from_numpy`) is marked *host*, marks
spread through operations on host tensors, `.to(device)` clears them, and an operation that takes a host
tensor together with a device tensor (neither a 0-dim scalar, which CUDA mixes freely) is recorded, where it
happened, as a violation. Copies into a tensor (`x[i] = host`, `copy_`) are transfers, as on a GPU.
"""
from __future__ import annotations

import traceback
import weakref

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

FACTORIES = {torch.tensor, torch.as_tensor, torch.zeros, torch.ones, torch.full, torch.empty, torch.arange,
             torch.rand, torch.randn, torch.randint, torch.randperm, torch.eye, torch.linspace}
LIKE = {torch.zeros_like, torch.ones_like, torch.full_like, torch.empty_like, torch.rand_like, torch.randn_like,
        torch.Tensor.new_zeros, torch.Tensor.new_ones, torch.Tensor.new_full, torch.Tensor.new_empty,
        torch.Tensor.new_tensor}
TRANSFERS = {torch.Tensor.__setitem__, torch.Tensor.copy_}


def _device_arg(func, args, kwargs):
    """The device a `.to(...)` call names, or None (a dtype-only cast)."""
    for a in list(args[1:]) + [kwargs.get("device")]:
        if isinstance(a, (str, torch.device)):
            return a
    return None


class HostAudit(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.host: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self.violations: list[str] = []

    def _is_host(self, t) -> bool:
        return self.host.get(id(t)) is t

    def _mark(self, out, host: bool):
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                if host:
                    self.host[id(t)] = t
                elif self._is_host(t):
                    del self.host[id(t)]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        if func in FACTORIES:
            self._mark(out, kwargs.get("device") is None)
        elif func in LIKE:
            self._mark(out, kwargs.get("device") is None and self._is_host(args[0]))
        elif func is torch.Tensor.to and _device_arg(func, args, kwargs) is not None:
            self._mark(out, False)
        elif func in TRANSFERS or func is torch.Tensor.cpu:
            self._mark(out, func is torch.Tensor.cpu)
        elif tensors:
            big = [t for t in tensors if t.dim() > 0]
            host = [self._is_host(t) for t in big]
            if any(host) and not all(host):
                self.violations.append(f"{getattr(func, '__qualname__', func)} mixes a host tensor with device "
                                       f"tensors at {_where()}")
            self._mark(out, bool(big) and all(host))
        return out

    def __enter__(self):
        self._from_numpy = torch.from_numpy
        audit = self

        def from_numpy(a):
            t = audit._from_numpy(a)
            audit.host[id(t)] = t
            return t
        torch.from_numpy = from_numpy
        return super().__enter__()

    def __exit__(self, *exc):
        torch.from_numpy = self._from_numpy
        return super().__exit__(*exc)


def _where() -> str:
    """The innermost frame in rlearly's own code."""
    for f in reversed(traceback.extract_stack()[:-2]):
        if "/rlearly/" in f.filename and "/tests/" not in f.filename:
            return f"{f.filename.rsplit('/rlearly/', 1)[1]}:{f.lineno} ({f.line})"
    return "outside rlearly"
