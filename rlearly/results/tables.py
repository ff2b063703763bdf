"""A finished study's tidy tables, read (rlearly.study.tables writes them): checked against their recorded sha256,
one arm's rows at a time, and the plain views notebooks need (seed means, pivots, last values), and `results.json`.

Conventions: a "checkpoint" is a pretraining checkpoint, named by `parent_tokens`; "last" is the one with the most
tokens. A *unit* of trained weights is one (pretrain_seed, seed): the pretraining run it comes from and its
branch's seed (base checkpoints: one unit per pretraining run). Where a table holds several units a value is the
mean over them. Nothing here trains or samples.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from rlearly.errors import DataError, RlearlyError
from rlearly.files import REPO
from rlearly.train import method_order

TABLES = ("passk", "general", "branch_metrics", "pretrain_metrics")

UNIT = ["pretrain_seed", "seed"]  # one unit of trained weights (module docstring)


def repo_root() -> Path:
    """The checkout holding `notebooks/` (the package is installed editable from it)."""
    return REPO


def project_root() -> Path:
    """Where a notebook's relative paths (runs/..., papermill_runs/...) live: $RLEARLY_ROOT (`make lab` sets it
    to the directory it runs in), else the checkout the package is installed from."""
    return Path(os.environ["RLEARLY_ROOT"]) if os.environ.get("RLEARLY_ROOT") else repo_root()


def resolve_path(path: str | os.PathLike) -> Path:
    """A relative path from the working directory where it is there, else from project_root(): a notebook runs in
    notebooks/, and a study not run yet belongs under the project's runs/, not under notebooks/runs/."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p.resolve()
    return (project_root() / p).resolve()


# ---------------------------------------------------------------- tables

def load_tables(study_root: str | os.PathLike, arm: str | None = "main") -> dict[str, pd.DataFrame]:
    """The tidy tables of a finished study (an empty CSV gives an empty DataFrame), restricted to the rows
    of one `arm` (default the main experiment; None = every arm). `timings` is optional."""
    folder = resolve_path(study_root) / "tables"
    missing = [t for t in TABLES if not (folder / f"{t}.csv").is_file()]
    if missing:
        raise RlearlyError(f"{folder} lacks {', '.join(t + '.csv' for t in missing)}: {_run_hint(folder.parent)}")
    rerun = f"run `rlearly study run <spec> --root {folder.parent}` again to rewrite the tables"
    files = _table_digests(folder, rerun)
    out = {}
    for t in (*TABLES, "timings", "general_items", "arms", "floor", "lm_eval", "power", "difficulty",
              "passk_curve"):  # optional: older lack them
        f = folder / f"{t}.csv"
        if f.name in files and f.is_file():
            data, info = f.read_bytes(), files[f.name]
            if len(data) != info.get("bytes") or hashlib.sha256(data).hexdigest() != info.get("sha256"):
                raise DataError(f"{f} is corrupt or truncated (size/sha256 differ from meta.json); {rerun}")
        try:
            df = pd.read_csv(f)
        except (pd.errors.EmptyDataError, FileNotFoundError):
            df = pd.DataFrame()
        except (pd.errors.ParserError, UnicodeDecodeError) as e:
            raise DataError(f"{f} is corrupt ({str(e).splitlines()[0][:120]}); {rerun}") from None
        if arm is not None and "arm" in df and t not in ("timings", "arms"):
            df = df[df["arm"] == arm].reset_index(drop=True)
        if "seed" in df and "pretrain_seed" not in df:  # a study from before pretraining seeds: one run per arm
            df.insert(list(df.columns).index("seed"), "pretrain_seed", 0)
        out[t] = df
    return out


def _run_hint(root: Path) -> str:
    """How to make a study's tables: its run command, from the project root (where studies/ and runs/ are)."""
    where = project_root().resolve()
    default = (where / "runs" / root.name).resolve() == root
    cmd = f"rlearly study run studies/{root.name}.yaml" + ("" if default else f" --root {root}")
    return f"the study has not been run there; in {where} run `{cmd}` (or its own spec) first"


def _table_digests(folder: Path, rerun: str) -> dict:
    """tables/meta.json's {file name: {bytes, sha256}}, written after the tables; {} for older studies."""
    f = folder / "meta.json"
    if not f.is_file():
        return {}
    try:
        files = json.loads(f.read_text())["files"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        files = None
    if not isinstance(files, dict) or not all(isinstance(v, dict) for v in files.values()):
        raise DataError(f"{f} is corrupt; {rerun}")
    return files


def arms(study_root: str | os.PathLike) -> list[str]:
    """The arms a study's tables hold, main first."""
    df = load_tables(study_root, arm=None)["passk"]
    names = list(dict.fromkeys(df["arm"])) if "arm" in df else []
    return sorted(names, key=lambda a: (a != "main", names.index(a)))


def role_arms(tables: dict, roles) -> list[str]:
    """The table labels of the arms that play `roles` (study spec `role:`), in the roles' order; missing
    roles are left out."""
    arms = tables.get("arms", pd.DataFrame())
    if arms.empty:
        return []
    by_role = {r.role: r.label for r in arms.itertuples() if isinstance(r.role, str)}
    return [by_role[r] for r in roles if r in by_role]


def seed_mean(passk: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """One row per (method, parent_tokens, k): mean pass@k over seeds, CI envelope, seed count."""
    df = passk[passk["split"] == split]
    if df.empty:
        have = sorted(passk["split"].unique()) if "split" in passk else []
        raise RlearlyError(f"the passk table has no rows for split {split!r} (it has {have})")
    return df.groupby(["method", "parent_tokens", "k"], as_index=False).agg(
        pass_at_k=("pass_at_k", "mean"), ci_low=("ci_low", "min"), ci_high=("ci_high", "max"),
        n_seeds=("pass_at_k", "size"))


def k_max(passk: pd.DataFrame, split: str = "test") -> int:
    """The largest k that every (method, checkpoint) was evaluated at."""
    ks = seed_mean(passk, split).groupby(["method", "parent_tokens"])["k"].apply(set)
    common = set.intersection(*ks)
    if not common:
        raise RlearlyError("the passk table has no k shared by every method and checkpoint")
    return int(max(common))


def pivot_at(passk: pd.DataFrame, k: int, split: str = "test") -> pd.DataFrame:
    """pass@k, rows = method, columns = parent_tokens (mean over seeds)."""
    df = seed_mean(passk, split)
    out = df[df["k"] == k].pivot(index="method", columns="parent_tokens", values="pass_at_k")
    return out.reindex(method_order(out.index))


def passk_wide(passk: pd.DataFrame, parent_tokens, split: str = "test") -> pd.DataFrame:
    """pass@k at one checkpoint, rows = method, columns = k (mean over seeds)."""
    df = seed_mean(passk, split)
    out = df[df["parent_tokens"] == parent_tokens].pivot(index="method", columns="k", values="pass_at_k")
    return out.reindex(method_order(out.index))


def difficulty_wide(difficulty: pd.DataFrame, parent_tokens, k: int = 1, split: str = "test") -> pd.DataFrame:
    """pass@k by the problems' operation count at one checkpoint, rows = method, columns = n_ops (mean over runs
    and seeds)."""
    df = difficulty[(difficulty["parent_tokens"] == parent_tokens) & (difficulty["split"] == split)
                    & (difficulty["k"] == k)]
    out = df.pivot_table(index="method", columns="n_ops", values="pass_at_k")
    return out.reindex(method_order(out.index))


def deltas_vs_base(passk: pd.DataFrame, ks, split: str = "test") -> pd.DataFrame:
    """Rows (method, parent_tokens, k, base, branch, delta) for every branch with a base at its checkpoint."""
    df = seed_mean(passk, split)
    df = df[df["k"].isin(list(ks))]
    base = df[df["method"] == "base"].set_index(["parent_tokens", "k"])["pass_at_k"].rename("base")
    out = df[df["method"] != "base"].join(base, on=["parent_tokens", "k"], how="inner")
    out = out.rename(columns={"pass_at_k": "branch"}).assign(delta=lambda d: d["branch"] - d["base"])
    return _by_method(out[["method", "parent_tokens", "k", "base", "branch", "delta"]])


def _by_method(df: pd.DataFrame) -> pd.DataFrame:
    """Rows in the figures' method order (base, rl, sft, ...), stable within a method."""
    rank = {m: i for i, m in enumerate(method_order(df["method"]))}
    return df.sort_values("method", key=lambda c: c.map(rank), kind="stable").reset_index(drop=True)


def final_values(branch_metrics: pd.DataFrame, column: str) -> pd.DataFrame:
    """Last logged value of `column` per (method, parent_tokens), mean over seeds; empty if never logged."""
    if branch_metrics.empty or column not in branch_metrics:
        return pd.DataFrame(columns=["method", "parent_tokens", column])
    df = branch_metrics.dropna(subset=[column]).sort_values("step")
    last = df.groupby(["method", "parent_tokens", "seed"], as_index=False, dropna=False).last()
    return _by_method(last.groupby(["method", "parent_tokens"], as_index=False)[column].mean())


def last_values(df: pd.DataFrame, columns, by: str = "tokens") -> dict:
    """{column: its last non-missing value in `by` order} for each present column (final NLLs, accuracies). With
    several pretraining runs (a `pretrain_seed` column): the main run's (the lowest seed) under the column's name,
    and the runs' mean and std of their last values under `<column>.runs_mean` / `.runs_sd`, with `runs`."""
    df = df.sort_values(by) if by in df else df
    runs = sorted(df["pretrain_seed"].dropna().unique()) if "pretrain_seed" in df else []
    if len(runs) <= 1:
        return {c: df[c].dropna().iloc[-1] for c in present_columns(df, columns)}
    per = {r: last_values(df[df["pretrain_seed"] == r].drop(columns="pretrain_seed"), columns, by) for r in runs}
    out = dict(per[runs[0]]) | {"runs": len(runs)}
    for c in present_columns(df, columns):
        vals = [per[r][c] for r in runs if c in per[r]]
        if c != by and len(vals) > 1:
            out |= {f"{c}.runs_mean": float(np.mean(vals)), f"{c}.runs_sd": float(np.std(vals, ddof=1))}
    return out


def present_columns(df: pd.DataFrame, columns) -> list[str]:
    """The columns of `df` among `columns` that hold at least one value (what there is to plot)."""
    return [c for c in columns if c in df and df[c].notna().any()]


def sweep_ks(passk: pd.DataFrame, split: str = "test") -> list[int]:
    """1, a middle k and k_max among the evaluated ks (the checkpoint sweep's panels)."""
    ks = sorted(k for k in seed_mean(passk, split)["k"].unique() if k <= k_max(passk, split))
    return sorted({ks[0], ks[len(ks) // 2], ks[-1]})


# ---------------------------------------------------------------- side experiments (arms)

def shown(df: pd.DataFrame, digits: int = 4):
    """A table for reading: `digits` decimals, and "—" where a value is missing (not NaN)."""
    return df.style.format(precision=digits, na_rep="—")


def fmt_tokens(t) -> str:
    from rlearly.results.plots import fmt_tokens as f
    return f(t)


# ---------------------------------------------------------------- results.json

def _number(key: str, v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None  # NaN in a table means "not measured"
    if isinstance(v, (bool, np.bool_)):
        return int(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    v = float(v)
    if not math.isfinite(v):
        raise RlearlyError(f"results value {key!r} is {v}: results.json holds finite numbers or null")
    return v


def write_results(results: dict, results_dir: str | os.PathLike, name: str) -> Path:
    """`<results_dir>/<name>.results.json`: a flat {key: finite number | null} mapping, written atomically."""
    clean = {str(k): _number(str(k), v) for k, v in results.items()}
    out = Path(results_dir) if Path(results_dir).is_absolute() else project_root() / results_dir
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.results.json"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(clean, indent=2, allow_nan=False) + "\n")
    tmp.replace(path)
    return path
