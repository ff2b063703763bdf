"""Studies: a YAML spec -> a plan of nodes (pretrain -> branches x seeds -> evaluations) -> cached runs.

Spec (studies/*.yaml; unknown keys are errors):

    name: tiny
    config: {preset: tiny, world.math_fraction: 0.3}      # base config: preset + dotted overrides
    branch:
      checkpoints: [0, -1]          # indices into the pretraining checkpoints, or "all"
      methods: [rl, sft, sft_rl]
      per_method: {sft_rl: [-1]}    # checkpoints of some methods, instead of `checkpoints`
      seeds: [0]
      overrides: {rl.steps: 60}     # recipe settings on top of the base config
      method_overrides: {sft_rl: {rl.steps: 90}}  # recipe settings of one method only
    eval: {splits: [test], n: 32, ks: [1, 8, 32], max_problems: 200, seed: 0, readiness: true}
    pretrain_seeds: [0]             # one pretraining run per seed, each branched as above (default: config seed)
    arms:                           # further experiments, each on top of the above
      rollout_g4:
        config: {}                  # pretraining/world overrides (a different one = its own pretraining run)
        branch: {checkpoints: [-1], methods: [rl], overrides: {rl.group_size: 4}}
        eval: {splits: [test, hard]}

The main plan is the arm "main". Arms that share a pretraining config share its run and base evaluations
(a node belongs to the first arm that plans it), and an arm with the same pretraining and recipe config as
an earlier one (adding seeds, pretraining seeds, checkpoints or splits to it) is labelled as that one in the
tables. Every row carries its `pretrain_seed` and `seed` (the branch's): a unit of trained weights.

Layout under the study root (default runs/<name>):

    pretrain/<config hash>/                        the pretraining run and its checkpoints
    branch/<method>/<checkpoint>/s<seed>-<hash>/   one branch per (method, checkpoint, seed); from a pretraining
                                                   run of another seed p: .../p<p>s<seed>-<hash>/
    samples/                                       the sample store (every evaluation sample, once)
    eval/<checkpoint>/<split>.json                 pass@k with CIs + general capability
                                                   (split "train" on base checkpoints: the readiness
                                                   diagnostic, base pass@k on the RL training prompts)
    timings.jsonl                                  wall time of every node run (stage breakdown)
    tables/*.csv                                   tidy tables the notebooks read (size and sha256 of
                                                   each in tables/meta.json, checked when they are read)

Every node directory is content-addressed by its config hash and finished nodes are skipped, so a second
run with nothing changed trains and samples nothing; an interrupted node resumes. `run(..., jobs=N)` runs
independent nodes in N worker processes; a lock file keeps a second runner off the same study.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rlearly.config import Config, from_dict, load_config, read_yaml_mapping
from rlearly.errors import ConfigError, DataError, RlearlyError
from rlearly.train import method_name

# the roles an arm can play for the claims (rlearly.claims reads arms by role, not by name)
ROLES = ("targeted_mix", "wider_model", "rollouts_few", "rollouts_many", "rollouts_same_tokens", "seeds", "hard")

MAIN = "main"
_PRIORITY = {"pretrain": 0, "branch": 1, "eval": 2, "lm_eval": 3}  # start order among ready nodes with --jobs


@dataclass
class BranchPlan:
    checkpoints: list[int] | str = "all"  # indices into the pretraining checkpoints, or "all"
    methods: list[str] = field(default_factory=lambda: ["rl", "sft"])
    seeds: list[int] = field(default_factory=lambda: [0])
    overrides: dict = field(default_factory=dict)
    per_method: dict = field(default_factory=dict)  # method -> checkpoint indices (instead of `checkpoints`)
    method_overrides: dict = field(default_factory=dict)  # method -> overrides of that method only


@dataclass
class EvalPlan:
    splits: list[str] = field(default_factory=lambda: ["test"])
    n: int = 32
    ks: list[int] = field(default_factory=lambda: [1, 8, 32])
    max_problems: int = 200
    seed: int = 0
    readiness: bool = False  # also evaluate each branched base checkpoint on the RL training prompts
    base_prompt: str = "few-shot"  # how base checkpoints are prompted (the paper: few-shot; branches: zero-shot)
    task: str = ""  # the task evaluated (e.g. gsm8k); "": the arm's training task (task.name, default synthetic)
    task_files: list[str] = field(default_factory=list)  # its local data files as "split=path" (default: its hub)
    backend: str = "torch"  # the sampler: torch (rlearly's) or vllm ([gpu]; its samples are stored apart)
    lm_eval: list[str] = field(default_factory=list)  # lm-eval benchmarks (rlearly.lmeval.BENCHMARKS) on every
    #                                                   evaluated checkpoint ([eval] extra; its data come from the hub)
    lm_eval_limit: int = 1000  # examples per benchmark (the paper's 1,000)

    def __post_init__(self):
        from rlearly.config import TaskConfig
        from rlearly.data.math_world import SPLITS
        bad = [s for s in self.splits if s not in SPLITS]
        if self.task in ("", "synthetic") and bad:  # another task's splits are its own (checked when it loads)
            raise ConfigError(f"study eval.splits: unknown split {bad[0]!r}; known: {', '.join(SPLITS)}")
        if self.task:
            from rlearly.tasks import known_tasks
            if self.task not in known_tasks():
                raise ConfigError(f"study eval.task: unknown task {self.task!r}; known: {', '.join(known_tasks())}")
            TaskConfig(self.task, list(self.task_files))  # "split=path" entries, no files for synthetic
        elif self.task_files:
            raise ConfigError("study eval.task_files needs eval.task (the task those files are data of)")
        if self.backend not in ("torch", "vllm"):
            raise ConfigError(f"study eval.backend={self.backend!r} must be torch or vllm")
        if self.n < 1 or any(k < 1 or k > self.n for k in self.ks):
            raise ConfigError(f"study eval.ks={self.ks} must lie in [1, eval.n={self.n}]")
        if self.max_problems < 1:
            raise ConfigError(f"study eval.max_problems={self.max_problems} must be >= 1")
        if self.base_prompt not in ("few-shot", "zero-shot"):
            raise ConfigError(f"study eval.base_prompt={self.base_prompt!r} must be few-shot or zero-shot")
        from rlearly.lmeval import BENCHMARKS
        if bad := [b for b in self.lm_eval if b not in BENCHMARKS]:
            raise ConfigError(f"study eval.lm_eval: unknown benchmark {bad[0]!r}; known: {', '.join(BENCHMARKS)}")
        if self.lm_eval_limit < 1:
            raise ConfigError(f"study eval.lm_eval_limit={self.lm_eval_limit} must be >= 1")


@dataclass
class Arm:
    """One experiment of a study: config overrides on top of the study's, its branches and evaluations, and
    the role it plays for the claims (ROLES: "targeted_mix", "rollouts_few", ...)."""
    name: str
    config: dict
    branch: BranchPlan
    eval: EvalPlan
    role: str = ""
    pretrain_seeds: list[int] | None = None  # one pretraining run per seed (None: the config's seed)

    def seeds_pretrain(self) -> list[int]:
        return list(self.pretrain_seeds) if self.pretrain_seeds else [int(self.config.get("seed", 0))]

    def base_config(self, pretrain_seed: int | None = None) -> Config:
        """The pretraining config (of the run with `pretrain_seed`; default the first)."""
        ps = self.seeds_pretrain()[0] if pretrain_seed is None else pretrain_seed
        return load_config(overrides={**self.config, "seed": ps})

    def branch_config(self, seed: int, method: str | None = None) -> Config:
        """The recipe config of `method`'s branches (the arm's, plus that method's own overrides)."""
        own = self.branch.method_overrides.get(method, {})
        return load_config(overrides={**self.config, **self.branch.overrides, **own, "seed": seed})


@dataclass
class StudySpec:
    name: str
    config: dict = field(default_factory=dict)
    branch: BranchPlan = field(default_factory=BranchPlan)
    eval: EvalPlan = field(default_factory=EvalPlan)
    arms: dict = field(default_factory=dict)  # name -> Arm (after load_study; the main arm is not in it)
    pretrain_seeds: list[int] | None = None  # the main arm's pretraining runs (None: the config's seed)

    def main_arm(self) -> Arm:
        return Arm(MAIN, dict(self.config), self.branch, self.eval, pretrain_seeds=self.pretrain_seeds)

    def base_config(self) -> Config:
        return self.main_arm().base_config()

    def branch_config(self, seed: int) -> Config:
        return self.main_arm().branch_config(seed)

    def all_arms(self) -> list[Arm]:
        return [self.main_arm(), *self.arms.values()]

    def replicate(self, offset: int) -> "StudySpec":
        """The same study under other seeds, named `<name>-seed<offset>`: every branch seed and the evaluation
        seed move by `offset`, the pretraining seeds by `offset` times their number (so no pretraining run of the
        replicate repeats one of the original); the world (its problems and splits) stays the same, so the two
        studies' verdicts can be set side by side. offset 0 returns the study itself."""
        if offset < 0:
            raise ConfigError(f"--seed {offset} must be >= 0")
        if offset == 0:
            return self

        def shift(arm: Arm) -> Arm:
            seeds = arm.seeds_pretrain()
            moved = [s + offset * len(seeds) for s in seeds]
            return Arm(arm.name, {**arm.config, "seed": moved[0]},
                       dataclasses.replace(arm.branch, seeds=[s + offset for s in arm.branch.seeds]),
                       dataclasses.replace(arm.eval, seed=arm.eval.seed + offset), arm.role,
                       moved if arm.pretrain_seeds else None)

        main = shift(self.main_arm())
        return StudySpec(f"{self.name}-seed{offset}", main.config, main.branch, main.eval,
                         {n: shift(a) for n, a in self.arms.items()}, main.pretrain_seeds)


@dataclass
class Node:
    kind: str  # pretrain | branch | eval | lm_eval
    key: str  # human-readable id, e.g. "branch rl ckpt-0000200704 s0"
    path: Path  # where its result lives; `done` checks it
    run: Callable[[], None]
    arm: str = MAIN
    deps: list[Path] = field(default_factory=list)  # paths of the nodes it needs finished first
    protocol: dict = field(default_factory=dict)  # an evaluation's settings: a stored result of others is stale
    cost: float = 0.0  # relative compute (pretraining: layers x width² x tokens): the longest start first
    pretrain_seed: int = 0  # the seed of the pretraining run it belongs to

    @property
    def done(self) -> bool:
        if self.kind not in ("eval", "lm_eval"):
            return (self.path / "DONE").exists()
        if not self.path.exists():
            return False
        r = _read_result(self.path, self.path)
        return all(r.get(k) == v for k, v in self.protocol.items())


def _branch_plan(raw, where: str) -> BranchPlan:
    raw = dict(raw or {})
    if not isinstance(raw, dict):
        raise ConfigError(f"study {where} must be a mapping")
    overrides, per_method = raw.pop("overrides", None) or {}, raw.pop("per_method", None) or {}
    method_overrides = raw.pop("method_overrides", None) or {}
    if not all(isinstance(x, dict) for x in (overrides, per_method, method_overrides)):
        raise ConfigError(f"study keys '{where}.overrides', '{where}.per_method' and '{where}.method_overrides' "
                          "must be mappings")
    plan = from_dict(BranchPlan, raw, where + ".")
    plan.methods = [method_name(m, f"study {where}.methods: ") for m in plan.methods]
    per_method = {method_name(m, f"study {where}.per_method: "): v for m, v in per_method.items()}
    method_overrides = {method_name(m, f"study {where}.method_overrides: "): v for m, v in method_overrides.items()}
    for m, idx in per_method.items():
        if m not in plan.methods:
            raise ConfigError(f"study {where}.per_method names {m!r}, which is not in {where}.methods")
        if not isinstance(idx, list) or not all(isinstance(i, int) for i in idx):
            raise ConfigError(f"study {where}.per_method.{m} must be a list of checkpoint indices, got {idx!r}")
    for m, o in method_overrides.items():
        if m not in plan.methods:
            raise ConfigError(f"study {where}.method_overrides names {m!r}, which is not in {where}.methods")
        if not isinstance(o, dict):
            raise ConfigError(f"study {where}.method_overrides.{m} must be a mapping of config keys, got {o!r}")
    plan.overrides, plan.per_method = dict(overrides), dict(per_method)
    plan.method_overrides = {m: dict(o) for m, o in method_overrides.items()}
    return plan


def load_study(path: str | Path) -> StudySpec:
    raw = read_yaml_mapping(path, "study")
    config, arms = raw.pop("config", None) or {}, raw.pop("arms", None) or {}
    if not isinstance(config, dict):
        raise ConfigError("study key 'config' must be a mapping of config keys")
    if not isinstance(arms, dict):
        raise ConfigError("study key 'arms' must map arm names to {config, branch, eval}")
    branch = _branch_plan(raw.pop("branch", None), "branch")
    seeds = _seed_list(raw.pop("pretrain_seeds", None), "pretrain_seeds")
    spec = from_dict(StudySpec, raw)  # strict: unknown keys and wrong types name the field
    spec.config, spec.branch, spec.pretrain_seeds = dict(config), branch, seeds
    _check_configs(spec.main_arm())  # fail now, naming the bad key, not mid-study
    for name, a in arms.items():
        where = f"arms.{name}"
        if name == MAIN or not isinstance(a, dict):
            raise ConfigError(f"study {where} must be a mapping of config/branch/eval (and not be named {MAIN!r})")
        unknown = set(a) - {"config", "branch", "eval", "role", "pretrain_seeds"}
        if unknown:
            raise ConfigError(f"unknown study key '{where}.{sorted(unknown)[0]}' (known: branch, config, eval, "
                              "pretrain_seeds, role)")
        role = a.get("role") or ""
        if role and role not in ROLES:
            raise ConfigError(f"study {where}.role: unknown role {role!r}; known: {', '.join(ROLES)}")
        if role and role in {x.role for x in spec.arms.values()}:
            raise ConfigError(f"study {where}.role: role {role!r} is given to two arms")
        cfg = a.get("config") or {}
        if not isinstance(cfg, dict):
            raise ConfigError(f"study key '{where}.config' must be a mapping of config keys")
        try:
            ev = from_dict(EvalPlan, {**dataclasses.asdict(spec.eval), **(a.get("eval") or {})}, where + ".eval.")
        except ConfigError as e:  # EvalPlan's own checks say "study eval.": name the arm
            raise ConfigError(str(e).replace("study eval.", f"study {where}.eval.", 1)) from None
        seeds = _seed_list(a.get("pretrain_seeds"), where + ".pretrain_seeds")
        arm = Arm(name, {**spec.config, **cfg}, _branch_plan(a.get("branch"), where + ".branch"), ev, role, seeds)
        _check_configs(arm)
        spec.arms[name] = arm
    return spec


def _seed_list(raw, where: str) -> list[int] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw or not all(isinstance(x, int) and not isinstance(x, bool) for x in raw) \
            or len(set(raw)) != len(raw):
        raise ConfigError(f"study {where} must be a list of distinct integers, got {raw!r}")
    return list(raw)


def _check_configs(arm: Arm) -> None:
    arm.base_config()
    for method in [None, *arm.branch.method_overrides]:
        arm.branch_config(0, method)


def arm_labels(spec: StudySpec) -> dict[str, str]:
    """arm name -> the label its rows carry in the tables: an arm with the same pretraining and recipe config
    as an earlier one, whatever its seeds (adding seeds, pretraining seeds, checkpoints or splits to it), is
    labelled as that one."""
    first: dict[tuple[str, str], str] = {}  # (pretraining hash at seed 0, recipe hash) -> first arm with them
    return {arm.name: first.setdefault((arm.base_config(0).hash(), arm.branch_config(0).hash()), arm.name)
            for arm in spec.all_arms()}


def plan(spec: StudySpec, root: str | Path) -> list[Node]:
    """Every node of the study in execution order (dependencies first); shared nodes appear once."""
    root = Path(root)
    nodes: dict[Path, Node] = {}
    labels = arm_labels(spec)
    for arm in spec.all_arms():
        for node in _arm_nodes(spec, arm, root, labels[arm.name]):
            nodes.setdefault(node.path, node)
    return list(nodes.values())


def _arm_nodes(spec: StudySpec, arm: Arm, root: Path, label: str) -> list[Node]:
    return [node for ps in arm.seeds_pretrain() for node in _run_nodes(arm, ps, root, label)]


def _run_nodes(arm: Arm, ps: int, root: Path, label: str) -> list[Node]:
    """The nodes of one pretraining run of `arm` (seed `ps`): pretraining, branches, evaluations."""
    from rlearly.train import pretrain
    from rlearly.train import RECIPES

    cfg = arm.base_config(ps)
    pre_dir = root / "pretrain" / cfg.hash()
    nodes = [Node("pretrain", f"pretrain {cfg.hash()}", pre_dir,
                  lambda: pretrain.run(cfg, pre_dir, show_progress=True), label,
                  cost=float(cfg.model.n_layer * cfg.model.n_embd ** 2 * cfg.pretrain.tokens), pretrain_seed=ps)]
    steps = cfg.pretrain.checkpoint_steps()
    names = [pretrain.ckpt_name(s * cfg.pretrain.tokens_per_step) for s in steps]
    bp = arm.branch
    every = names if bp.checkpoints == "all" else [names[i] for i in _indices(bp.checkpoints, names)]
    per = {m: [names[i] for i in _indices(idx, names)] for m, idx in bp.per_method.items()}
    run = f"p{ps}" if ps else ""  # branches of the same recipe config from another pretraining run
    finals: list[tuple[Path, list[Path]]] = []  # (checkpoint to evaluate, the nodes it needs)
    for ck in names:
        methods = [m for m in bp.methods if ck in per.get(m, every)]
        if not methods:
            continue
        parent = pre_dir / ck
        finals.append((parent, [pre_dir]))
        for seed in bp.seeds:
            for method in methods:
                bcfg = arm.branch_config(seed, method)
                out = root / "branch" / method / ck / f"{run}s{seed}-{bcfg.hash()}"
                first = RECIPES[method].after or None  # SFT→RL and SFT-Gold→RL start from that SFT branch
                sft_cfg = arm.branch_config(seed, first) if first else None  # the SFT branch's own config
                sft_dir = root / "branch" / first / ck / f"{run}s{seed}-{sft_cfg.hash()}" if sft_cfg else None
                deps = [pre_dir] + ([sft_dir] if sft_dir and first in methods else [])
                on = "" if bcfg.task.name == "synthetic" else f" on {bcfg.task.name}"  # a real training task
                nodes.append(Node("branch", f"branch {method}{on} {ck} {run}s{seed} [{label}]", out,
                                  _branch_job(bcfg, parent, out, method, sft_dir, sft_cfg), label, deps,
                                  pretrain_seed=ps))
                finals.append((out / "final", [out]))
    evaluated = eval_task(arm.eval, cfg)
    for ck_path, deps in finals:
        # readiness: the base on its RL training prompts (the training task's train split)
        readiness = [(cfg.task, "train")] if arm.eval.readiness and ck_path.parent == pre_dir else []
        pairs = [(evaluated, s) for s in arm.eval.splits]
        for tc, split in [*pairs, *[r for r in readiness if r not in pairs]]:
            name = split if tc.name == "synthetic" else f"{tc.name}-{split}"  # synthetic: the names of old studies
            out = root / "eval" / _label(root, ck_path) / f"{name}.json"
            protocol = {**_protocol(arm.eval), **_task_protocol(tc, cfg.world, split)}
            nodes.append(Node("eval", f"eval {_label(root, ck_path)} {name}", out,
                              _eval_job(arm.eval, root, ck_path, split, out, tc, protocol), label, deps, protocol,
                              pretrain_seed=ps))
        if arm.eval.lm_eval:  # general capability on real benchmarks, once per checkpoint
            out = root / "eval" / _label(root, ck_path) / "lm-eval.json"
            protocol = {"lm_eval": list(arm.eval.lm_eval), "lm_eval_limit": arm.eval.lm_eval_limit}
            nodes.append(Node("lm_eval", f"lm-eval {_label(root, ck_path)}", out,
                              _lm_eval_job(ck_path, out, protocol), label, deps, protocol, pretrain_seed=ps))
    return nodes


def eval_task(e: EvalPlan, cfg: Config):
    """The task (a config.TaskConfig) an arm's evaluations read: eval.task, or the arm's training task. Either way
    in the training task's generation protocol (task.multiline, task.max_new_tokens): the models' format."""
    from rlearly.config import TaskConfig
    if not e.task:
        return cfg.task
    if e.task == "synthetic":
        return TaskConfig(e.task)
    return TaskConfig(e.task, list(e.task_files), cfg.task.multiline, cfg.task.max_new_tokens)


def _task_protocol(tc, world, split: str) -> dict:
    """What an evaluation result must have scored: the synthetic task's id in this world (it fingerprints the
    problems), or another task's name and data files (its id needs its data, which a plan does not load)."""
    if tc.name == "synthetic":
        return {"task_id": task_id(world, split)}
    protocol = {"multiline": True} if tc.multiline else {}  # one line: as results were keyed before protocols
    protocol |= {"max_new_tokens": tc.max_new_tokens} if tc.max_new_tokens else {}
    return {"task": tc.name, "task_files": list(tc.files), **protocol}


def run(spec: StudySpec, root: str | Path, log=print, jobs: int = 1, threads: int = 0, executor: str = "pool",
        cluster: str | None = None, params: dict | None = None) -> list[Node]:
    """Run every unfinished node (finished ones are skipped), `jobs` at a time, each with `threads` torch
    threads (0: all the cores for one job, cores / jobs for several). Then write the tables.
    `executor="submitit"` sends each node to submitit (Slurm, or `cluster="local"`), `params` its settings."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with _Lock(root / ".lock"):
        nodes = plan(spec, root)
        todo = [n for n in nodes if not n.done]
        if any(n.kind == "lm_eval" for n in todo):  # the [eval] error before any node runs, not after hours
            from rlearly.extras import require
            require("lm_eval", "eval", "study eval.lm_eval")
        log(f"study {spec.name}: {len(nodes)} nodes, {len(nodes) - len(todo)} done, {len(todo)} to run"
            + (f", {jobs} at a time" if jobs > 1 and todo else ""))
        pace = _Pace(todo, jobs)
        if jobs <= 1 and executor == "pool":
            if threads:
                import torch
                torch.set_num_threads(threads)
            for i, node in enumerate(todo, 1):
                log(f"[{i}/{len(todo)}] {node.key}")
                seconds = _timed(node, root)
                log(f"done {node.key} ({seconds:.0f} s; {pace.step(node, seconds)})")
        elif todo:
            _run_parallel(spec, root, todo, jobs, log, threads, pace, executor, cluster, params)
        write_tables(spec, root)
    return nodes


class _Pace:
    """'12/47 nodes done in 3m05s, about 9m left (+ 20 eval nodes not yet timed)'. Nodes differ by orders of
    magnitude (a pretraining run against an evaluation), so the rest is estimated kind by kind: a pretraining
    run by the seconds per unit of `cost` so far, a branch or an evaluation by the mean of its kind so far,
    the sum divided among the `jobs`; kinds not yet timed are counted, not guessed."""

    def __init__(self, todo: list[Node], jobs: int = 1):
        self.left, self.jobs, self.total, self.done = list(todo), max(1, jobs), len(todo), 0
        self.seconds: dict[str, list[float]] = {}
        self.pretrain_cost = 0.0  # the summed cost of the pretraining runs timed so far
        self.t0 = time.perf_counter()

    def step(self, node: Node, seconds: float) -> str:
        self.done += 1
        self.left = [n for n in self.left if n is not node]
        self.seconds.setdefault(node.kind, []).append(seconds)
        self.pretrain_cost += node.cost if node.kind == "pretrain" else 0.0
        spent = f"{self.done}/{self.total} nodes done in {clock(time.perf_counter() - self.t0)}"
        if not self.left:
            return spent
        known, untimed = 0.0, {}
        for n in self.left:
            if n.kind not in self.seconds:
                untimed[n.kind] = untimed.get(n.kind, 0) + 1
            elif n.kind == "pretrain" and n.cost and self.pretrain_cost:
                known += n.cost * sum(self.seconds["pretrain"]) / self.pretrain_cost
            else:
                known += sum(self.seconds[n.kind]) / len(self.seconds[n.kind])
        more = ", ".join(f"{k} {kind} node{'s' * (k > 1)}" for kind, k in untimed.items())
        if len(untimed) == len({n.kind for n in self.left}):
            return f"{spent}; {more} not yet timed"
        return f"{spent}, about {clock(known / self.jobs)} left" + (f" (+ {more} not yet timed)" if more else "")


def clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}h{m % 60:02d}m" if m >= 60 else f"{m}m{s:02d}s"


def _timed(node: Node, root: Path) -> float:
    t0 = time.perf_counter()
    node.run()
    seconds = time.perf_counter() - t0
    log_timing(root, node.key, node.kind, node.arm, seconds, threads=_threads())
    return seconds


def log_timing(folder: Path, key: str, kind: str, arm: str, seconds: float, **extra) -> None:
    """Append one row to `<folder>/timings.jsonl` (key, kind, arm, seconds, ..., finished): the study's nodes,
    and the notebooks of its report, for the stage breakdown (benchmarks/bench_study.py)."""
    row = dict(key=key, kind=kind, arm=arm, seconds=round(seconds, 2), **extra,
               finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
    with open(Path(folder) / "timings.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")


def _threads() -> int:
    import torch
    return torch.get_num_threads()


def _worker_init() -> None:
    try:  # Linux: die with the runner, so a killed `study run` leaves no worker writing into the study
        import ctypes
        import signal
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _run_one(spec: StudySpec, root: str, key: str, threads: int) -> float:
    """Worker process: re-plan the study and run the node named `key` (closures do not cross processes).
    `threads` 0 leaves torch's own choice (a cluster job: the cores it was given)."""
    import torch
    if threads:
        torch.set_num_threads(threads)
    node = next(n for n in plan(spec, root) if n.key == key)
    return _timed(node, Path(root))


class _Pool:
    """Nodes in `jobs` spawned local processes (concurrent.futures)."""

    def __init__(self, jobs: int):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor
        self.pool = ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"), initializer=_worker_init)

    def submit(self, node: Node, *args):
        return self.pool.submit(_run_one, *args)

    @staticmethod
    def wait(running) -> list:
        """The futures that finished, once at least one has."""
        from concurrent.futures import FIRST_COMPLETED, wait
        return list(wait(running, return_when=FIRST_COMPLETED).done)

    def close(self):
        self.pool.shutdown()


class _Submitit:
    """Nodes as submitit jobs: Slurm on a cluster, or submitit's local executor (the same path, here). Each job
    re-plans the study from the pickled spec and runs one node, so caching, lineage and timings are the pool's;
    the study lock stays with the runner. `params` go to the executor's update_parameters (slurm_partition,
    timeout_min, cpus_per_task, gpus_per_node, ...); job scripts and logs go to <root>/submitit/."""

    poll_s = 2.0  # submitit jobs are polled: a job's state is a file or a scheduler query

    def __init__(self, root: Path, cluster: str | None, params: dict):
        from rlearly.extras import require
        submitit = require("submitit", "cluster", "study run --executor submitit")
        self.executor = submitit.AutoExecutor(folder=root / "submitit" / "%j", cluster=cluster)
        self.executor.update_parameters(**{"timeout_min": 24 * 60, **params})  # local's own default: 2 minutes

    def submit(self, node: Node, *args):
        self.executor.update_parameters(name=node.key.replace(" ", "_"))
        return _JobFuture(self.executor.submit(_run_one, *args))

    def wait(self, running) -> list:
        """The jobs that finished, once at least one has."""
        while not (finished := [f for f in running if f.done()]):
            time.sleep(self.poll_s)
        return finished

    def close(self):
        pass


class _JobFuture:
    """A submitit job read as a future (done, result); a failed job raises with its error's last line."""

    def __init__(self, job):
        self.job = job

    def done(self) -> bool:
        return self.job.done()

    def result(self) -> float:
        try:
            return self.job.result()
        except Exception as e:  # submitit's FailedJobError: the remote traceback between two rules of dashes
            raise RlearlyError(f"job {self.job.job_id} failed: {_last_error(str(e)) or type(e).__name__} "
                               f"(log: {self.job.paths.stderr})") from None


def _last_error(text: str) -> str:
    """The exception line that ends the traceback inside submitit's failure text, without rlearly's module path."""
    parts = re.split(r"\n-{10,}\n", text)
    trace = parts[1] if len(parts) >= 3 else text
    lines = [line.strip() for line in trace.splitlines() if line.strip()]
    return lines[-1].removeprefix("rlearly.errors.") if lines else ""


def _run_parallel(spec: StudySpec, root: Path, todo: list[Node], jobs: int, log, threads: int = 0,
                  pace: _Pace | None = None, executor: str = "pool", cluster: str | None = None,
                  params: dict | None = None) -> None:
    """Dependency-ordered execution, `jobs` nodes at a time: in spawned local processes, each with cores/jobs
    torch threads (all the cores for a node that starts alone with nothing else ready, e.g. a study's only
    pretraining run), or as submitit jobs (`executor="submitit"`, on `cluster`: slurm, local, or None for
    submitit's choice)."""
    cores = os.cpu_count() or 1
    on_cluster = executor == "submitit" and cluster != "local"
    alone_threads = threads or (0 if on_cluster else cores)
    threads = threads or (0 if on_cluster else max(1, cores // jobs))
    pace = pace or _Pace(todo, jobs)
    pending, running, started = list(todo), {}, 0
    is_done = {n.path: n.done for n in plan(spec, root)}
    failure = None
    runner = _Submitit(root, cluster, params or {}) if executor == "submitit" else _Pool(jobs)
    try:
        while pending or running:
            ready = [n for n in pending if all(is_done.get(d, True) for d in n.deps)] if failure is None else []
            ready.sort(key=lambda n: (_PRIORITY[n.kind], -n.cost))  # long pretraining runs first: they gate their arms
            alone = len(ready) == 1 and not running
            for node in ready[:jobs - len(running)]:
                pending.remove(node)
                started += 1
                log(f"[{started}/{len(todo)}] start {node.key}")
                running[runner.submit(node, spec, str(root), node.key, alone_threads if alone else threads)] = node
            if not running:
                break
            for fut in runner.wait(running):
                node = running.pop(fut)
                try:
                    seconds = fut.result()
                    log(f"done {node.key} ({seconds:.0f} s; {pace.step(node, seconds)})")
                    is_done[node.path] = True
                except Exception as e:  # let the others finish, start nothing new, then report
                    failure = failure or (node, e)
    finally:
        runner.close()
    if failure:
        node, e = failure
        if isinstance(e, RlearlyError):
            raise type(e)(f"{node.key}: {e}") from e
        raise RlearlyError(f"{node.key} failed: {type(e).__name__}: {e}") from e


class _Lock:
    """An exclusive lock on the study root, so a second `study run` stops with a clear message."""

    def __init__(self, path: Path):
        self.path, self.fh = path, None

    def __enter__(self):
        import fcntl
        self.fh = open(self.path, "a+")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.fh.seek(0)
            holder = self.fh.read().strip() or "another process"
            self.fh.close()
            raise RlearlyError(f"study {self.path.parent} is being run by {holder}; wait for it to finish "
                               "(or stop it) and run again") from None
        self.fh.seek(0)
        self.fh.truncate()
        self.fh.write(f"pid {os.getpid()}")
        self.fh.flush()
        return self

    def __exit__(self, *exc):
        self.fh.close()  # releases the lock


def status(spec: StudySpec, root: str | Path) -> list[tuple[str, bool]]:
    return [(n.key, n.done) for n in plan(spec, root)]


def _indices(idx: list[int], names: list[str]) -> list[int]:
    out = []
    for i in idx:
        if not -len(names) <= i < len(names):
            raise ConfigError(f"study checkpoint index {i} is out of range: the run has {len(names)} checkpoints")
        out.append(i % len(names))
    return sorted(set(out))


def _label(root: Path, ckpt: Path) -> str:
    """eval folder name: the checkpoint's path under the study root, with / replaced."""
    return "__".join(ckpt.relative_to(root).parts)


def _branch_job(cfg: Config, parent: Path, out: Path, method: str, sft_dir: Path | None, sft_cfg: Config | None):
    def job():
        from rlearly.train import branch
        branch.run(cfg, parent, out, method, sft_dir=sft_dir, sft_cfg=sft_cfg)
    return job


_TASK_IDS: dict[tuple[str, str], str] = {}


def task_id(world, split: str) -> str:
    """The synthetic task's id on `split` in this world (what an evaluation result must have scored)."""
    from rlearly.tasks import get_task

    key = (json.dumps(dataclasses.asdict(world), sort_keys=True), split)
    if key not in _TASK_IDS:
        _TASK_IDS[key] = get_task("synthetic", world=world).task_id(split)
    return _TASK_IDS[key]


def _protocol(e: EvalPlan) -> dict:
    """What an evaluation result must record to count as this plan's (n, ks, seed, problems; the sampler when it
    is not rlearly's own, so results of older plans still count)."""
    return dict(n=e.n, ks=list(e.ks), eval_seed=e.seed, max_problems=e.max_problems, base_prompt=e.base_prompt,
                **({"backend": e.backend} if e.backend != "torch" else {}))


def _eval_job(e: EvalPlan, root: Path, ckpt: Path, split: str, out: Path, tc, protocol: dict):
    def job():
        from rlearly import evaluate
        from rlearly.checkpoint import load_checkpoint, load_config_of, read_meta
        from rlearly.tasks import config_task
        from rlearly.train.common import write_atomic

        mode = e.base_prompt if read_meta(ckpt, verify=False).get("method") in evaluate.BASE_METHODS else "zero-shot"
        cfg = load_config_of(ckpt)  # its runtime.device says where to sample (auto: a GPU where there is one)
        task = "synthetic" if tc.name == "synthetic" else config_task(tc, cfg.world)  # synthetic: the ckpt's world
        res = evaluate.evaluate_passk(ckpt, task, split, e.n, e.ks, e.seed, root / "samples", mode,
                                      max_problems=e.max_problems, progress=False, device=cfg.runtime.device,
                                      **({"backend": e.backend} if e.backend != "torch" else {}))
        model, tok, meta = load_checkpoint(ckpt)
        model = evaluate.place(model, cfg.runtime.device)
        res["general"] = evaluate.general_capability(model, tok, cfg.world, items=True)
        res["general_items"] = res["general"].pop("items")
        res["method"] = meta.get("method", "pretrain")
        res["parent_tokens"] = meta.get("parent_tokens") or meta.get("tokens")
        res["seed"] = meta.get("seed")  # the branch's training seed (the tables' `seed`)
        res.update({k: v for k, v in protocol.items() if k != "task_id"})  # task_id: the result's own, checked
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out, json.dumps(res, indent=2) + "\n")
    return job


def _lm_eval_job(ckpt: Path, out: Path, protocol: dict):
    def job():
        from rlearly import lmeval
        from rlearly.checkpoint import load_config_of
        from rlearly.runtime import resolve

        device = str(resolve(load_config_of(ckpt).runtime).device)  # auto: a GPU where there is one
        lmeval.run(ckpt, out, protocol["lm_eval"], extra=protocol, limit=protocol["lm_eval_limit"], device=device)
    return job


def _row_identity(node: Node, checkpoint_id: str, method: str | None, parent_tokens, seed) -> dict:
    """What names an evaluated checkpoint in the tables (bases under one method name, "base")."""
    from rlearly.evaluate import BASE_METHODS

    return dict(arm=node.arm, checkpoint_id=checkpoint_id, method="base" if method in BASE_METHODS else method,
                parent_tokens=parent_tokens, pretrain_seed=node.pretrain_seed, seed=seed)


def _lm_eval_rows(node: Node) -> list[dict]:
    """The lm-eval table's rows of one result: a score per benchmark, and the paper's averages."""
    r = _read_result(node.path, node.path)
    meta = r.get("lineage", {})
    ident = _row_identity(node, r["checkpoint_id"], meta.get("method"), meta.get("parent_tokens") or meta.get("tokens"),
                          meta.get("seed"))
    rows = [{**ident, "benchmark": b, "metric": v["metric"], "score": v["score"], "stderr": v["stderr"]}
            for b, v in r["benchmarks"].items()]
    return rows + [{**ident, "benchmark": k, "metric": "mean", "score": r[k], "stderr": None}
                   for k in ("average_6", "average_5") if k in r]


def write_tables(spec: StudySpec, root: str | Path) -> dict:
    """Collect the finished nodes of the plan into tidy CSV tables under root/tables (what notebooks read).
    Every row carries its `arm`; nodes of an older plan left in the root are not read."""
    import pandas as pd

    from rlearly.train.common import read_metrics, write_atomic

    root = Path(root)
    passk_rows, general_rows, item_rows, branch_rows, pre_rows, general_seen = [], [], [], [], [], set()
    lm_eval_rows = []
    for node in plan(spec, root):
        if not node.done:
            continue
        if node.kind == "eval":
            r = _read_result(node.path, node.path)
            ident = {**_row_identity(node, r["checkpoint_id"], r["method"], r["parent_tokens"], r["seed"]),
                     "split": r["split"]}
            passk_rows += [{**ident, "task_id": r["task_id"], "prompt_mode": r["prompt_mode"], "n": r["n"],
                            "format_rate": r.get("format_rate"), **p} for p in r["passk"]]
            if r["checkpoint_id"] not in general_seen:  # general capability: once per checkpoint, not per split
                general_seen.add(r["checkpoint_id"])
                ident.pop("split")
                general_rows += [{**ident, "metric": k, "value": v} for k, v in r.get("general", {}).items()]
                item_rows += [{**ident, "metric": k, "item": i, "value": v}
                              for k, vs in r.get("general_items", {}).items() for i, v in enumerate(vs)]
        elif node.kind == "lm_eval":
            lm_eval_rows += _lm_eval_rows(node)
        elif node.kind == "branch":
            meta = _read_result(node.path / "meta.json", node.path)
            cfg = load_config(node.path / "config.yaml")
            ident = dict(arm=node.arm, method=meta["method"], parent_tokens=meta["parent_tokens"],
                         pretrain_seed=node.pretrain_seed, seed=meta["seed"], group_size=cfg.rl.group_size,
                         prompts_per_step=cfg.rl.prompts_per_step)
            branch_rows += [{**ident, **row} for row in read_metrics(node.path / "metrics.jsonl")]
        else:
            pre_rows += [{"arm": node.arm, "config_hash": node.path.name, "pretrain_seed": node.pretrain_seed, **row}
                         for row in read_metrics(node.path / "metrics.jsonl")]
    labels = arm_labels(spec)
    arms = [dict(arm=a.name, label=labels[a.name], role=a.role or None) for a in spec.all_arms()]
    tables = {"passk": pd.DataFrame(passk_rows), "general": pd.DataFrame(general_rows),
              "general_items": pd.DataFrame(item_rows), "arms": pd.DataFrame(arms), "floor": floor_table(spec),
              "branch_metrics": pd.DataFrame(branch_rows), "pretrain_metrics": pd.DataFrame(pre_rows),
              "timings": pd.DataFrame(read_metrics(root / "timings.jsonl")), "lm_eval": pd.DataFrame(lm_eval_rows)}
    folder = root / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, df in tables.items():
        f = folder / f"{name}.csv"
        write_atomic(f, df.to_csv(index=False))
        data = f.read_bytes()
        files[f.name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    write_atomic(folder / "meta.json", json.dumps({"files": files}, indent=2) + "\n")  # last: what load_tables checks
    return tables


def floor_table(spec: StudySpec):
    """The adversaries' exact pass@k (rlearly.adversaries) on every split each arm evaluates (the train split
    too where it runs the readiness diagnostic), on the problems it evaluates: rows (arm, split, adversary, k,
    pass_at_k), labelled like the arm's other rows."""
    import pandas as pd

    from rlearly import adversaries

    labels, frames, seen = arm_labels(spec), [], {}
    for arm in spec.all_arms():
        cfg = arm.base_config()
        world = cfg.world
        splits = [*arm.eval.splits, *(["train"] if arm.eval.readiness and "train" not in arm.eval.splits else [])]
        if eval_task(arm.eval, cfg).name != "synthetic" or cfg.task.name != "synthetic":
            continue  # the adversaries know the synthetic world's problems only
        for split in splits:
            key = (task_id(world, split), arm.eval.max_problems, tuple(arm.eval.ks), labels[arm.name])
            if key not in seen:
                seen[key] = adversaries.floor(world, [split], arm.eval.ks, arm.eval.max_problems)
                frames.append(seen[key].assign(arm=labels[arm.name]))
    return pd.concat(frames, ignore_index=True).drop_duplicates() if frames else pd.DataFrame()


def _read_result(path: Path, node_path: Path) -> dict:
    """A finished node's JSON file; a corrupt one is an error naming it and how to redo the node."""
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DataError(f"{path} is corrupt (not valid JSON); delete {node_path} and run the study again "
                        "to redo that node") from None
