"""Checkpoints in Hugging Face Llama layout, with provenance, written atomically and loaded without pickle.

A checkpoint directory holds `config.json`, `model.safetensors`, `generation_config.json`, the tokenizer
files, rlearly's resolved `config.yaml`, optionally the trainer state in `trainer/` (`optimizer.safetensors` +
`trainer_state.json`: out of the top level, where vLLM would read every `*.safetensors` as weights), and
`meta.json` (lineage, and the size and sha256 of every file, written last). The directory loads unchanged in
transformers and vLLM.
It is built in a hidden temporary directory and renamed into place, so a crash never leaves a
half-written directory under the final name; a truncated or edited file is caught on load. A write that
fails (disk full) raises StorageError naming the checkpoint, and leaves the earlier one in place.
Nothing here unpickles: weights and optimizer state are safetensors, the rest JSON; a pickle file
(`pytorch_model.bin`) in a checkpoint directory is never read.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

import rlearly
from rlearly.config import Config, ModelConfig
from rlearly.errors import CheckpointError, StorageError
from rlearly.files import git_commit, sha256_file
from rlearly.lm.model import LlamaLM
from rlearly.lm.tokenizer import Tokenizer

META = "meta.json"
TRAINER = "trainer"  # the subfolder with the optimizer and trainer state


def trainer_dir(path: str | Path) -> Path:
    """Where a checkpoint's trainer state lies: `trainer/`, or the top level in checkpoints written before it."""
    path = Path(path)
    return path / TRAINER if (path / TRAINER / "trainer_state.json").is_file() else path


def provenance() -> dict:
    """Package version and git commit of the code that produced an artifact."""
    return {"version": rlearly.__version__, "git_commit": git_commit(),
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def hf_config(cfg: ModelConfig, tok: Tokenizer) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": tok.vocab_size, "hidden_size": cfg.n_embd, "intermediate_size": cfg.ffn_hidden,
        "num_hidden_layers": cfg.n_layer, "num_attention_heads": cfg.n_head,
        "num_key_value_heads": cfg.n_kv_head, "head_dim": cfg.head_dim, "hidden_act": "silu",
        "max_position_embeddings": cfg.max_seq_len, "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta, "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "tie_word_embeddings": cfg.tie_embeddings, "attention_bias": False, "mlp_bias": False,
        "initializer_range": cfg.init_std, "bos_token_id": tok.bos_id, "eos_token_id": tok.eos_id,
        "pad_token_id": tok.pad_id, "torch_dtype": "float32", "use_cache": True,
    }


def model_config_from_hf(hf: dict, where: Path) -> ModelConfig:
    kind = hf.get("model_type")
    if kind != "llama":
        why = MISSING_ARCHITECTURE.get(kind, "")
        raise CheckpointError(f"{where}: model_type is {kind!r}, rlearly loads only 'llama'" + (f" ({why})" if why else ""))
    for k in ("hidden_act", "attention_bias", "mlp_bias"):
        if hf.get(k, {"hidden_act": "silu"}.get(k, False)) not in ("silu", False):
            raise CheckpointError(f"{where}: unsupported {k}={hf[k]!r} (rlearly's Llama has silu and no biases)")
    missing = [k for k in _HF_REQUIRED if not isinstance(hf.get(k), int) or isinstance(hf.get(k), bool)]
    if missing:
        raise CheckpointError(f"{where}/config.json lacks integer field(s) {missing}")
    theta = hf.get("rope_theta") or (hf.get("rope_parameters") or {}).get("rope_theta", 10000.0)
    n_head = hf["num_attention_heads"]
    return ModelConfig(n_layer=hf["num_hidden_layers"], n_head=n_head, n_kv_head=hf.get("num_key_value_heads", n_head),
                       n_embd=hf["hidden_size"], ffn_hidden=hf["intermediate_size"],
                       max_seq_len=hf["max_position_embeddings"], rope_theta=float(theta),
                       norm_eps=hf.get("rms_norm_eps", 1e-5), tie_embeddings=hf.get("tie_word_embeddings", False),
                       init_std=hf.get("initializer_range", 0.02))


# Llama relatives and what rlearly's Llama lacks to load them (the paper's model is OLMo2-1B)
MISSING_ARCHITECTURE = {
    "olmo2": "OLMo2 needs QK-norm (RMSNorm on queries and keys) and norms after attention and MLP instead of before",
    "olmo": "OLMo needs non-parametric layer norm and QKV clipping",
    "mistral": "Mistral needs sliding-window attention",
    "qwen2": "Qwen2 needs biases on the query, key and value projections",
    "gemma": "Gemma needs GeGLU, (1 + weight) RMSNorm and scaled embeddings",
}

_HF_REQUIRED = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "max_position_embeddings")


def save_checkpoint(path: str | Path, model: LlamaLM, tok: Tokenizer, meta: dict, config: Config | None = None,
                    optimizers: dict[str, torch.optim.Optimizer | dict] | None = None, trainer_state: dict | None = None) -> Path:
    """Write a checkpoint atomically. `meta` is lineage (parent, method, step, tokens, seed, ...);
    provenance and file hashes are added. `optimizers` (optimizers, or their state dicts) + `trainer_state` make
    the run resumable."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    _remove_leftovers(path)
    tmp.mkdir()
    try:
        _write_json(tmp / "config.json", hf_config(model.cfg, tok))
        _write_json(tmp / "generation_config.json", {"bos_token_id": tok.bos_id, "eos_token_id": tok.eos_id,
                                                      "pad_token_id": tok.pad_id, "do_sample": True,
                                                      "temperature": 0.6, "top_p": 0.95})
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}  # fp32 CPU, wherever trained
        if model.cfg.tie_embeddings:
            state.pop("lm_head.weight")  # safetensors stores no aliases; HF re-ties from config.json
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        tok.save(tmp, model.cfg.max_seq_len)
        if config is not None:
            (tmp / "config.yaml").write_text(config.to_yaml())
        if optimizers:
            tensors, groups = {}, {}
            for name, opt in optimizers.items():
                t, g = _flatten_optimizer(opt if isinstance(opt, dict) else opt.state_dict(), name)
                tensors.update(t)
                groups[name] = g
            (tmp / TRAINER).mkdir()
            save_file(tensors, str(tmp / TRAINER / "optimizer.safetensors"))
            _write_json(tmp / TRAINER / "trainer_state.json", {"optimizer_groups": groups, **(trainer_state or {})})
        files = {p.relative_to(tmp).as_posix(): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
                 for p in sorted(tmp.rglob("*")) if p.is_file()}
        _write_json(tmp / META, {**meta, **provenance(), "files": files})
        _fsync_dir(tmp)
        _replace_dir(tmp, path)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        err = os_error(e)
        if err is not None:
            raise StorageError.from_os(path, err) from e
        raise
    return path


def os_error(e: BaseException) -> OSError | None:
    """The OSError behind a failed write: `e` itself, or the one safetensors reports only as text
    ("I/O error: No space left on device (os error 28)"); None for any other exception."""
    if isinstance(e, OSError):
        return e
    m = re.search(r"\(os error (\d+)\)", str(e)) if isinstance(e, Exception) else None
    return OSError(int(m.group(1)), os.strerror(int(m.group(1)))) if m else None


def read_meta(path: str | Path, verify: bool = True) -> dict:
    """meta.json of a checkpoint; with `verify`, every listed file is checked for size and sha256."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint not found: {path}")
    mpath = path / META
    if not mpath.is_file():
        raise CheckpointError(f"{path} is not a complete rlearly checkpoint (no {META})")
    meta = _read_json(mpath)
    if verify:
        files = meta.get("files", {})
        if not isinstance(files, dict):
            raise CheckpointError(f"{mpath} is corrupt ('files' is not a mapping)")
        for name, info in files.items():
            f = path / name
            if not f.is_file():
                raise CheckpointError(f"{path}: file {name} listed in {META} is missing")
            if (not isinstance(info, dict) or f.stat().st_size != info.get("bytes")
                    or sha256_file(f) != info.get("sha256")):
                raise CheckpointError(f"{f} is corrupt or truncated (size/sha256 differ from {META})")
    return meta


def checkpoint_id(path) -> str:
    """Stable id of a checkpoint's weights: the first 16 hex of model.safetensors' sha256 (from meta.json,
    or hashed here for a plain HF directory). Two copies of the same weights share their samples."""
    path = Path(path)
    if (path / META).is_file():
        sha = read_meta(path, verify=False).get("files", {}).get("model.safetensors", {}).get("sha256")
        if sha:
            return sha[:16]
    f = path / "model.safetensors"
    if not f.is_file():
        raise CheckpointError(f"checkpoint not found: {path} (no model.safetensors)")
    return sha256_file(f)[:16]


def load_checkpoint(path: str | Path, verify: bool = True) -> tuple[LlamaLM, Tokenizer, dict]:
    """Load (model, tokenizer, meta) from an rlearly or plain HF Llama directory (no pickle anywhere)."""
    path = Path(path)
    meta = read_meta(path, verify) if (path / META).exists() or not path.is_dir() else {}
    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise CheckpointError(f"{path} is not a checkpoint (needs config.json and model.safetensors; "
                              "pickle files such as pytorch_model.bin are never loaded)")
    hf = _read_json(path / "config.json")
    mcfg = model_config_from_hf(hf, path)
    tok = Tokenizer.load(path)
    model = LlamaLM(mcfg, hf["vocab_size"])
    state = _load_tensors(path / "model.safetensors")
    if mcfg.tie_embeddings and "model.embed_tokens.weight" in state:
        state.setdefault("lm_head.weight", state["model.embed_tokens.weight"])
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # a shape mismatch: weights of another size than config.json says
        first = next((l.strip().rstrip(".") for l in str(e).splitlines() if "size mismatch" in l), "shapes differ")
        raise CheckpointError(f"{path}: weights do not fit the architecture in config.json ({first})") from None
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not fit the architecture in config.json "
                              f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model, tok, meta


def load_trainer_state(path: str | Path, optimizers: dict[str, torch.optim.Optimizer]) -> dict:
    """Restore optimizer states in place and return trainer_state.json (step, rng, ...)."""
    path, where = Path(path), trainer_dir(path)
    if not (where / "trainer_state.json").is_file():
        raise CheckpointError(f"{path} holds no trainer state to resume from")
    state = _read_json(where / "trainer_state.json")
    tensors = _load_tensors(where / "optimizer.safetensors")
    for name, opt in optimizers.items():
        groups = state.get("optimizer_groups", {}).get(name)
        if groups is None:
            raise CheckpointError(f"{where / 'trainer_state.json'} holds no state for optimizer {name!r}; "
                                  "it was saved by another recipe")
        try:
            opt.load_state_dict(_unflatten_optimizer(tensors, groups, name))
        except (ValueError, KeyError, RuntimeError) as e:
            raise CheckpointError(f"{path}: optimizer state {name!r} does not fit this model "
                                  f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    return state


def load_config_of(path: str | Path) -> Config:
    from rlearly.config import load_config
    f = Path(path) / "config.yaml"
    if not f.is_file():
        raise CheckpointError(f"{path} has no config.yaml")
    return load_config(f)


def _flatten_optimizer(sd: dict, prefix: str) -> tuple[dict, list]:
    tensors = {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            t = v if torch.is_tensor(v) else torch.tensor(v)
            tensors[f"{prefix}.{idx}.{k}"] = t.detach().cpu().contiguous()
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, groups


def _unflatten_optimizer(tensors: dict, groups: list, prefix: str) -> dict:
    state: dict[int, dict] = {}
    for key, t in tensors.items():
        p, idx, k = key.split(".", 2)
        if p == prefix:
            state.setdefault(int(idx), {})[k] = t
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in groups]
    return {"state": state, "param_groups": groups}


def _read_json(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{path} is corrupt (not valid JSON)") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} is corrupt (a JSON object expected, got {type(obj).__name__})")
    return obj


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file (never a pickle); an unreadable one is a CheckpointError naming it."""
    if not path.is_file():
        raise CheckpointError(f"{path} is missing")
    try:
        return load_file(str(path))
    except Exception as e:  # SafetensorError (truncated, bad header) has a long Rust text: name the file
        first = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise CheckpointError(f"{path} is corrupt or not a safetensors file ({first})") from None


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")


def _fsync_dir(d: Path) -> None:
    """fsync every file under `d` (subfolders included) before the directory is renamed into place."""
    for p in d.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())


def _remove_leftovers(path: Path) -> None:
    """Delete the hidden temp and moved-aside copies of `path` that a killed save left behind (one full
    checkpoint each), except those of a process still running."""
    for d in [*path.parent.glob(f".{path.name}.tmp-*"), *path.parent.glob(f".{path.name}.old-*")]:
        pid = d.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or (int(pid) != os.getpid() and _alive(int(pid))):
            continue
        shutil.rmtree(d, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _replace_dir(tmp: Path, final: Path) -> None:
    """Rename tmp to final; an existing final is moved aside first and removed only afterwards
    (and moved back if the second rename fails, so the finished one is never lost to an error)."""
    old = None
    if final.exists():
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    try:
        os.replace(tmp, final)
    except BaseException:
        if old is not None and not final.exists():
            os.replace(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
