"""Reports: the study's tables -> headline numbers and claims -> papermill notebooks -> HTML (DESIGN §3, §6).

Owns two things, kept apart by section:
  - the *views* notebooks call on the tidy tables that `rlearly.study.write_tables` leaves under
    `<study root>/tables/` (seed means, deltas against base, paired bootstrap CIs from the sample store,
    general-capability deltas, the paper's claims beside what the run measured, `results.json`);
  - the *driver*: execute every notebook of `notebooks/` with papermill into `papermill_runs/<study>/`,
    render each to self-contained HTML in `reports/<study>/` and write `reports/index.html`.

Conventions: a "checkpoint" is a pretraining checkpoint, named by `parent_tokens`; "last" is the one with
the most tokens. Where a table holds several branch seeds a value is the mean over seeds. A delta is branch
− base at the same `parent_tokens`; its CI (paired bootstrap over problems, `rlearly.passk`) spans the
lowest to the highest per-seed bound, so "up" means every seed's CI lies above zero.
Nothing here trains or samples; the tables and the sample store are only read.
"""
from __future__ import annotations

import hashlib
import html
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rlearly.errors import RlearlyError

NOTEBOOKS = ("pretrain", "passk_curves", "expansion_vs_sharpening", "general_capabilities", "training_dynamics",
             "summary")  # execution and index order
TABLES = ("passk", "general", "branch_metrics", "pretrain_metrics")
SFT_FAMILY = ("sft", "sft_gold", "sft_rl")
CAPABILITY_TOL = 0.01  # PAPER §8 claim 6: "|Δ| ≲ 1 pp or relative equivalent"
KERNEL = "python3"


def repo_root() -> Path:
    """The checkout holding `notebooks/` (the package is installed editable from it)."""
    return Path(__file__).resolve().parent.parent


def resolve_path(path: str | os.PathLike) -> Path:
    """A relative path from the working directory, else from the repo root (JupyterLab runs in notebooks/)."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p.resolve()
    return (repo_root() / p).resolve() if (repo_root() / p).exists() else p.resolve()


# ---------------------------------------------------------------- tables

def load_tables(study_root: str | os.PathLike) -> dict[str, pd.DataFrame]:
    """The four tidy tables of a finished study (an empty CSV gives an empty DataFrame)."""
    folder = resolve_path(study_root) / "tables"
    missing = [t for t in TABLES if not (folder / f"{t}.csv").is_file()]
    if missing:
        raise RlearlyError(f"{folder} lacks {', '.join(t + '.csv' for t in missing)}: run "
                           f"`rlearly study run <spec> --root {folder.parent}` first")
    out = {}
    for t in TABLES:
        try:
            out[t] = pd.read_csv(folder / f"{t}.csv")
        except pd.errors.EmptyDataError:
            out[t] = pd.DataFrame()
    return out


def seed_mean(passk: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """One row per (method, parent_tokens, k): mean pass@k over seeds, CI envelope, seed count."""
    df = passk[passk["split"] == split]
    if df.empty:
        raise RlearlyError(f"the passk table has no rows for split {split!r} (it has {sorted(passk['split'].unique())})")
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
    return df[df["k"] == k].pivot(index="method", columns="parent_tokens", values="pass_at_k")


def deltas_vs_base(passk: pd.DataFrame, ks, split: str = "test") -> pd.DataFrame:
    """Rows (method, parent_tokens, k, base, branch, delta) for every branch with a base at its checkpoint."""
    df = seed_mean(passk, split)
    df = df[df["k"].isin(list(ks))]
    base = df[df["method"] == "base"].set_index(["parent_tokens", "k"])["pass_at_k"].rename("base")
    out = df[df["method"] != "base"].join(base, on=["parent_tokens", "k"], how="inner")
    out = out.rename(columns={"pass_at_k": "branch"}).assign(delta=lambda d: d["branch"] - d["base"])
    return out[["method", "parent_tokens", "k", "base", "branch", "delta"]].reset_index(drop=True)


def _sample_counts(store, row_a, row_b, split: str):
    """Per-problem correct counts of two evaluated checkpoints on their shared problems (None if unpaired)."""
    from rlearly.errors import DataError

    try:
        a, b = store.load(row_a.checkpoint_id, split), store.load(row_b.checkpoint_id, split)
    except DataError:
        return None
    for seed in sorted(set(a["seed"]) & set(b["seed"]), key=lambda s: (s != 0, s)):
        ok = [set(d[(d["seed"] == seed) & (d["sample_index"] < int(r.n))].groupby("problem_id").size()
                  .loc[lambda s: s >= int(r.n)].index) for d, r in ((a, row_a), (b, row_b))]
        pids = sorted(ok[0] & ok[1])
        if pids:
            return (store.counts(row_a.checkpoint_id, split, int(row_a.n), seed, pids)[1],
                    store.counts(row_b.checkpoint_id, split, int(row_b.n), seed, pids)[1])
    return None


def compare_methods(study_root, passk: pd.DataFrame, method: str, against: str = "base", ks=None,
                    split: str = "test", n_boot: int = 1000) -> pd.DataFrame:
    """`method` − `against` at each checkpoint (and seed; base has one), with a paired bootstrap CI.

    Rows (parent_tokens, seed, k, start, branch, diff, low, high). start/branch/diff come from the table;
    the CI from the stored samples, and is NaN when those are missing or do not reproduce the table.
    """
    from rlearly import passk as pk
    from rlearly.store import SampleStore

    df = passk[passk["split"] == split]
    ks = list(ks) if ks is not None else [1, k_max(passk, split)]
    ids = df.drop_duplicates(["method", "parent_tokens", "seed"])
    rows, store = [], SampleStore(resolve_path(study_root) / "samples")
    for b in ids[ids["method"] == method].itertuples():
        match = ids[(ids["method"] == against) & (ids["parent_tokens"] == b.parent_tokens)]
        if against != "base":
            match = match[match["seed"] == b.seed]
        if match.empty:
            continue
        a = next(match.itertuples())
        counts = _sample_counts(store, a, b, split)
        for k in ks:
            va = df[(df["checkpoint_id"] == a.checkpoint_id) & (df["k"] == k)]["pass_at_k"]
            vb = df[(df["checkpoint_id"] == b.checkpoint_id) & (df["k"] == k)]["pass_at_k"]
            if va.empty or vb.empty:
                continue
            diff, low, high = float(vb.iloc[0] - va.iloc[0]), math.nan, math.nan
            if counts is not None and k <= min(int(a.n), int(b.n)):
                d = pk.delta_at(counts[0], counts[1], int(a.n), int(b.n), k, n_boot=n_boot)
                if abs(d.diff - diff) < 1e-9:  # the same problems as the table: the CI belongs to it
                    low, high = d.low, d.high
            rows.append(dict(parent_tokens=b.parent_tokens, seed=b.seed, k=k, start=float(va.iloc[0]),
                             branch=float(vb.iloc[0]), diff=diff, low=low, high=high))
    cols = ["parent_tokens", "seed", "k", "start", "branch", "diff", "low", "high"]
    return pd.DataFrame(rows, columns=cols)


def over_seeds(cmp: pd.DataFrame) -> pd.DataFrame:
    """compare_methods rows -> one row per (parent_tokens, k): mean diff, CI envelope, `up`/`down` flags."""
    out = cmp.groupby(["parent_tokens", "k"], as_index=False).agg(
        start=("start", "mean"), branch=("branch", "mean"), diff=("diff", "mean"), low=("low", "min"),
        high=("high", "max"))
    return out.assign(up=out["low"] > 0, down=out["high"] < 0)


def expansion_table(study_root, passk: pd.DataFrame, split: str = "test", against: str = "base",
                    methods=None) -> pd.DataFrame:
    """Δpass@1 and Δpass@k_max with CIs and a verdict (expansion / sharpening / ...), per method and checkpoint."""
    from rlearly import passk as pk

    km = k_max(passk, split)
    methods = methods or [m for m in _method_order(passk["method"]) if m != against]
    rows = []
    for m in methods:
        d = over_seeds(compare_methods(study_root, passk, m, against, [1, km], split))
        for pt, g in d.groupby("parent_tokens"):
            one, big = (g[g["k"] == k].iloc[0] for k in (1, km))
            rows.append({"method": m, "vs": against, "parent_tokens": pt, "Δpass@1": one["diff"],
                         "Δpass@1 CI": _ci(one), f"Δpass@{km}": big["diff"], f"Δpass@{km} CI": _ci(big),
                         "verdict": pk.verdict(_delta(one), _delta(big)) if _has_ci(one, big) else "no CI"})
    return pd.DataFrame(rows)


def general_deltas(general: pd.DataFrame, metrics=("probe_acc", "heldout_nll")) -> pd.DataFrame:
    """Rows (method, parent_tokens, metric, base, value, delta): mean over seeds, branch − base."""
    df = general[general["metric"].isin(metrics)]
    df = df.groupby(["method", "parent_tokens", "metric"], as_index=False)["value"].mean()
    base = df[df["method"] == "base"].set_index(["parent_tokens", "metric"])["value"].rename("base")
    out = df[df["method"] != "base"].join(base, on=["parent_tokens", "metric"], how="inner")
    return out.assign(delta=out["value"] - out["base"]).reset_index(drop=True)


def final_values(branch_metrics: pd.DataFrame, column: str) -> pd.DataFrame:
    """Last logged value of `column` per (method, parent_tokens), mean over seeds; empty if never logged."""
    if branch_metrics.empty or column not in branch_metrics:
        return pd.DataFrame(columns=["method", "parent_tokens", column])
    df = branch_metrics.dropna(subset=[column]).sort_values("step")
    last = df.groupby(["method", "parent_tokens", "seed"], as_index=False, dropna=False).last()
    return last.groupby(["method", "parent_tokens"], as_index=False)[column].mean()


def last_values(df: pd.DataFrame, columns, by: str = "tokens") -> dict:
    """{column: its last non-missing value in `by` order} for each present column (final NLLs, accuracies)."""
    df = df.sort_values(by) if by in df else df
    return {c: df[c].dropna().iloc[-1] for c in present_columns(df, columns)}


def present_columns(df: pd.DataFrame, columns) -> list[str]:
    """The columns of `df` among `columns` that hold at least one value (what there is to plot)."""
    return [c for c in columns if c in df and df[c].notna().any()]


def sweep_ks(passk: pd.DataFrame, split: str = "test") -> list[int]:
    """1, a middle k and k_max among the evaluated ks (the checkpoint sweep's panels)."""
    ks = sorted(k for k in seed_mean(passk, split)["k"].unique() if k <= k_max(passk, split))
    return sorted({ks[0], ks[len(ks) // 2], ks[-1]})


def _method_order(methods) -> list[str]:
    known = ["base", "rl", "sft", "sft_gold", "sft_rl", "parallel", "combined", "interleaved"]
    return [m for m in known if m in set(methods)] + sorted(set(methods) - set(known))


def _delta(row):
    from rlearly.passk import Delta
    return Delta(int(row["k"]), row["start"], row["branch"], row["diff"], row["low"], row["high"])


def _has_ci(*rows) -> bool:
    return all(np.isfinite(r["low"]) and np.isfinite(r["high"]) for r in rows)


def _ci(row) -> str:
    return f"[{row['low']:+.3f}, {row['high']:+.3f}]" if _has_ci(row) else "n/a"


def fmt_tokens(t) -> str:
    from rlearly.plots import fmt_tokens as f
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
    out = Path(results_dir) if Path(results_dir).is_absolute() else repo_root() / results_dir
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.results.json"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(clean, indent=2, allow_nan=False) + "\n")
    tmp.replace(path)
    return path


# ---------------------------------------------------------------- the paper's claims (PAPER §8)

NOT_MEASURED = "not measured in this study"


@dataclass
class Claim:
    """One claim of PAPER §8 beside this study's statistic; `stats` go to results.json (null = not measured)."""

    id: int
    claim: str
    test: str
    measured: str = "—"
    verdict: str = NOT_MEASURED  # held | partly held | not held | inconclusive | not measured in this study
    why: str = ""
    stats: dict = field(default_factory=dict)


class _Study:
    """What the claims read: the tables, the checkpoints, k_max, and cached paired comparisons."""

    def __init__(self, study_root, tables: dict, split: str):
        self.root, self.tables, self.split = study_root, tables, split
        self.passk = tables["passk"]
        test = self.passk[self.passk["split"] == split] if not self.passk.empty else self.passk
        self.methods = set(test["method"]) if not test.empty else set()
        self.ckpts = sorted(test["parent_tokens"].unique()) if not test.empty else []
        self.km = k_max(self.passk, split) if not test.empty else None
        self.solved_any = bool(not test.empty and test["pass_at_k"].max() > 0)
        self._cache = {}

    def has(self, *methods) -> bool:
        return all(m in self.methods for m in methods)

    def cmp(self, method: str, against: str = "base", k: int = 1) -> pd.DataFrame:
        if (method, against) not in self._cache:
            self._cache[method, against] = over_seeds(
                compare_methods(self.root, self.passk, method, against, sorted({1, self.km}), self.split))
        d = self._cache[method, against]
        return d[d["k"] == k].sort_values("parent_tokens").reset_index(drop=True)

    def mean_at(self, method: str, k: int) -> pd.Series:
        d = seed_mean(self.passk, self.split)
        return d[(d["method"] == method) & (d["k"] == k)].set_index("parent_tokens")["pass_at_k"]


def _series(d: pd.DataFrame, col: str = "diff") -> str:
    return "; ".join(f"{fmt_tokens(r['parent_tokens'])}: {r[col]:+.3f}" + (f" {_ci(r)}" if "low" in r else "")
                     for _, r in d.iterrows())


def _no_signal(cl: Claim, s: _Study) -> bool:
    """pass@k is 0 everywhere, or the paired CIs are missing: say so rather than judge."""
    if not s.solved_any:
        cl.verdict, cl.why = "inconclusive", "no checkpoint or branch solved any test problem (pass@k = 0 everywhere)"
        return True
    return False


def _claim1(s: _Study) -> Claim:
    cl = Claim(1, "RL starts working early, after a threshold",
               "Δpass@1 (RL − base) per checkpoint: CI covers 0 at the earliest, lies above 0 at a later one")
    if not s.has("rl", "base") or len(s.ckpts) < 2:
        cl.why = "needs RL branches and base evaluations at ≥ 2 checkpoints"
        return cl
    d = s.cmp("rl")
    cl.stats = {"dpass1_first": d["diff"].iloc[0], "dpass1_last": d["diff"].iloc[-1]}
    cl.measured = "Δpass@1 " + _series(d)
    if _no_signal(cl, s):
        return cl
    if not d["up"].any():
        cl.verdict, cl.why = "not held", "RL did not lift pass@1 significantly at any checkpoint"
    elif d["up"].iloc[0]:
        cl.verdict, cl.why = "partly held", "RL lifts pass@1 already at the earliest checkpoint: no threshold seen"
    else:
        first = d[d["up"]]["parent_tokens"].iloc[0]
        cl.verdict, cl.why = "held", f"flat at the earliest checkpoint, significant gain from {fmt_tokens(first)} tokens"
    return cl


def _claim2(s: _Study) -> Claim:
    cl = Claim(2, "The base model's pass@k on the RL training prompts predicts the RL gain",
               "Spearman ρ between base pass@k_max on the train split and RL Δpass@1 (test) over ≥ 3 checkpoints")
    train = s.passk[(s.passk["split"] == "train") & (s.passk["method"] == "base")] if not s.passk.empty else s.passk
    if train.empty or not s.has("rl", "base") or len(s.ckpts) < 3:
        cl.why = "needs base evaluations on the train split (eval.splits: [test, train]) and RL at ≥ 3 checkpoints"
        return cl
    kt = int(train["k"].max())
    x = train[train["k"] == kt].groupby("parent_tokens")["pass_at_k"].mean()
    y = s.cmp("rl").set_index("parent_tokens")["diff"]
    xy = pd.concat([x.rename("x"), y.rename("y")], axis=1, join="inner")
    rho = xy["x"].corr(xy["y"], method="spearman") if len(xy) >= 3 else math.nan
    cl.stats = {"spearman": rho}
    cl.measured = f"ρ = {rho:+.2f} over {len(xy)} checkpoints (base train pass@{kt}: " + \
        ", ".join(f"{v:.3f}" for v in xy["x"]) + ")"
    if not np.isfinite(rho):
        cl.verdict, cl.why = "inconclusive", "base solve rate or RL gain constant across checkpoints"
    else:
        cl.verdict = "held" if rho >= 0.8 else "partly held" if rho > 0 else "not held"
        cl.why = "monotone relation" if rho >= 0.8 else "weak relation" if rho > 0 else "no positive relation"
    return cl


def _claim3(s: _Study) -> Claim:
    cl = Claim(3, "Direct RL expands: pass@k_max rises with pass@1",
               "Δpass@k_max (RL − base) CI above 0 at every checkpoint where Δpass@1's CI is above 0")
    if not s.has("rl", "base"):
        cl.why = "needs RL branches and base evaluations"
        return cl
    one, big = s.cmp("rl"), s.cmp("rl", k=s.km)
    post = big[one["up"].to_numpy()]
    cl.stats = {"dpasskmax_last": big["diff"].iloc[-1], "dpasskmax_min_post": post["diff"].min() if len(post) else None}
    cl.measured = f"Δpass@{s.km} " + _series(big)
    if _no_signal(cl, s):
        return cl
    if post.empty:
        cl.verdict, cl.why = "inconclusive", "no checkpoint where RL lifted pass@1 significantly"
    elif post["up"].all():
        cl.verdict, cl.why = "held", f"pass@{s.km} up wherever pass@1 is up ({len(post)} checkpoint(s))"
    elif post["down"].any():
        cl.verdict, cl.why = "not held", f"pass@{s.km} falls at a checkpoint where pass@1 rises (sharpening)"
    else:
        cl.verdict, cl.why = "partly held", f"pass@{s.km} not significantly up everywhere pass@1 is"
    return cl


def _claim4(s: _Study) -> Claim:
    cl = Claim(4, "SFT→RL sharpens",
               "against SFT at the last checkpoint: Δpass@1 CI above 0 while Δpass@k_max < 0")
    if not s.has("sft", "sft_rl"):
        cl.why = "needs SFT and SFT→RL branches"
        return cl
    one, big = s.cmp("sft_rl", "sft").iloc[-1], s.cmp("sft_rl", "sft", s.km).iloc[-1]
    cl.stats = {"dpass1": one["diff"], "dpasskmax": big["diff"]}
    cl.measured = f"at {fmt_tokens(one['parent_tokens'])}: Δpass@1 {one['diff']:+.3f} {_ci(one)}, " \
                  f"Δpass@{s.km} {big['diff']:+.3f} {_ci(big)}"
    if _no_signal(cl, s):
        return cl
    if one["up"] and big["diff"] < 0:
        cl.verdict = "held"
        cl.why = "pass@1 up, pass@k_max " + ("significantly down" if big["down"] else "down (CI covers 0)")
    elif one["up"]:
        cl.verdict = "not held" if big["up"] else "partly held"
        cl.why = "pass@1 and pass@k_max both up: expansion" if big["up"] else "pass@1 up, pass@k_max unchanged"
    else:
        cl.verdict, cl.why = "not held", "RL after SFT did not lift pass@1 significantly"
    return cl


def _claim5(s: _Study) -> Claim:
    cl = Claim(5, "RL beats single-demo SFT on pass@1 once the base is capable; SFT-Gold wins on pass@k",
               "pass@1 (RL − SFT): CI not above 0 at the earliest checkpoint, above 0 at the last; "
               "pass@k_max (SFT-Gold − RL) CI above 0 at every checkpoint")
    if not s.has("rl", "sft") or len(s.ckpts) < 2:
        cl.why = "needs RL and SFT branches at ≥ 2 checkpoints"
        return cl
    rs = s.cmp("rl", "sft")
    parts = {"crossover": bool(not rs["up"].iloc[0] and rs["up"].iloc[-1])}
    cl.stats = {"rl_minus_sft_pass1_first": rs["diff"].iloc[0], "rl_minus_sft_pass1_last": rs["diff"].iloc[-1],
                "gold_minus_rl_passkmax_min": None}
    cl.measured = "pass@1 RL − SFT " + _series(rs)
    if s.has("sft_gold"):
        g = s.cmp("sft_gold", "rl", s.km)
        parts["gold wins"] = bool(g["up"].all())
        cl.stats["gold_minus_rl_passkmax_min"] = g["diff"].min()
        cl.measured += f" · pass@{s.km} SFT-Gold − RL " + _series(g)
    if _no_signal(cl, s):
        return cl
    held = [p for p, ok in parts.items() if ok]
    cl.verdict = "held" if len(held) == len(parts) else "partly held" if held else "not held"
    cl.why = "; ".join(f"{p}: {'yes' if ok else 'no'}" for p, ok in parts.items()) + \
        ("" if "sft_gold_rl" in s.methods else "; SFT-Gold→RL not run")
    return cl


def _claim6(s: _Study) -> Claim:
    cl = Claim(6, "RL keeps general capability; SFT erodes it",
               f"mean over checkpoints: RL |Δprobe acc| ≤ {CAPABILITY_TOL:g} and held-out NLL up ≤ "
               f"{CAPABILITY_TOL:.0%}; each SFT-family branch worse by more than that")
    g = s.tables["general"]
    sfts = [m for m in SFT_FAMILY if not g.empty and m in set(g["method"])]
    if g.empty or not {"rl", "base"} <= set(g["method"]) or not sfts:
        cl.why = "needs general-capability scores of base, RL and an SFT-family branch"
        return cl
    d = general_deltas(g).assign(rel=lambda x: x["delta"] / x["base"].abs())
    acc = d[d["metric"] == "probe_acc"].groupby("method")["delta"].mean()
    nll = d[d["metric"] == "heldout_nll"].groupby("method")["rel"].mean()
    keeps = abs(acc["rl"]) <= CAPABILITY_TOL and nll["rl"] <= CAPABILITY_TOL
    erodes = {m: bool(acc[m] < -CAPABILITY_TOL or nll[m] > CAPABILITY_TOL) for m in sfts}
    cl.stats = {f"dprobe_acc.{m}": acc[m] for m in ["rl", *sfts]} | \
               {f"dnll_rel.{m}": nll[m] for m in ["rl", *sfts]}
    cl.measured = " · ".join(f"{m}: Δacc {acc[m]:+.3f}, ΔNLL {nll[m]:+.2%}" for m in ["rl", *sfts])
    sides = [keeps, all(erodes.values())]
    cl.verdict = "held" if all(sides) else "partly held" if any(sides) else "not held"
    cl.why = f"RL {'keeps' if keeps else 'does not keep'} capability; SFT family eroded: " + \
        ", ".join(f"{m} {'yes' if e else 'no'}" for m, e in erodes.items())
    return cl


def _claim7(s: _Study) -> Claim:
    cl = Claim(7, "Parallel averaging wins on pass@k_max and keeps capability",
               "at every checkpoint pass@k_max(parallel) ≥ max(RL, SFT, SFT→RL) and pass@1 between SFT and RL; "
               f"mean probe acc within {CAPABILITY_TOL:g} of RL's")
    if not s.has("parallel", "rl", "sft"):
        cl.why = "needs parallel, RL and SFT branches"
        return cl
    others = [m for m in ("rl", "sft", "sft_rl") if s.has(m)]
    par_k = s.mean_at("parallel", s.km)
    best = pd.concat([s.mean_at(m, s.km) for m in others], axis=1).max(axis=1)
    gap = (par_k - best).dropna()
    p1 = pd.concat([s.mean_at(m, 1) for m in ("parallel", "rl", "sft")], axis=1, keys=["p", "rl", "sft"]).dropna()
    between = ((p1["p"] >= p1[["rl", "sft"]].min(axis=1) - 1e-12) & (p1["p"] <= p1[["rl", "sft"]].max(axis=1) + 1e-12))
    g = general_deltas(s.tables["general"], ("probe_acc",)) if not s.tables["general"].empty else pd.DataFrame()
    acc = g.groupby("method")["delta"].mean() if not g.empty else pd.Series(dtype=float)
    cap_gap = acc["parallel"] - acc["rl"] if {"parallel", "rl"} <= set(acc.index) else None
    cl.stats = {"parallel_minus_best_passkmax_min": gap.min(), "probe_acc_parallel_minus_rl": cap_gap}
    cl.measured = f"pass@{s.km} parallel − best of {'/'.join(others)}: " + \
        "; ".join(f"{fmt_tokens(t)}: {v:+.3f}" for t, v in gap.items()) + \
        f" · pass@1 between SFT and RL at {int(between.sum())}/{len(between)} checkpoints" + \
        (f" · Δprobe acc parallel − RL {cap_gap:+.3f}" if cap_gap is not None else "")
    if _no_signal(cl, s):
        return cl
    parts = {"wins pass@k_max": bool((gap >= -1e-12).all()), "pass@1 between": bool(between.all()),
             "keeps capability": cap_gap is not None and abs(cap_gap) <= CAPABILITY_TOL}
    held = [p for p, ok in parts.items() if ok]
    cl.verdict = "held" if len(held) == len(parts) else "partly held" if held else "not held"
    cl.why = "; ".join(f"{p}: {'yes' if ok else 'no'}" for p, ok in parts.items())
    return cl


def _claim10(s: _Study) -> Claim:
    cl = Claim(10, "Seed brittleness near the threshold",
               "std over ≥ 3 seeds of RL test pass@1 per checkpoint: largest at the first checkpoint with a "
               "significant RL gain, smaller later")
    rl = s.passk[(s.passk["method"] == "rl") & (s.passk["split"] == s.split) & (s.passk["k"] == 1)] \
        if s.has("rl") else pd.DataFrame()
    seeds = int(rl.groupby("parent_tokens")["seed"].nunique().min()) if not rl.empty else 0
    if seeds < 3 or not s.has("base"):
        cl.why = f"the study has {seeds} RL seed(s) per checkpoint; needs ≥ 3 (branch.seeds)"
        return cl
    std = rl.groupby("parent_tokens")["pass_at_k"].std()
    cl.stats = {"seed_std_max": std.max(), "seed_std_last": std.iloc[-1]}
    cl.measured = "std of pass@1 " + "; ".join(f"{fmt_tokens(t)}: {v:.3f}" for t, v in std.items())
    if _no_signal(cl, s):
        return cl
    one = s.cmp("rl")
    if not one["up"].any():
        cl.verdict, cl.why = "inconclusive", "no checkpoint with a significant RL gain (no threshold)"
        return cl
    thr = one[one["up"]]["parent_tokens"].iloc[0]
    later = std[std.index > thr]
    ok = std.idxmax() == thr and (later < std[thr]).all()
    cl.verdict = "held" if ok else "not held"
    cl.why = f"threshold at {fmt_tokens(thr)}; spread largest there: {'yes' if ok else 'no'}"
    return cl


def _not_run(i: int, claim: str, test: str, needs: str):
    return lambda s: Claim(i, claim, test, why=needs)


_CLAIMS = (_claim1, _claim2, _claim3, _claim4, _claim5, _claim6, _claim7,
           _not_run(8, "Rollout count trades sample efficiency for compute efficiency",
                    "accuracy vs prompts seen (n large better) and vs generated tokens (n small better early)",
                    "needs RL runs with small and large rollouts per prompt on easy/hard splits"),
           _not_run(9, "Data composition matters more than model scale",
                    "RL gain on a harder task variant ranks: more task data > larger model ≳ baseline",
                    "needs three pretraining bases (task-data share, model size) in one study"),
           _claim10)


def claims(study_root, tables: dict | None = None, split: str = "test") -> list[Claim]:
    """Each claim of PAPER §8 with the statistic this study measured and a verdict computed from it."""
    s = _Study(study_root, tables if tables is not None else load_tables(study_root), split)
    return [c(s) for c in _CLAIMS]


def claims_frame(cls: list[Claim]) -> pd.DataFrame:
    return pd.DataFrame([{"#": c.id, "claim (PAPER §8)": c.claim, "test": c.test, "this study": c.measured,
                          "verdict": c.verdict, "why": c.why} for c in cls]).set_index("#")


def claims_results(cls: list[Claim]) -> dict:
    out = {f"claim{c.id}.{k}": v for c in cls for k, v in c.stats.items()}
    verdicts = [c.verdict for c in cls]
    return out | {"claims_measured": sum(v != NOT_MEASURED for v in verdicts),
                  "claims_held": verdicts.count("held"), "claims_partly_held": verdicts.count("partly held"),
                  "claims_not_held": verdicts.count("not held")}


# ---------------------------------------------------------------- executing notebooks (papermill)

def _ensure_kernel() -> None:
    """The `python3` kernel must run this interpreter (which has rlearly): install its spec into the venv if not."""
    import shutil
    import sys

    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        argv0 = KernelSpecManager().get_kernel_spec(KERNEL).argv[0]
    except NoSuchKernel:
        argv0 = None
    # jupyter_client runs a spec's bare "python"/"python3" with sys.executable; anything else must be us
    if argv0 in ("python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"):
        return
    if argv0 and Path(shutil.which(argv0) or argv0).resolve() == Path(sys.executable).resolve():
        return
    from ipykernel.kernelspec import install
    install(prefix=sys.prefix, kernel_name=KERNEL)


def _fingerprint(template: Path, tables: Path, params: dict) -> str:
    """What an executed notebook depends on: its template, the tables, the parameters and the views' code."""
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    here = Path(__file__).resolve().parent
    for f in [template, *sorted(tables.glob("*.csv")), here / "report.py", here / "plots.py"]:
        h.update(f.name.encode() + b"\0" + (f.read_bytes() if f.is_file() else b"missing"))
    return h.hexdigest()[:16]


def _stored_fingerprint(nb_path: Path) -> str | None:
    try:
        return json.loads(nb_path.read_text())["metadata"].get("rlearly", {}).get("fingerprint")
    except (OSError, ValueError, KeyError, AttributeError):
        return None


def _cell_error(e) -> str:
    """'cell 4, line `x = f()`: ValueError: ...' from a papermill execution error."""
    tb = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(getattr(e, "traceback", None) or []))
    lines = re.findall(r"^-*>\s*\d+\s+(.*)$", tb, flags=re.M)
    where = f"cell {getattr(e, 'exec_count', None) or '?'}" + (f", line `{lines[-1].strip()}`" if lines else "")
    return f"{where}: {getattr(e, 'ename', type(e).__name__)}: {getattr(e, 'evalue', str(e))}"


def execute_notebooks(spec, root, names=None, out_dir=None, log=print) -> list[Path]:
    """Run each template of notebooks/ with papermill on the study's tables; return the executed notebooks.

    Output: `<out_dir>/<name>.ipynb` (default papermill_runs/<study>/) and its `<name>.results.json`.
    A notebook whose template, tables, parameters and views are unchanged since its last run is skipped.
    A failing one raises RlearlyError naming it and the failing line; its executed copy is kept as
    `<name>.failed.ipynb` and no `<name>.ipynb` is left to look finished.
    """
    import nbformat
    try:
        import papermill as pm
    except ImportError:
        raise RlearlyError("executing notebooks needs papermill: pip install -e '.[dev]'") from None

    spec = _spec(spec)
    root = Path(root).resolve()
    tables = root / "tables"
    load_tables(root)  # missing tables: say "run the study first", not a papermill traceback
    out_dir = Path(out_dir or Path("papermill_runs") / spec.name).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    templates = _templates(names)
    kernel_ok, done = False, []
    for name, template in templates.items():
        out = out_dir / f"{name}.ipynb"
        params = {"study_root": str(root), "study_name": spec.name, "results_dir": str(out_dir)}
        fp = _fingerprint(template, tables, params)
        if out.is_file() and (out_dir / f"{name}.results.json").is_file() and _stored_fingerprint(out) == fp:
            log(f"notebook {name}: up to date ({out})")
            done.append(out)
            continue
        if not kernel_ok:
            _ensure_kernel()
            kernel_ok = True
        log(f"notebook {name}: executing")
        tmp, failed = out_dir / f".{name}.ipynb.tmp", out_dir / f"{name}.failed.ipynb"
        for stale in (out, out_dir / f"{name}.results.json", failed):
            stale.unlink(missing_ok=True)
        try:
            pm.execute_notebook(str(template), str(tmp), parameters=params, kernel_name=KERNEL,
                                cwd=str(repo_root()), progress_bar=False, log_output=False)
        except Exception as e:  # papermill's execution error, a dead kernel, a bad template
            if tmp.exists():
                tmp.replace(failed)
            kept = f" (executed copy: {failed})" if failed.exists() else ""
            raise RlearlyError(f"notebook {name} failed in {_cell_error(e)}{kept}") from None
        if not (out_dir / f"{name}.results.json").is_file():
            tmp.replace(failed)
            raise RlearlyError(f"notebook {name} ran but wrote no {name}.results.json (its last cell must call "
                               f"report.write_results); executed copy: {failed}")
        nb = nbformat.read(tmp, as_version=4)
        nb.metadata["rlearly"] = {"fingerprint": fp, "study": spec.name, "study_root": str(root)}
        nbformat.write(nb, tmp)
        tmp.replace(out)
        done.append(out)
    return done


def _spec(spec):
    from rlearly import study
    return spec if isinstance(spec, study.StudySpec) else study.load_study(spec)


def _templates(names=None) -> dict[str, Path]:
    folder = repo_root() / "notebooks"
    found = {p.stem: p for p in sorted(folder.glob("*.ipynb"))}
    if not found:
        raise RlearlyError(f"no notebook templates in {folder}: run from a checkout of rlearly")
    order = [n for n in NOTEBOOKS if n in found] + sorted(set(found) - set(NOTEBOOKS))
    if names is None:
        return {n: found[n] for n in order}
    unknown = [n for n in names if n not in found]
    if unknown:
        raise RlearlyError(f"unknown notebook(s) {unknown}; known: {', '.join(order)}")
    return {n: found[n] for n in order if n in names}


# ---------------------------------------------------------------- HTML

_HTML_TEMPLATE = """{%- extends 'index.html.j2' -%}
{#- offline: no require.js, MathJax or mermaid from a CDN (DESIGN §10) -#}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


def render_html(executed_nb: str | os.PathLike, out_html: str | os.PathLike) -> Path:
    """Self-contained HTML of an executed notebook: figures embedded, no CDN scripts, set-up code hidden.

    Removed: the parameters cells (template and papermill's injected one) and cells tagged `remove-cell`;
    the input of cells tagged `hide-input`; prompts. Markdown and outputs stay.
    """
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    nb = nbformat.read(executed_nb, as_version=4)
    tags = TagRemovePreprocessor(remove_cell_tags={"parameters", "injected-parameters", "remove-cell"},
                                 remove_input_tags={"hide-input"}, enabled=True)
    exporter = HTMLExporter(template_name="lab", template_file="rlearly.html.j2", mathjax_url="",
                            require_js_url="", embed_images=True, exclude_input_prompt=True,
                            exclude_output_prompt=True,
                            extra_loaders=[jinja2.DictLoader({"rlearly.html.j2": _HTML_TEMPLATE})])
    exporter.register_preprocessor(tags, enabled=True)
    title = nb.metadata.get("title") or Path(executed_nb).stem.replace("_", " ")
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    out = Path(out_html)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(body, encoding="utf-8")
    tmp.replace(out)
    return out


_INDEX_CSS = """body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:72em;
color:#222;padding:0 1em}h1{font-size:1.6em}h2{font-size:1.2em;margin-top:1.6em}table{border-collapse:collapse;
width:100%}th,td{text-align:left;vertical-align:top;padding:.35em .6em;border-bottom:1px solid #ddd}
th{background:#f4f4f4}td.num{font:13px/1.5 ui-monospace,Menlo,monospace;color:#333}a{color:#0b61a4}
.muted{color:#777;font-size:.9em}"""


def _fmt(v) -> str:
    return "—" if v is None else f"{v:d}" if isinstance(v, int) else f"{v:.4g}"


def write_index(root_reports: str | os.PathLike = "reports", studies=None, max_numbers: int = 10) -> Path:
    """`<root_reports>/index.html`: every `<study>/<name>.html` with the headline numbers of its results.json."""
    root = Path(root_reports)
    folders = [root / s for s in studies] if studies is not None else sorted(p for p in root.glob("*") if p.is_dir())
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>rlearly reports</title>"
             f"<style>{_INDEX_CSS}</style></head><body><h1>rlearly reports</h1>"]
    for folder in folders:
        pages = {p.stem: p for p in folder.glob("*.html")}
        if not pages:
            continue
        order = [n for n in NOTEBOOKS if n in pages] + sorted(set(pages) - set(NOTEBOOKS))
        parts.append(f"<h2>study <code>{html.escape(folder.name)}</code></h2><table>"
                     f"<tr><th>report</th><th>headline numbers (results.json)</th></tr>")
        for name in order:
            res_path = folder / f"{name}.results.json"
            res = json.loads(res_path.read_text()) if res_path.is_file() else {}
            shown = "<br>".join(f"{html.escape(k)} = {_fmt(v)}" for k, v in list(res.items())[:max_numbers])
            more = len(res) - max_numbers
            if more > 0 or res:
                shown += f"<br><a class='muted' href='{html.escape(folder.name)}/{html.escape(res_path.name)}'>" \
                         f"{'all ' + str(len(res)) + ' numbers' if more > 0 else 'results.json'}</a>"
            href = f"{html.escape(folder.name)}/{html.escape(pages[name].name)}"
            parts.append(f"<tr><td><a href='{href}'>{html.escape(name.replace('_', ' '))}</a></td>"
                         f"<td class='num'>{shown or '<span class=muted>no results.json</span>'}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>\n")
    root.mkdir(parents=True, exist_ok=True)
    out = root / "index.html"
    tmp = out.with_name(".index.html.tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    tmp.replace(out)
    return out


def report(spec, root, *, runs_dir="papermill_runs", reports_dir="reports", names=None, log=print) -> dict:
    """Execute the notebooks (skipping up-to-date ones), render each to HTML, write the index.

    Returns {"notebooks": [...], "html": [...], "index": path}. HTML newer than its notebook is kept.
    """
    import shutil

    spec = _spec(spec)
    notebooks = execute_notebooks(spec, root, names, Path(runs_dir) / spec.name, log)
    pages = []
    for nb in notebooks:
        page = Path(reports_dir) / spec.name / f"{nb.stem}.html"
        if not page.is_file() or page.stat().st_mtime < nb.stat().st_mtime:
            render_html(nb, page)
            shutil.copy2(nb.with_name(f"{nb.stem}.results.json"), page.with_name(f"{nb.stem}.results.json"))
            log(f"report {page}")
        pages.append(page)
    return {"notebooks": notebooks, "html": pages, "index": write_index(reports_dir)}
