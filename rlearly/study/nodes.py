"""A study's plan: every node (pretraining runs -> branches x seeds -> evaluations) with the content-addressed path
of its result, what it needs first and, for an evaluation, the protocol a stored result must have been made
under. Planning reads no data and runs nothing; a node's `run` does the work."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rlearly.config import Config
from rlearly.errors import ConfigError
from rlearly.study.estimate import planned_matmul_params
from rlearly.study.spec import MAIN, Arm, EvalPlan, StudySpec, arm_labels
from rlearly.tasks import task_class


@dataclass
class Node:
    kind: str  # pretrain | base (a suite revision copied in) | branch | eval | lm_eval
    key: str  # human-readable id, e.g. "branch rl ckpt-0000200704 s0"
    path: Path  # where its result lives; `done` checks it
    run: Callable[[], None]
    arm: str = MAIN
    deps: list[Path] = field(default_factory=list)  # paths of the nodes it needs finished first
    protocol: dict = field(default_factory=dict)  # an evaluation's settings: a stored result of others is stale
    cost: float = 0.0  # its work x N (study.estimate): pretraining tokens, branch steps, eval problems x samples
    pretrain_seed: int = 0  # the seed of the pretraining run it belongs to
    rate: str = ""  # which measured rate turns its cost into seconds (study.estimate): "pretrain", "branch rl", ...

    @property
    def done(self) -> bool:
        if self.kind not in ("eval", "lm_eval"):
            return (self.path / "DONE").exists()
        if not self.path.exists():
            return False
        r = _read_result(self.path, self.path)
        return all(r.get(k) == v for k, v in self.protocol.items())


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
    return [node for ps in arm.seeds_pretrain() for node in _run_nodes(spec, arm, ps, root, label)]


def _run_nodes(spec: StudySpec, arm: Arm, ps: int, root: Path, label: str) -> list[Node]:
    """The nodes of one pretraining run of `arm` (seed `ps`): pretraining, branches, evaluations."""
    from rlearly.train import RECIPES, pretrain
    from rlearly.train.branch import total_steps

    cfg = arm.base_config(ps)
    n = planned_matmul_params(cfg)
    if spec.base:  # a checkpoint suite: one node copies each revision in; they are the run's checkpoints
        nodes, sources = _suite_nodes(spec.base, cfg, root, label)
    else:
        pre_dir = root / "pretrain" / cfg.hash()
        nodes = [Node("pretrain", f"pretrain {cfg.hash()}", pre_dir,
                      lambda: pretrain.run(cfg, pre_dir, show_progress=True), label,
                      cost=float(cfg.pretrain.tokens * n), pretrain_seed=ps, rate="pretrain")]
        names = [pretrain.ckpt_name(s * cfg.pretrain.tokens_per_step) for s in cfg.pretrain.checkpoint_steps()]
        sources = {ck: (pre_dir / ck, pre_dir, "") for ck in names}
    names, bases = list(sources), {parent for parent, _, _ in sources.values()}
    bp = arm.branch
    every = names if bp.checkpoints == "all" else [names[i] for i in _indices(bp.checkpoints, names)]
    per = {m: [names[i] for i in _indices(idx, names)] for m, idx in bp.per_method.items()}
    run = f"p{ps}" if ps else ""  # branches of the same recipe config from another pretraining run
    finals: list[tuple[Path, list[Path]]] = []  # (checkpoint to evaluate, the nodes it needs)
    for ck in names:
        methods = [m for m in bp.methods if ck in per.get(m, every)]
        if not methods:
            continue
        parent, home, base = sources[ck]  # the checkpoint, the node that makes it, a suite revision's identity
        finals.append((parent, [home]))
        for seed in bp.seeds:
            for method in methods:
                bcfg = arm.branch_config(seed, method, base)
                out = root / "branch" / method / ck / f"{run}s{seed}-{bcfg.hash()}"
                first = RECIPES[method].after or None  # SFT→RL and SFT-Gold→RL start from that SFT branch
                sft_cfg = arm.branch_config(seed, first, base) if first else None  # the SFT branch's own config
                sft_dir = root / "branch" / first / ck / f"{run}s{seed}-{sft_cfg.hash()}" if sft_cfg else None
                deps = [home] + ([sft_dir] if sft_dir and first in methods else [])
                on = task_class(bcfg.task.name).node_label()  # " on gsm8k": a real training task
                nodes.append(Node("branch", f"branch {method}{on} {ck} {run}s{seed} [{label}]", out,
                                  _branch_job(bcfg, parent, out, method, sft_dir, sft_cfg), label, deps,
                                  cost=float(total_steps(method, bcfg, bcfg.world.n_train) * n), pretrain_seed=ps,
                                  rate=f"branch {method}"))
                finals.append((out / "final", [out]))
    evaluated = eval_task(arm.eval, cfg)
    for ck_path, deps in finals:
        # readiness: the base on its RL training prompts (the training task's train split)
        readiness = [(cfg.task, "train")] if arm.eval.readiness and ck_path in bases else []
        pairs = [(evaluated, s) for s in arm.eval.splits]
        for tc, split in [*pairs, *[r for r in readiness if r not in pairs]]:
            task = task_class(tc.name)
            name = task.result_name(split)  # the synthetic task's: the split alone, as in studies before tasks
            out = root / "eval" / _label(root, ck_path) / f"{name}.json"
            protocol = {**_protocol(arm.eval), **task.plan_protocol(tc, cfg.world, split)}
            problems = arm.eval.max_problems or getattr(cfg.world, f"n_{split}", cfg.world.n_test)
            nodes.append(Node("eval", f"eval {_label(root, ck_path)} {name}", out,
                              _eval_job(arm.eval, root, ck_path, split, out, tc, protocol), label, deps, protocol,
                              float(problems * arm.eval.n * n), ps, "eval"))
        if arm.eval.lm_eval:  # general capability on real benchmarks, once per checkpoint
            out = root / "eval" / _label(root, ck_path) / "lm-eval.json"
            protocol = {"lm_eval": list(arm.eval.lm_eval), "lm_eval_limit": arm.eval.lm_eval_limit}
            nodes.append(Node("lm_eval", f"lm-eval {_label(root, ck_path)}", out,
                              _lm_eval_job(ck_path, out, protocol), label, deps, protocol, pretrain_seed=ps,
                              rate="lm_eval"))
    return nodes


def _suite_nodes(base, cfg: Config, root: Path, label: str) -> tuple[list[Node], dict]:
    """One node per suite revision, copying it into root/base/<model>/<name> (rlearly.study.suite), and the
    checkpoints they make: {name: (the checkpoint, the node's directory (the same), its identity for branch.base)}."""
    from rlearly.study.suite import materialize

    home = root / "base" / (base.model.replace("/", "__") or "local")
    nodes, sources = [], {}
    for src in base.sources:
        out = home / src.name
        nodes.append(Node("base", f"base {src.model or 'local'} {src.revision}", out,
                          lambda src=src, out=out: materialize(src, out, cfg), label))
        sources[src.name] = (out, out, src.identity())
    return nodes, sources


def eval_task(e: EvalPlan, cfg: Config):
    """The task (a config.TaskConfig) an arm's evaluations read: eval.task, or the arm's training task; another task
    in the training task's generation protocol where it takes one (Task.eval_config): the models' format."""
    return task_class(e.task).eval_config(e.task_files, cfg.task) if e.task else cfg.task


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


def _protocol(e: EvalPlan) -> dict:
    """What an evaluation result must record to count as this plan's (n, ks, seed, problems; the sampler when it
    is not rlearly's own, its precision when not fp32 and the few-shot exemplars when not 2, so results of older
    plans still count)."""
    return dict(n=e.n, ks=list(e.ks), eval_seed=e.seed, max_problems=e.max_problems, base_prompt=e.base_prompt,
                **({"backend": e.backend} if e.backend != "torch" else {}),
                **({"dtype": e.dtype} if e.dtype not in ("", "fp32") else {}),
                **({"shots": e.shots} if e.shots != 2 else {}))


def _eval_job(e: EvalPlan, root: Path, ckpt: Path, split: str, out: Path, tc, protocol: dict):
    def job():
        from rlearly.evaluation import record
        from rlearly.evaluation.evaluate import BASE_METHODS
        from rlearly.lm.checkpoint import load_config_of, read_meta
        from rlearly.tasks import config_task

        mode = e.base_prompt if read_meta(ckpt, verify=False).get("method") in BASE_METHODS else "zero-shot"
        cfg = load_config_of(ckpt)  # its runtime.device says where to sample (auto: a GPU where there is one)
        task = config_task(tc, cfg.world)  # a task made from the world: the checkpoint's
        rec = record.evaluation_record(ckpt, task, split, n=e.n, ks=e.ks, seed=e.seed, store_root=root / "samples",
                                       prompt_mode=mode, max_problems=e.max_problems, device=cfg.runtime.device,
                                       backend=e.backend, dtype=e.dtype or "fp32", shots=e.shots, protocol=protocol)
        record.write_record(out, rec)
    return job


def _lm_eval_job(ckpt: Path, out: Path, protocol: dict):
    def job():
        from rlearly.evaluation import lmeval
        from rlearly.lm.checkpoint import load_config_of
        from rlearly.lm.runtime import resolve

        device = str(resolve(load_config_of(ckpt).runtime).device)  # auto: a GPU where there is one
        lmeval.run(ckpt, out, protocol["lm_eval"], extra=protocol, limit=protocol["lm_eval_limit"], device=device)
    return job


def _read_result(path: Path, node_path: Path) -> dict:
    """A finished node's JSON file; a corrupt one is an error naming it and how to redo the node."""
    from rlearly.evaluation.record import read_record

    return read_record(path, f"delete {node_path} and run the study again to redo that node")
