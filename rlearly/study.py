"""Studies: a YAML spec -> a plan of nodes (pretrain -> branches x seeds -> evaluations) -> cached runs.

Spec (studies/*.yaml; unknown keys are errors):

    name: tiny
    config: {preset: tiny, world.math_fraction: 0.3}      # base config: preset + dotted overrides
    branch:
      checkpoints: [0, -1]          # indices into the pretraining checkpoints, or "all"
      methods: [rl, sft, sft_rl]
      seeds: [0]
      overrides: {rl.steps: 60}     # recipe settings on top of the base config
    eval: {splits: [test], n: 32, ks: [1, 8, 32], max_problems: 200, seed: 0, readiness: true}

Layout under the study root (default runs/<name>):

    pretrain/<config hash>/                        the pretraining run and its checkpoints
    branch/<method>/<checkpoint>/s<seed>-<hash>/   one branch per (method, checkpoint, seed)
    samples/                                       the sample store (every evaluation sample, once)
    eval/<checkpoint>/<split>.json                 pass@k with CIs + general capability
                                                   (split "train" on base checkpoints: the readiness
                                                   diagnostic, base pass@k on the RL training prompts)
    tables/*.csv                                   tidy tables the notebooks read

Every node directory is content-addressed by its config hash and finished nodes are skipped, so a second
run with nothing changed trains and samples nothing; an interrupted node resumes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rlearly.config import Config, from_dict, load_config, read_yaml_mapping
from rlearly.errors import ConfigError


@dataclass
class BranchPlan:
    checkpoints: list[int] | str = "all"  # indices into the pretraining checkpoints, or "all"
    methods: list[str] = field(default_factory=lambda: ["rl", "sft"])
    seeds: list[int] = field(default_factory=lambda: [0])
    overrides: dict = field(default_factory=dict)


@dataclass
class EvalPlan:
    splits: list[str] = field(default_factory=lambda: ["test"])
    n: int = 32
    ks: list[int] = field(default_factory=lambda: [1, 8, 32])
    max_problems: int = 200
    seed: int = 0
    readiness: bool = False  # also evaluate each branched base checkpoint on the RL training prompts

    def __post_init__(self):
        if self.n < 1 or any(k < 1 or k > self.n for k in self.ks):
            raise ConfigError(f"study eval.ks={self.ks} must lie in [1, eval.n={self.n}]")


@dataclass
class StudySpec:
    name: str
    config: dict = field(default_factory=dict)
    branch: BranchPlan = field(default_factory=BranchPlan)
    eval: EvalPlan = field(default_factory=EvalPlan)

    def base_config(self) -> Config:
        return load_config(overrides=dict(self.config))

    def branch_config(self, seed: int) -> Config:
        return load_config(overrides={**self.config, **self.branch.overrides, "seed": seed})


@dataclass
class Node:
    kind: str  # pretrain | branch | eval
    key: str  # human-readable id, e.g. "branch rl ckpt-0000200704 s0"
    path: Path  # where its result lives; `done` checks it
    run: Callable[[], None]

    @property
    def done(self) -> bool:
        return (self.path / "DONE").exists() if self.kind != "eval" else self.path.exists()


def load_study(path: str | Path) -> StudySpec:
    raw = read_yaml_mapping(path, "study")
    branch = raw.get("branch") or {}
    config, overrides = raw.pop("config", None) or {}, branch.pop("overrides", None) or {}
    if not isinstance(config, dict) or not isinstance(overrides, dict):
        raise ConfigError("study keys 'config' and 'branch.overrides' must be mappings of config keys")
    raw["branch"] = branch
    spec = from_dict(StudySpec, raw)  # strict: unknown keys and wrong types name the field
    spec.config, spec.branch.overrides = dict(config), dict(overrides)
    spec.base_config(), spec.branch_config(0)  # fail now, naming the bad key, not mid-study
    from rlearly.train.branch import METHODS
    for m in spec.branch.methods:
        if m not in METHODS:
            raise ConfigError(f"study branch.methods: unknown method {m!r}; known: {', '.join(METHODS)}")
    return spec


def plan(spec: StudySpec, root: str | Path) -> list[Node]:
    """Every node of the study in execution order (dependencies first)."""
    from rlearly.train import pretrain

    root = Path(root)
    cfg = spec.base_config()
    pre_dir = root / "pretrain" / cfg.hash()
    nodes = [Node("pretrain", f"pretrain {cfg.hash()}", pre_dir,
                  lambda: pretrain.run(cfg, pre_dir, show_progress=True))]
    steps = cfg.pretrain.checkpoint_steps()
    names = [pretrain.ckpt_name(s * cfg.pretrain.tokens_per_step) for s in steps]
    chosen = names if spec.branch.checkpoints == "all" else [names[i] for i in _indices(spec.branch.checkpoints, names)]
    finals = []
    for ck in chosen:
        parent = pre_dir / ck
        finals.append(parent)
        for seed in spec.branch.seeds:
            bcfg = spec.branch_config(seed)
            for method in spec.branch.methods:
                out = root / "branch" / method / ck / f"s{seed}-{bcfg.hash()}"
                sft_dir = root / "branch" / "sft" / ck / f"s{seed}-{bcfg.hash()}" if method == "sft_rl" else None
                nodes.append(Node("branch", f"branch {method} {ck} s{seed}", out,
                                  _branch_job(bcfg, parent, out, method, sft_dir)))
                finals.append(out / "final")
    for ck_path in finals:
        readiness = ["train"] if spec.eval.readiness and ck_path.parent == pre_dir else []
        for split in [*spec.eval.splits, *[s for s in readiness if s not in spec.eval.splits]]:
            out = root / "eval" / _label(root, ck_path) / f"{split}.json"
            nodes.append(Node("eval", f"eval {_label(root, ck_path)} {split}", out,
                              _eval_job(spec, root, ck_path, split, out)))
    return nodes


def run(spec: StudySpec, root: str | Path, log=print) -> list[Node]:
    """Run every unfinished node in order; finished ones are skipped. Then write the tables."""
    nodes = plan(spec, root)
    todo = [n for n in nodes if not n.done]
    log(f"study {spec.name}: {len(nodes)} nodes, {len(nodes) - len(todo)} done, {len(todo)} to run")
    for i, node in enumerate(todo, 1):
        log(f"[{i}/{len(todo)}] {node.key}")
        node.run()
    write_tables(spec, root)
    return nodes


def status(spec: StudySpec, root: str | Path) -> list[tuple[str, bool]]:
    return [(n.key, n.done) for n in plan(spec, root)]


def _indices(idx: list[int], names: list[str]) -> list[int]:
    out = []
    for i in idx:
        if not -len(names) <= i < len(names):
            raise ConfigError(f"study branch.checkpoints index {i} is out of range: the run has {len(names)} checkpoints")
        out.append(i % len(names))
    return sorted(set(out))


def _label(root: Path, ckpt: Path) -> str:
    """eval folder name: the checkpoint's path under the study root, with / replaced."""
    return "__".join(ckpt.relative_to(root).parts)


def _branch_job(cfg: Config, parent: Path, out: Path, method: str, sft_dir: Path | None):
    def job():
        from rlearly.train import branch
        branch.run(cfg, parent, out, method, sft_dir=sft_dir)
    return job


def _eval_job(spec: StudySpec, root: Path, ckpt: Path, split: str, out: Path):
    def job():
        from rlearly import evaluate
        from rlearly.checkpoint import load_checkpoint, load_config_of
        from rlearly.train.common import write_atomic

        e = spec.eval
        res = evaluate.evaluate_passk(ckpt, "synthetic", split, e.n, e.ks, e.seed, root / "samples", "auto",
                                      max_problems=e.max_problems, progress=False)
        model, tok, meta = load_checkpoint(ckpt)
        res["general"] = evaluate.general_capability(model, tok, load_config_of(ckpt).world)
        res["method"] = meta.get("method", "pretrain")
        res["parent_tokens"] = meta.get("parent_tokens") or meta.get("tokens")
        res["seed"] = meta.get("seed")
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out, json.dumps(res, indent=2) + "\n")
    return job


def write_tables(spec: StudySpec, root: str | Path) -> dict:
    """Collect every finished node's results into tidy CSV tables under root/tables (what notebooks read)."""
    import pandas as pd

    from rlearly.train.common import read_metrics

    root = Path(root)
    passk_rows, general_rows, branch_rows = [], [], []
    for f in sorted((root / "eval").glob("*/*.json")):
        r = json.loads(f.read_text())
        method = "base" if r["method"] == "pretrain" else r["method"]
        ident = dict(checkpoint_id=r["checkpoint_id"], method=method, parent_tokens=r["parent_tokens"],
                     seed=r["seed"], split=r["split"])
        passk_rows += [{**ident, "prompt_mode": r["prompt_mode"], "n": r["n"], **p} for p in r["passk"]]
        general_rows += [{**ident, "metric": k, "value": v} for k, v in r.get("general", {}).items()]
    for meta_f in sorted((root / "branch").glob("*/*/*/meta.json")):
        meta = json.loads(meta_f.read_text())
        for row in read_metrics(meta_f.parent / "metrics.jsonl"):
            branch_rows.append({"method": meta["method"], "parent_tokens": meta["parent_tokens"],
                                "seed": meta["seed"], **row})
    pre = [read_metrics(p) for p in sorted((root / "pretrain").glob("*/metrics.jsonl"))]
    tables = {"passk": pd.DataFrame(passk_rows), "general": pd.DataFrame(general_rows),
              "branch_metrics": pd.DataFrame(branch_rows),
              "pretrain_metrics": pd.DataFrame([r for rows in pre for r in rows])}
    (root / "tables").mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        tmp = root / "tables" / f".{name}.csv.tmp"
        df.to_csv(tmp, index=False)
        tmp.replace(root / "tables" / f"{name}.csv")
    return tables
