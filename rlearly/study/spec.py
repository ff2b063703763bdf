"""A study spec: its YAML (module docstring of rlearly.study), the arms it declares and the roles they play for the
claims, and the configs each arm trains with. Loading is strict: an unknown key, a misspelt method or role, or a
bad config override fails when the spec loads, naming it."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from rlearly.config import Config, from_dict, load_config, read_yaml_mapping
from rlearly.errors import ConfigError
from rlearly.study.suite import BasePlan, parse_base, resolve
from rlearly.train import method_name

# the roles an arm can play for the claims (rlearly.results.claims reads arms by role, not by name)
ROLES = ("targeted_mix", "wider_model", "rollouts_few", "rollouts_many", "rollouts_same_tokens", "rollouts_few_plateau",
         "seeds", "hard")

MAIN = "main"


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
    dtype: str = ""  # the sampler's precision: fp32, bf16, auto; "": the study's runtime.dtype (resolved at load)
    shots: int = 2  # exemplars in a base checkpoint's few-shot prompt (the paper's GSM8K protocol: 8)
    lm_eval: list[str] = field(default_factory=list)  # lm-eval benchmarks (rlearly.evaluation.lmeval.BENCHMARKS) on every
    #                                                   evaluated checkpoint ([eval] extra; its data come from the hub)
    lm_eval_limit: int = 1000  # examples per benchmark (the paper's 1,000)

    def __post_init__(self):
        from rlearly.config import TaskConfig
        from rlearly.sampling import get_engine
        from rlearly.tasks import DEFAULT_TASK, check_task_config, known_tasks, task_class

        if self.task and self.task not in known_tasks():
            raise ConfigError(f"study eval.task: unknown task {self.task!r}; known: {', '.join(known_tasks())}")
        if self.task:
            check_task_config(TaskConfig(self.task, list(self.task_files)))  # "split=path" entries it can take
        elif self.task_files:
            raise ConfigError("study eval.task_files needs eval.task (the task those files are data of)")
        splits = task_class(self.task or DEFAULT_TASK).splits  # a task read from files: its splits are its files'
        if splits and (bad := [s for s in self.splits if s not in splits]):
            raise ConfigError(f"study eval.splits: unknown split {bad[0]!r}; known: {', '.join(splits)}")
        get_engine(self.backend, "study eval.backend: ")
        if self.dtype not in ("", "auto", "fp32", "bf16"):
            raise ConfigError(f"study eval.dtype={self.dtype!r} must be fp32, bf16 or auto (or left out: the study's "
                              "runtime.dtype)")
        if self.shots < 0:
            raise ConfigError(f"study eval.shots={self.shots} must be >= 0")
        if self.n < 1 or any(k < 1 or k > self.n for k in self.ks):
            raise ConfigError(f"study eval.ks={self.ks} must lie in [1, eval.n={self.n}]")
        if self.max_problems < 1:
            raise ConfigError(f"study eval.max_problems={self.max_problems} must be >= 1")
        if self.base_prompt not in ("few-shot", "zero-shot"):
            raise ConfigError(f"study eval.base_prompt={self.base_prompt!r} must be few-shot or zero-shot")
        from rlearly.evaluation.lmeval import BENCHMARKS
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

    def branch_config(self, seed: int, method: str | None = None, base: str = "") -> Config:
        """The recipe config of `method`'s branches (the arm's, plus that method's own overrides); `base`: the suite
        checkpoint they start from (branch.base, in their hash)."""
        own = self.branch.method_overrides.get(method, {})
        return load_config(overrides={**self.config, **self.branch.overrides, **own, "seed": seed,
                                      **({"branch.base": base} if base else {})})


@dataclass
class StudySpec:
    name: str
    config: dict = field(default_factory=dict)
    branch: BranchPlan = field(default_factory=BranchPlan)
    eval: EvalPlan = field(default_factory=EvalPlan)
    arms: dict = field(default_factory=dict)  # name -> Arm (after load_study; the main arm is not in it)
    pretrain_seeds: list[int] | None = None  # the main arm's pretraining runs (None: the config's seed)
    base: BasePlan | None = None  # a checkpoint suite to branch instead of pretraining (rlearly.study.suite)

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
    base = parse_base(raw.pop("base", None))
    spec = from_dict(StudySpec, raw)  # strict: unknown keys and wrong types name the field
    spec.config, spec.branch, spec.pretrain_seeds, spec.base = dict(config), branch, seeds, base
    if base and (seeds or arms):
        raise ConfigError("a study with a base section branches its checkpoints: it takes no pretrain_seeds or arms")
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
    _resolve_auto_dtype(spec)
    if base:  # each revision's commit and weights, once, now: without a hub a hub id fails here
        resolve(base, Path(path).parent)
    return spec


def _resolve_auto_dtype(spec: StudySpec) -> None:
    """runtime.dtype auto, resolved once, here, where the study is loaded: the resolved value is written into the
    spec's configs, so every node's hash holds it and workers (pool or submitit) use the planner's value. An
    evaluation samples in the study's precision unless its eval.dtype names one (auto resolved the same way)."""
    from rlearly.lm.runtime import resolve_dtype

    for arm, config in [(spec.main_arm(), spec.config), *((a, a.config) for a in spec.arms.values())]:
        base = arm.base_config().runtime
        if base.dtype == "auto":
            config["runtime.dtype"] = resolve_dtype(base.device)
        if arm.eval.dtype in ("", "auto"):
            arm.eval.dtype = resolve_dtype(base.device) if arm.eval.dtype == "auto" else config.get(
                "runtime.dtype", base.dtype)
        for o in [arm.branch.overrides, *arm.branch.method_overrides.values()]:
            if o.get("runtime.dtype") == "auto":
                o["runtime.dtype"] = resolve_dtype(o.get("runtime.device", base.device))


def _seed_list(raw, where: str) -> list[int] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw or not all(isinstance(x, int) and not isinstance(x, bool) for x in raw) \
            or len(set(raw)) != len(raw):
        raise ConfigError(f"study {where} must be a list of distinct integers, got {raw!r}")
    return list(raw)


def _check_configs(arm: Arm) -> None:
    """Every config the arm trains with loads, its task section describes its task, and its rollout engine is
    one rlearly has (an unknown name fails now, naming the arm's key, not mid-study)."""
    from rlearly.sampling import get_engine
    from rlearly.tasks import check_task_config

    arm.base_config()
    for method in [None, *arm.branch.method_overrides]:
        cfg = arm.branch_config(0, method)
        check_task_config(cfg.task)
        get_engine(cfg.rl.backend, "rl.backend: ")


def arm_labels(spec: StudySpec) -> dict[str, str]:
    """arm name -> the label its rows carry in the tables: an arm with the same pretraining and recipe config
    as an earlier one, whatever its seeds (adding seeds, pretraining seeds, checkpoints or splits to it), is
    labelled as that one."""
    first: dict[tuple[str, str], str] = {}  # (pretraining hash at seed 0, recipe hash) -> first arm with them
    return {arm.name: first.setdefault((arm.base_config(0).hash(), arm.branch_config(0).hash()), arm.name)
            for arm in spec.all_arms()}
