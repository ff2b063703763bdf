"""The hard split's difficulty, chosen on dev_hard (issue 37): the hard split no model reaches (best pass@16 .043)
cannot tell two recipes apart, so claim 9 is judged on `sealed_hard`, made at the operation count where the study's
main base (its last pretraining checkpoint) has pass@k_max inside TARGET, the one nearest its middle.

Only dev_hard is read (math_world.MathWorld.levels(): max_ops .. hard_max_ops, 100 problems each): a tuning choice,
like any on dev. The choice is written once per world family to studies/hard_level/<family>.json (committed), which
`rlearly seal` reads to make sealed_hard at that level.

    measure(ckpt, world, n, k)   pass@1 and pass@k per operation count on dev_hard
    choose(table, k)             the level, or None when no level lands inside TARGET
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from rlearly.data import sealed_record
from rlearly.evaluation.evaluate import evaluate_passk
from rlearly.evaluation.passk import pass_at_k_by
from rlearly.evaluation.store import SampleStore

TARGET = (0.10, 0.50)  # the main base's pass@k_max on the chosen level: reachable, not solved (issue 37)


def measure(ckpt, world, n: int, k: int, store_root, prompt_mode: str = "zero-shot", seed: int = 0,
            progress: bool = False) -> pd.DataFrame:
    """pass@1 and pass@k of `ckpt` on dev_hard per operation count: rows (ops, n_problems, pass@1, pass@k), with the
    checkpoint id and task id in `attrs`."""
    from rlearly.tasks import task_class

    task = task_class("synthetic")(world=world)
    res = evaluate_passk(ckpt, task, "dev_hard", n, sorted({1, k}), seed, store_root, prompt_mode,
                         progress=progress)
    problems = task.problems("dev_hard")
    _, counts = SampleStore(store_root).counts(res["task_id"], res["checkpoint_id"], "dev_hard", n, seed,
                                               [p.id for p in problems])
    rows = pd.DataFrame(pass_at_k_by(n, counts, [p.raw.n_ops for p in problems], sorted({1, k})))
    out = rows.pivot_table(index=["group", "n_problems"], columns="k", values="pass_at_k").reset_index()
    out.columns = ["ops", "n_problems", *[f"pass@{c}" for c in out.columns[2:]]]
    out.attrs = {"checkpoint_id": res["checkpoint_id"], "task_id": res["task_id"], "n": n, "k": k,
                 "prompt_mode": res["prompt_mode"]}
    return out


def choose(table: pd.DataFrame, k: int) -> int | None:
    """The operation count whose pass@k lies in TARGET, nearest its middle (ties: the harder); None if none does."""
    col, mid = f"pass@{k}", sum(TARGET) / 2
    inside = table[(table[col] >= TARGET[0]) & (table[col] <= TARGET[1])]
    if inside.empty:
        return None
    return int(inside.assign(off=(inside[col] - mid).abs().round(9)).sort_values(["off", "ops"], ascending=[True, False])
               ["ops"].iloc[0])


def record_path(world) -> Path:
    return sealed_record.LEVELS / f"{sealed_record.family(world)}.json"


def chosen(world) -> int | None:
    """The level recorded for the world's family, or None before `rlearly hard-level` has chosen one."""
    f = record_path(world)
    return json.loads(f.read_text()).get("ops") if f.is_file() else None
