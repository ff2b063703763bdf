"""A study over a checkpoint suite: instead of a pretraining run, the intermediate checkpoints researchers already
have (OLMo-2's stage-1 revisions, Pythia's `stepN`, SmolLM3's, local directories), named in the spec:

    base:
      model: allenai/OLMo-2-0425-1B          # a hub id; left out: `revisions` are local directories
      revisions: [stage1-step1000-tokens5B, stage1-step10000-tokens42B]
      tokens: [5000000000, 42000000000]      # optional: pretraining tokens of each (default: read from the name)

Each revision is resolved once, when the study is loaded: a hub revision to the commit it points to now (a
revision name can move) and its weights' id from the hub's file metadata, a local directory to the sha256 of its
weights; without a hub, a hub id fails there, in one line, before any node runs. A node's lineage and hash hold
the model id, that commit and the weights' id (`branch.base`), never a directory path. The study's first nodes
copy each revision into an rlearly checkpoint (its own config.json, weights, tokenizer, meta.json with that
lineage), which the study's branches and evaluations then read like any pretraining checkpoint.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from rlearly.errors import ConfigError

_TOKENS = re.compile(r"tokens?[-_]?(\d+(?:\.\d+)?)([KMBT]?)", re.IGNORECASE)
_SCALE = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}


@dataclass
class BasePlan:
    model: str = ""  # a hub id; "": the revisions are local directories (relative to the spec's folder)
    revisions: list[str] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)  # pretraining tokens of each revision (default: from its name)
    sources: list["Source"] = field(default_factory=list)  # resolved by `resolve`


@dataclass(frozen=True)
class Source:
    name: str  # the checkpoint's name in the study: "<revision or directory name>-<weights' id>"
    model: str  # hub id ("" for a local directory)
    revision: str
    commit: str  # the commit the revision resolved to ("" for a local directory)
    checkpoint_id: str  # the weights' id (rlearly.lm.checkpoint.checkpoint_id: sha256 of the weights, 16 hex)
    tokens: int
    location: str = ""  # a local directory (not part of any hash); hub revisions are fetched by their node

    def identity(self) -> str:
        """What a branch's hash holds (`branch.base`): model id, commit and weights, never a path."""
        return f"{self.model or 'local'}@{self.commit or '-'}#{self.checkpoint_id}"

    def lineage(self) -> dict:
        return {"base_model": self.model or None, "revision": self.revision, "commit": self.commit or None,
                "source_id": self.checkpoint_id}


def parse_base(raw, where: str = "study base") -> BasePlan | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - {"model", "revisions", "tokens"}:
        raise ConfigError(f"{where} must be a mapping with model, revisions and (optionally) tokens, got {raw!r}")
    revs, tokens = raw.get("revisions"), raw.get("tokens") or []
    if not isinstance(revs, list) or not revs or not all(isinstance(r, str) and r for r in revs) \
            or len(set(revs)) != len(revs):
        raise ConfigError(f"{where}.revisions must be a list of distinct revision names or directories, got {revs!r}")
    if tokens and (len(tokens) != len(revs) or not all(isinstance(t, int) and t >= 0 for t in tokens)):
        raise ConfigError(f"{where}.tokens must give one non-negative integer per revision ({len(revs)}), got {tokens!r}")
    return BasePlan(str(raw.get("model") or ""), list(revs), list(tokens))


def tokens_of(revision: str, index: int) -> int:
    """Pretraining tokens a revision's name states ("stage1-step1000-tokens5B" -> 5e9); else its index."""
    m = _TOKENS.search(revision)
    return int(float(m.group(1)) * _SCALE[m.group(2).upper()]) if m else index


def resolve(plan: BasePlan, spec_dir: Path) -> None:
    """Fill plan.sources: every revision's commit and weights' id (hub: its metadata; local: its files)."""
    from rlearly.lm.checkpoint import checkpoint_id

    sources = []
    for i, rev in enumerate(plan.revisions):
        tokens = plan.tokens[i] if plan.tokens else tokens_of(rev, i)
        if plan.model:
            commit, cid = _hub_revision(plan.model, rev)
            sources.append(Source(f"{_slug(rev)}-{cid[:12]}", plan.model, rev, commit, cid, tokens))
            continue
        path = (spec_dir / rev).resolve() if not Path(rev).is_absolute() else Path(rev)
        if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
            raise ConfigError(f"study base.revisions: {rev!r} is not a checkpoint directory (config.json and "
                              f"model.safetensors in {path}); name base.model for hub revisions")
        cid = checkpoint_id(path)
        sources.append(Source(f"{_slug(path.name)}-{cid[:12]}", "", rev, "", cid, tokens, str(path)))
    plan.sources = sources


def _hub_revision(model: str, revision: str) -> tuple[str, str]:
    """(commit, weights' id) of a hub revision, from the hub's metadata (nothing downloaded); offline, or without
    the hub, one clear error."""
    from rlearly import hub

    if hub.offline():
        raise ConfigError(f"study base.model {model!r} is a hub id and HF_HUB_OFFLINE is set: its revisions cannot be "
                          "resolved; use local directories (base.revisions without base.model)")
    try:
        hub.require(f"study base.model {model!r}")
    except Exception as e:
        raise ConfigError(str(e).split("; pass a local")[0] + "; use local directories (base.revisions without "
                          "base.model)") from None
    from huggingface_hub import HfApi

    try:
        info = HfApi().model_info(model, revision=revision, files_metadata=True, timeout=30)
    except Exception as e:
        raise ConfigError(f"study base: {model}@{revision} cannot be resolved ({type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''})") from None
    weights = sorted((s.rfilename, s.lfs.sha256 if s.lfs else "") for s in info.siblings
                     if s.rfilename.endswith(".safetensors"))
    if not weights:
        raise ConfigError(f"study base: {model}@{revision} has no .safetensors weights (pickle files are never read)")
    cid = weights[0][1][:16] if [w[0] for w in weights] == ["model.safetensors"] else hashlib.sha256(
        repr(weights).encode()).hexdigest()[:16]
    return info.sha, cid


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:60]


def materialize(src: Source, out: Path, config) -> Path:
    """Copy a suite revision into an rlearly checkpoint at `out` (its weights in its family's layout, tokenizer,
    config.yaml with the checkpoint's own model section, meta.json with its lineage and pretraining tokens)."""
    import dataclasses

    from rlearly.files import write_atomic
    from rlearly.lm.checkpoint import checkpoint_id, load_model, save_checkpoint
    from rlearly.lm.tokenizer import Tokenizer

    where = Path(src.location) if src.location else _download(src)
    # a local directory may have changed since planning; a hub revision is fetched at its resolved commit
    if not src.model and (now := checkpoint_id(where)) != src.checkpoint_id:
        raise ConfigError(f"{where}: its weights changed since the study was planned (id {now}, "
                          f"planned {src.checkpoint_id}); plan the study again")
    model, tok = load_model(where), Tokenizer.load(where)
    cfg = dataclasses.replace(config, model=model.cfg)
    save_checkpoint(out, model, tok, {"method": "suite", "tokens": src.tokens, **src.lineage()}, config=cfg)
    write_atomic(out / "DONE", "")
    return out


def _download(src: Source) -> Path:
    """The hub revision's files at its resolved commit (huggingface_hub's cache: each revision fetched once)."""
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(src.model, revision=src.commit,
                                  allow_patterns=["*.json", "*.safetensors", "tokenizer*", "*.txt"]))
