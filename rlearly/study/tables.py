"""A study's tidy tables (runs/<study>/tables/*.csv, with their sizes and sha256 in tables/meta.json): every
finished node of the plan as rows labelled with their arm, pretraining run and seed; the guessing floor; from the
sample store, pass@k per operation count (`difficulty`) and at every k of 1..n (`passk_curve`)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from rlearly.config import load_config
from rlearly.files import read_metrics, write_atomic
from rlearly.study.nodes import Node, _read_result, eval_task, plan
from rlearly.study.spec import StudySpec, arm_labels
from rlearly.tasks import task_class


def _row_identity(node: Node, checkpoint_id: str, method: str | None, parent_tokens, seed) -> dict:
    """What names an evaluated checkpoint in the tables (bases under one method name, "base")."""
    from rlearly.evaluation.evaluate import BASE_METHODS

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

    root = Path(root)
    passk_rows, general_rows, item_rows, branch_rows, pre_rows, general_seen = [], [], [], [], [], set()
    lm_eval_rows, difficulty_rows, curve_rows, problems = [], [], [], {}
    arms_by_name = {a.name: a for a in spec.all_arms()}
    for node in plan(spec, root):
        if not node.done:
            continue
        if node.kind == "eval":
            r = _read_result(node.path, node.path)
            ident = {**_row_identity(node, r["checkpoint_id"], r["method"], r["parent_tokens"], r["seed"]),
                     "split": r["split"]}
            passk_rows += [{**ident, "task_id": r["task_id"], "prompt_mode": r["prompt_mode"], "n": r["n"],
                            "format_rate": r.get("format_rate"), **p} for p in r["passk"]]
            by_ops, curve = _breakdown(arms_by_name[node.arm], node, r, root, problems)
            difficulty_rows += [{**ident, **row} for row in by_ops]
            curve_rows += [{**ident, **row} for row in curve]
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
                         prompts_per_step=cfg.rl.prompts_per_step, n_params=matmul_params(node.path / "final"))
            branch_rows += [{**ident, **row} for row in read_metrics(node.path / "metrics.jsonl")]
        else:
            pre_rows += [{"arm": node.arm, "config_hash": node.path.name, "pretrain_seed": node.pretrain_seed, **row}
                         for row in read_metrics(node.path / "metrics.jsonl")]
    labels = arm_labels(spec)
    arms = [dict(arm=a.name, label=labels[a.name], role=a.role or None) for a in spec.all_arms()]
    tables = {"passk": pd.DataFrame(passk_rows), "general": pd.DataFrame(general_rows),
              "general_items": pd.DataFrame(item_rows), "arms": pd.DataFrame(arms), "floor": floor_table(spec),
              "branch_metrics": pd.DataFrame(branch_rows), "pretrain_metrics": pd.DataFrame(pre_rows),
              "timings": pd.DataFrame(read_metrics(root / "timings.jsonl")), "lm_eval": pd.DataFrame(lm_eval_rows),
              "difficulty": pd.DataFrame(difficulty_rows), "passk_curve": pd.DataFrame(curve_rows)}
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


def matmul_params(checkpoint: Path) -> int | None:
    """The weights a token's forward pass multiplies by (every parameter but the embedding lookup; a tied output
    layer counted as the matmul it is), read from the safetensors header alone: the N of FLOPs ≈ 2·N per token
    forward, 6·N trained. None without weights."""
    f = checkpoint / "model.safetensors"
    if not f.is_file():
        return None
    with f.open("rb") as fh:
        header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
    sizes = {k: int(np.prod(v["shape"])) for k, v in header.items() if k != "__metadata__"}
    embed = next((n for k, n in sizes.items() if k.endswith("embed_tokens.weight")), 0)
    tied = not any(k.endswith("lm_head.weight") for k in sizes)
    return sum(sizes.values()) - (0 if tied else embed)


def _breakdown(arm, node: Node, r: dict, root: Path, problems: dict) -> tuple[list[dict], list[dict]]:
    """An evaluation of the synthetic world read again from the sample store: pass@k per operation count (the
    world's difficulty) at the record's ks, and the mean pass@k at every k of 1..n. ([], []) for another task, or
    where the store lacks the samples (then the record's own pass@k is all there is)."""
    from rlearly.errors import DataError
    from rlearly.evaluation.passk import pass_at_k_by, pass_at_k_curve
    from rlearly.evaluation.store import SampleStore

    world = arm.base_config(node.pretrain_seed).world
    if not task_class(r.get("task", "synthetic")).from_world:
        return [], []
    key = (json.dumps(dataclasses.asdict(world), sort_keys=True), r["split"])
    if key not in problems:
        task = task_class("synthetic")(world=world)
        problems[key] = task.task_id(r["split"]), [(p.id, p.raw.n_ops) for p in task.problems(r["split"])]
    task_id, probs = problems[key]
    if task_id != r["task_id"]:
        return [], []
    probs = probs[:r["n_problems"]]
    n = int(r["n"])
    try:
        _, counts = SampleStore(root / "samples").counts(task_id, r["checkpoint_id"], r["split"], n,
                                                        int(r.get("eval_seed", 0)), [p for p, _ in probs])
    except DataError:
        return [], []
    by_ops = [{"n_ops": row.pop("group"), **row} for row in
              pass_at_k_by(n, counts, [o for _, o in probs], [p["k"] for p in r["passk"]])]
    curve = [{"k": k, "pass_at_k": v} for k, v in pass_at_k_curve(n, counts).items()]
    return by_ops, curve


def floor_table(spec: StudySpec):
    """The adversaries' exact pass@k (rlearly.evaluation.adversaries) on every split each arm evaluates (the train split
    too where it runs the readiness diagnostic), on the problems it evaluates: rows (arm, split, adversary, k,
    pass_at_k), labelled like the arm's other rows."""
    import pandas as pd

    from rlearly.evaluation import adversaries

    labels, frames, seen = arm_labels(spec), [], {}
    for arm in spec.all_arms():
        cfg = arm.base_config()
        world = cfg.world
        splits = [*arm.eval.splits, *(["train"] if arm.eval.readiness and "train" not in arm.eval.splits else [])]
        if not (task_class(eval_task(arm.eval, cfg).name).from_world and task_class(cfg.task.name).from_world):
            continue  # the adversaries know the synthetic world's problems only
        for split in splits:
            key = (json.dumps(dataclasses.asdict(world), sort_keys=True), split, arm.eval.max_problems,
                   tuple(arm.eval.ks), labels[arm.name])  # the world and split: the problems
            if key not in seen:
                seen[key] = adversaries.floor(world, [split], arm.eval.ks, arm.eval.max_problems)
                frames.append(seen[key].assign(arm=labels[arm.name]))
    return pd.concat(frames, ignore_index=True).drop_duplicates() if frames else pd.DataFrame()
