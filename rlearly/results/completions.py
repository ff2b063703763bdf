"""The completions behind a study's numbers: what a checkpoint answered, and what a recipe newly solved or lost.

    samples(study, method="rl", tokens=2_000_000)        every stored sample of that evaluation, with the
                                                          question and the gold answer
    solve_rates(study, method, tokens)                   per problem: correct / n
    solved_lost(study, "rl", tokens, against="base")     per problem: the rates of both and newly solved,
                                                          lost, kept or never
    side_by_side(study, ["base", "rl", "sft"], tokens)   the same problems answered by each, one sample each
    fates(study, tokens) / coverage(study)                newly solved, lost, kept and never, per method

A table row (arm, method, parent_tokens, pretrain_seed, seed, split) names one evaluated checkpoint; its
samples are read from the study's own store (<study>/samples), the question from the world of the checkpoint
the evaluation recorded. Nothing is sampled here.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pandas as pd

from rlearly.errors import DataError
from rlearly.results.analysis import load_tables, resolve_path

STATUS = ("newly solved", "lost", "kept", "never")  # solved_lost's status, in display order
COLUMNS = ["problem_id", "question", "gold", "sample_index", "completion", "answer_text", "correct", "tokens",
           "finished"]


def _row(study_root, method: str, tokens, split: str, arm: str, seed: int, pretrain_seed: int) -> pd.Series:
    """The pass@k-table row naming one evaluated checkpoint (tokens None: the last one `method` has)."""
    p = load_tables(study_root, arm=None)["passk"]
    want = {"arm": arm, "method": method, "split": split, "pretrain_seed": pretrain_seed}
    if method != "base":  # a base checkpoint has no branch seed
        want["seed"] = seed
    sel = p.loc[(p[list(want)] == pd.Series(want)).all(axis=1)] if not p.empty else p
    if sel.empty:
        have = sorted(set(p.loc[p["split"] == split, "method"])) if not p.empty else []
        raise DataError(f"{resolve_path(study_root)}: no {split} evaluation of {method!r} in arm {arm!r} "
                        f"(pretraining seed {pretrain_seed}" + ("" if method == "base" else f", seed {seed}")
                        + f"); evaluated there: {', '.join(have) or 'none'}")
    at = sel["parent_tokens"].max() if tokens is None else tokens
    row = sel[sel["parent_tokens"] == at]
    if row.empty:
        raise DataError(f"{method!r} was not evaluated at {at} tokens in arm {arm!r}; it was at "
                        f"{', '.join(str(t) for t in sorted(sel['parent_tokens'].unique()))}")
    return row.iloc[0]


def _checkpoint_of(root: Path, checkpoint_id: str, split: str) -> tuple[Path, dict]:
    """The checkpoint directory the study's evaluation of `checkpoint_id` on `split` recorded, and that record
    (eval/<checkpoint>/<split>.json, or <task>-<split>.json for a real task). The record is the path as the run
    saw it (relative to where it ran, or another machine's): it is found under `root` by its part inside the
    study (pretrain/... or branch/...)."""
    for f in sorted((root / "eval").glob("*/*.json")):
        r = json.loads(f.read_text())
        if r.get("checkpoint_id") == checkpoint_id and r.get("split", f.stem) == split:
            parts = Path(r["checkpoint"]).parts
            for i in range(len(parts)):
                if (root / Path(*parts[i:])).is_dir():
                    return root / Path(*parts[i:]), r
            raise DataError(f"{f}: checkpoint {r['checkpoint']} is not under {root}")
    raise DataError(f"{root}: no evaluation in eval/ on {split} records checkpoint {checkpoint_id}")


def _problems_of(root: Path, checkpoint_id: str, split: str) -> dict:
    ckpt, record = _checkpoint_of(root, checkpoint_id, split)
    return _problems(ckpt, split, record)


_PROBLEMS: dict = {}  # (world or task, split) -> {problem id: problem}: a study's checkpoints mostly share one


def _problems(ckpt: Path, split: str, record: dict) -> dict:
    """The problems of `split` an evaluation `record` scored, by id (built once per world or task): the synthetic
    task of the world checkpoint `ckpt` was trained on, or the task (and data files) the record names."""
    from rlearly.config import TaskConfig
    from rlearly.lm.checkpoint import load_config_of
    from rlearly.tasks import DEFAULT_TASK, config_task, task_class

    world = load_config_of(ckpt).world
    tc = TaskConfig(record.get("task", DEFAULT_TASK), list(record.get("task_files", [])))  # older: the world's
    key = (json.dumps(dataclasses.asdict(world), sort_keys=True) if task_class(tc.name).from_world else repr(tc), split)
    if key not in _PROBLEMS:
        _PROBLEMS[key] = {str(p.id): p for p in config_task(tc, world).problems(split)}
    return _PROBLEMS[key]


def samples(study_root: str | os.PathLike, method: str = "base", tokens=None, split: str = "test",
            arm: str = "main", seed: int = 0, pretrain_seed: int = 0) -> pd.DataFrame:
    """Every stored sample of one evaluated checkpoint of a study (the base checkpoint for method "base"),
    one row per (problem, sample), with the question and the gold answer: COLUMNS."""
    from rlearly.evaluation.store import SampleStore

    root = resolve_path(study_root)
    row = _row(root, method, tokens, split, arm, seed, pretrain_seed)
    df = SampleStore(root / "samples").load(row["task_id"], row["checkpoint_id"], split)
    if df.empty:
        raise DataError(f"{root / 'samples'} holds no samples of checkpoint {row['checkpoint_id']} on {split}")
    eval_seed = min(df["seed"].unique(), key=lambda s: (s != 0, s))  # the study's evaluation seed (0 unless set)
    df = df[(df["seed"] == eval_seed) & (df["sample_index"] < int(row["n"]))]
    problems = _problems_of(root, row["checkpoint_id"], split)
    df = df.assign(question=df["problem_id"].map(lambda i: problems[i].question),
                   gold=df["problem_id"].map(lambda i: problems[i].answer))
    return df[COLUMNS].reset_index(drop=True)


def solve_rates(study_root, method: str = "base", tokens=None, split: str = "test", **which) -> pd.Series:
    """Per-problem solve rate (correct / n) of one evaluated checkpoint, indexed by problem id."""
    return samples(study_root, method, tokens, split, **which).groupby("problem_id")["correct"].mean()


def solved_lost(study_root, method: str = "rl", tokens=None, against: str = "base", split: str = "test",
                **which) -> pd.DataFrame:
    """Per problem (both evaluated): the solve rate under `against` and under `method` from the same
    checkpoint, the shift, and status: newly solved (0 → > 0), lost (> 0 → 0), kept or never."""
    tokens = _row(study_root, method, tokens, split, which.get("arm", "main"), which.get("seed", 0),
                  which.get("pretrain_seed", 0))["parent_tokens"]
    return _fate_frame(solve_rates(study_root, against, tokens, split, **which),
                       solve_rates(study_root, method, tokens, split, **which), against, method)


def _fate_frame(a: pd.Series, b: pd.Series, against: str, method: str) -> pd.DataFrame:
    """solved_lost's table from the two solve-rate series."""
    df = pd.concat({against: a, method: b}, axis=1, join="inner")
    df["shift"] = df[method] - df[against]
    df["status"] = pd.Categorical([status(x, y) for x, y in zip(df[against], df[method])], categories=STATUS)
    return df.sort_values(["status", "shift"], ascending=[True, False])


def status(before: float, after: float) -> str:
    """A problem's fate between two solve rates: newly solved (0 → > 0), lost (> 0 → 0), kept or never."""
    if before == 0:
        return "newly solved" if after > 0 else "never"
    return "lost" if after == 0 else "kept"


def last_tokens(study_root, method: str = "rl", split: str = "test", arm: str = "main") -> int:
    """The last checkpoint (parent_tokens) at which `method` was evaluated on `split`."""
    return int(_row(study_root, method, None, split, arm, 0, 0)["parent_tokens"])


def fates(study_root, tokens=None, methods=("rl", "sft", "sft_gold", "sft_rl", "sft_gold_rl", "parallel"),
          against: str = "base", split: str = "test", **which) -> pd.DataFrame:
    """For each method evaluated at `tokens` (default: RL's last checkpoint): how many problems it newly
    solved, lost, kept and never solved against `against` from the same checkpoint, and the mean shift of
    the per-problem solve rate. Methods not evaluated there are left out."""
    tokens = last_tokens(study_root, split=split) if tokens is None else tokens
    p = load_tables(study_root, arm=None)["passk"]
    here = set(p.loc[(p["parent_tokens"] == tokens) & (p["split"] == split), "method"])
    rows, base = {}, solve_rates(study_root, against, tokens, split, **which)  # read once, not per method
    for m in (m for m in methods if m in here):
        d = _fate_frame(base, solve_rates(study_root, m, tokens, split, **which), against, m)
        rows[m] = {**d["status"].value_counts().reindex(STATUS).to_dict(), "mean shift": d["shift"].mean(),
                   "problems": len(d)}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(f"vs {against} at {tokens:,} tokens")


def coverage(study_root, methods=None, split: str = "test", arm: str = "main") -> pd.DataFrame:
    """plots.coverage_bars's table: for each method (default every one evaluated) and checkpoint, problems
    solved by both it and its base, by the branch only (newly solved), by the base only (lost), by neither.
    Seed 0 of each branch, the first pretraining run."""
    p = load_tables(study_root, arm=None)["passk"]
    p = p[(p["arm"] == arm) & (p["split"] == split) & (p["method"] != "base") & (p["seed"] == 0)
          & (p["pretrain_seed"] == 0)]
    names = {"kept": "both", "newly solved": "branch_only", "lost": "start_only", "never": "neither"}
    rows, base = [], {}  # base's solve rates, read once per checkpoint
    for (m, t), _ in p.groupby(["method", "parent_tokens"]):
        if methods is None or m in methods:
            if t not in base:
                base[t] = solve_rates(study_root, "base", t, split, arm=arm)
            d = _fate_frame(base[t], solve_rates(study_root, m, t, split, arm=arm), "base", m)
            counts = d["status"].value_counts()
            rows.append({"method": m, "parent_tokens": t, **{names[k]: int(counts.get(k, 0)) for k in STATUS}})
    return pd.DataFrame(rows, columns=["method", "parent_tokens", *names.values()])


def side_by_side(study_root, methods=("base", "rl", "sft", "sft_rl"), tokens=None, split: str = "test",
                 problems=None, n_problems: int = 5, sample_index: int = 0, **which) -> pd.DataFrame:
    """The same problems answered by each method from one checkpoint: one row per problem (question, gold),
    a column per method with its sample `sample_index` marked ✓/✗ and its solve rate. `problems`: ids to
    show (default the first `n_problems` that every method has)."""
    frames = {}
    for m in methods:
        frames[m] = samples(study_root, m, tokens, split, **which)
    common = sorted(set.intersection(*(set(d["problem_id"]) for d in frames.values())), key=_natural)
    ids = list(problems) if problems is not None else common[:n_problems]
    first = frames[methods[0]].drop_duplicates("problem_id").set_index("problem_id")
    out = first.loc[ids, ["question", "gold"]]
    for m, d in frames.items():
        rate = d.groupby("problem_id")["correct"].mean()
        one = d[d["sample_index"] == sample_index].set_index("problem_id")
        out[m] = [f"{'✓' if one.at[i, 'correct'] else '✗'} {one.at[i, 'completion'].strip()}  (solves "
                  f"{rate[i]:.0%})" for i in ids]
    return out


def show(df: pd.DataFrame):
    """A side_by_side (or samples) table for reading: whole completions, left-aligned, wrapped."""
    return df.style.set_properties(**{"text-align": "left", "white-space": "pre-wrap", "vertical-align": "top"})


def _natural(pid: str):
    head = pid.rstrip("0123456789")
    tail = pid[len(head):]
    return (head, int(tail) if tail else -1)
