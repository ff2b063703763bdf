"""Checkpoints in Hugging Face layout (Llama's, or the model family's: rlearly.lm.families), with provenance, written atomically and loaded without pickle.

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
from rlearly.lm.families import family_of_hf, get_family
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
    """config.json for a model of `cfg.model.family`, in that family's Hugging Face layout."""
    return get_family(cfg.family).hf_config(cfg, tok)


def model_config_from_hf(hf: dict, where: Path) -> ModelConfig:
    """The ModelConfig of a config.json: its model_type names the family (rlearly.lm.families)."""
    return family_of_hf(hf, str(where)).model_config(hf, str(where))


def hf_state(model: LlamaLM) -> dict:
    """The model's weights under its family's Hugging Face names (GPT-NeoX: q/k/v fused, new tensors), without
    lm_head.weight when the embeddings are tied (safetensors stores no aliases; Hugging Face and vLLM re-tie it)."""
    state = model.state_dict()
    if model.cfg.tie_embeddings:
        state.pop("lm_head.weight")
    return get_family(model.cfg.family).to_hf(state, model.cfg)


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
        state = {k: v.detach().cpu().contiguous() for k, v in hf_state(model).items()}  # fp32 CPU, wherever trained
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
    model = load_model(path)
    return model, Tokenizer.load(path), meta


def load_model(path: str | Path) -> LlamaLM:
    """The model of a checkpoint directory (config.json + model.safetensors, any registered family's layout),
    without its tokenizer: what a plain Hugging Face directory written by transformers holds."""
    path = Path(path)
    hf = _read_json(path / "config.json")
    mcfg = model_config_from_hf(hf, path)
    model = LlamaLM(mcfg, hf["vocab_size"])
    state = get_family(mcfg.family).from_hf(_load_tensors(path / "model.safetensors"), mcfg)
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
    return model


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
