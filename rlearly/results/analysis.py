"""Contrasts between a study's methods, with intervals from its sample store: deltas against base with paired
bootstrap CIs, expansion against sharpening, general-capability contrasts, the readiness diagnostic, the side
experiments' gains (arms), and headline numbers. The table readers of rlearly.results.tables are re-exported here,
so a notebook needs one import.

A contrast is method − another at the same `parent_tokens` (`contrast`); its CI comes from the stored samples and
covers what varies (rlearly.evaluation.units.unit_contrast): problems with one unit a side; with several, pretraining
runs (paired by run where both sides share runs, seeds averaged within a run) with the seeds' and problems' noise;
its `covers` column says which. Also what each recipe spent (`compute_spent`, `flops_curves`, `compute_matched`).
Nothing here trains or samples; the tables and the sample store are only read.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from rlearly.errors import DataError, RlearlyError
from rlearly.results.tables import (TABLES, UNIT, _by_method, arms, deltas_vs_base, difficulty_wide,  # noqa: F401
                                    final_values, fmt_tokens, k_max, last_values, load_tables, passk_wide, pivot_at,
                                    present_columns, project_root, repo_root, resolve_path, role_arms, seed_mean,
                                    shown, sweep_ks, write_results)
from rlearly.train import method_order

SFT_FAMILY = ("sft", "sft_gold", "sft_rl", "sft_gold_rl")

CAPABILITY_TOL = 0.01  # docs/PAPER.md §8 claim 6: "|Δ| ≲ 1 pp or relative equivalent"


def _aligned_counts(store, rows, split: str):
    """Per-problem correct counts of several evaluated checkpoints (passk-table rows) on the problems they
    all have complete samples for, with a sample seed they share; None if they share none."""

    if not all(isinstance(getattr(r, "task_id", None), str) for r in rows):
        return None  # a table from before samples recorded their task: no paired samples to read
    try:
        frames = [store.load(r.task_id, r.checkpoint_id, split) for r in rows]
    except DataError:
        return None
    for seed in sorted(set.intersection(*(set(d["seed"]) for d in frames)), key=lambda s: (s != 0, s)):
        ok = [set(d[(d["seed"] == seed) & (d["sample_index"] < int(r.n))].groupby("problem_id").size()
                  .loc[lambda s: s >= int(r.n)].index) for d, r in zip(frames, rows)]
        pids = sorted(set.intersection(*ok))
        if pids:
            return [store.counts(r.task_id, r.checkpoint_id, split, int(r.n), seed, pids)[1] for r in rows]
    return None


def _sample_counts(store, row_a, row_b, split: str):
    """Per-problem correct counts of two evaluated checkpoints on their shared problems (None if unpaired)."""
    return _aligned_counts(store, [row_a, row_b], split)


def compare_methods(study_root, passk: pd.DataFrame, method: str, against: str = "base", ks=None,
                    split: str = "test", n_boot: int = 1000) -> pd.DataFrame:
    """`method` − `against` at each checkpoint (and seed; base has one), with a paired bootstrap CI.

    Rows (parent_tokens, seed, k, start, branch, diff, low, high). start/branch/diff come from the table;
    the CI from the stored samples, and is NaN when those are missing or do not reproduce the table.
    """
    from rlearly.evaluation import passk as pk
    from rlearly.evaluation.store import SampleStore

    df = passk[passk["split"] == split]
    ks = list(ks) if ks is not None else [1, k_max(passk, split)]
    ids = _with_units(df).drop_duplicates(["method", "parent_tokens", *UNIT])
    rows, store = [], SampleStore(resolve_path(study_root) / "samples")
    for b in ids[ids["method"] == method].itertuples():
        match = ids[(ids["method"] == against) & (ids["parent_tokens"] == b.parent_tokens)
                    & (ids["pretrain_seed"] == b.pretrain_seed)]
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
            rows.append(dict(parent_tokens=b.parent_tokens, pretrain_seed=b.pretrain_seed, seed=b.seed, k=k,
                             start=float(va.iloc[0]), branch=float(vb.iloc[0]), diff=diff, low=low, high=high))
    cols = ["parent_tokens", "pretrain_seed", "seed", "k", "start", "branch", "diff", "low", "high"]
    return pd.DataFrame(rows, columns=cols)


def _with_units(df: pd.DataFrame) -> pd.DataFrame:
    return df if "pretrain_seed" in df else df.assign(pretrain_seed=0)


def contrast(study_root, passk: pd.DataFrame, method: str, against: str = "base", ks=None, split: str = "test",
             n_boot: int = 2000) -> pd.DataFrame:
    """`method` − `against` at each checkpoint: the difference of the means over units of trained weights (seeds
    averaged within a pretraining run), with the interval rlearly.evaluation.units.unit_contrast chooses for how
    the two sides' units pair (by pretraining run where both hold the same runs; by seed within one run; unpaired
    otherwise; over problems alone with one unit a side). One row per (parent_tokens, k): start, branch, diff,
    low, high, seeds_a, seeds_b, covers (what the interval resamples), up, down. The CI is NaN when the stored
    samples are missing or do not reproduce the table's numbers."""
    from rlearly.evaluation import passk as pk
    from rlearly.evaluation.store import SampleStore
    from rlearly.evaluation.units import unit_contrast

    df = _with_units(passk[passk["split"] == split])
    ks = list(ks) if ks is not None else [1, k_max(passk, split)]
    ids = df.drop_duplicates(["method", "parent_tokens", *UNIT])
    store, rows = SampleStore(resolve_path(study_root) / "samples"), []
    for t in sorted(ids[ids["method"] == method]["parent_tokens"].unique()):
        ra = list(ids[(ids["method"] == method) & (ids["parent_tokens"] == t)].sort_values(UNIT).itertuples())
        rb = list(ids[(ids["method"] == against) & (ids["parent_tokens"] == t)].sort_values(UNIT).itertuples())
        if not rb:
            continue
        counts = _aligned_counts(store, ra + rb, split)
        units_a, units_b = [(r.pretrain_seed, r.seed) for r in ra], [(r.pretrain_seed, r.seed) for r in rb]
        for k in ks:
            va = [df[(df["checkpoint_id"] == r.checkpoint_id) & (df["k"] == k)]["pass_at_k"] for r in ra]
            vb = [df[(df["checkpoint_id"] == r.checkpoint_id) & (df["k"] == k)]["pass_at_k"] for r in rb]
            if any(v.empty for v in va + vb):
                continue
            start, branch = _run_mean([v.iloc[0] for v in vb], units_b), _run_mean([v.iloc[0] for v in va], units_a)
            low = high = math.nan
            what = "problems (one unit a side)" if len(ra) == len(rb) == 1 else "no interval"
            if counts is not None and k <= min(int(r.n) for r in ra + rb) and len({int(r.n) for r in ra + rb}) == 1:
                n = int(ra[0].n)
                values = [pk.pass_at_k(n, c, k) for c in counts]
                d, lo, hi, what = unit_contrast(np.stack(values[:len(ra)]), np.stack(values[len(ra):]), units_a,
                                                units_b, n_boot=n_boot)
                if abs(d - (branch - start)) < 1e-9:  # the same problems as the table: the CI belongs to it
                    low, high = lo, hi
            rows.append(dict(parent_tokens=t, k=k, start=start, branch=branch, diff=branch - start, low=low,
                             high=high, seeds_a=len(ra), seeds_b=len(rb), covers=what.replace("items", "problems")))
    out = pd.DataFrame(rows, columns=["parent_tokens", "k", "start", "branch", "diff", "low", "high", "seeds_a",
                                      "seeds_b", "covers"])
    return out.assign(up=out["low"] > 0, down=out["high"] < 0)


def _run_mean(values: list[float], units: list[tuple]) -> float:
    """The mean of per-unit values, seeds averaged within their pretraining run first (each run weighs the same)."""
    runs: dict = {}
    for v, (run, _) in zip(values, units):
        runs.setdefault(run, []).append(v)
    return float(np.mean([np.mean(vs) for vs in runs.values()]))


def expansion_table(study_root, passk: pd.DataFrame, split: str = "test", against: str = "base",
                    methods=None) -> pd.DataFrame:
    """Δpass@1 and Δpass@k_max with CIs and a verdict (expansion / sharpening / ...), per method and checkpoint."""
    from rlearly.evaluation import passk as pk

    km = k_max(passk, split)
    methods = methods or [m for m in method_order(passk["method"]) if m != against]
    rows = []
    for m in methods:
        d = contrast(study_root, passk, m, against, [1, km], split)
        for pt, g in d.groupby("parent_tokens"):
            one, big = (g[g["k"] == k].iloc[0] for k in (1, km))
            rows.append({"method": m, "vs": against, "parent_tokens": pt, "Δpass@1": one["diff"],
                         "Δpass@1 CI": _ci(one), f"Δpass@{km}": big["diff"], f"Δpass@{km} CI": _ci(big),
                         "verdict": pk.verdict(_delta(one), _delta(big)) if _has_ci(one, big) else "no CI"})
    return pd.DataFrame(rows).set_index(["method", "vs", "parent_tokens"]) if rows else pd.DataFrame(rows)


def expansion_headline(passk: pd.DataFrame, split: str = "test") -> dict:
    """results.json of expansion_vs_sharpening: Δpass@1 / Δpass@k_max of each method against base and of
    SFT→RL against SFT, at the last checkpoint (means over seeds, from the table)."""
    km, last = k_max(passk, split), passk["parent_tokens"].max()
    d = deltas_vs_base(passk, [1, km], split).query("parent_tokens == @last")
    out = {"last_checkpoint_tokens": last, "k_max": km}
    for k, label in ((1, "1"), (km, "k_max")):
        out |= {f"dpass@{label}.{r.method}": r.delta for r in d[d["k"] == k].itertuples()}
        p = pivot_at(passk, k, split)[last]
        out[f"sft_rl_vs_sft.dpass@{label}"] = p.get("sft_rl", math.nan) - p.get("sft", math.nan)
    return out


def general_deltas(general: pd.DataFrame, metrics=("probe_acc", "heldout_nll")) -> pd.DataFrame:
    """Rows (method, parent_tokens, metric, base, value, delta): mean over seeds, branch − base."""
    df = general[general["metric"].isin(metrics)]
    df = df.groupby(["method", "parent_tokens", "metric"], as_index=False)["value"].mean()
    base = df[df["method"] == "base"].set_index(["parent_tokens", "metric"])["value"].rename("base")
    out = df[df["method"] != "base"].join(base, on=["parent_tokens", "metric"], how="inner")
    return _by_method(out.assign(delta=out["value"] - out["base"]))


def general_contrast(items: pd.DataFrame, method: str, against: str = "base", metric: str = "doc_nll",
                     relative: bool = True, n_boot: int = 2000, seed: int = 0) -> dict | None:
    """`method` − `against` on a general-capability metric, per item (document or probe), averaged over the
    checkpoints both have, with the interval of rlearly.evaluation.units.unit_contrast (units paired by pretraining
    run or seed where the two sides share them; items resampled alike on both sides). `relative` divides each
    checkpoint's values by `against`'s mean there (ΔNLL as a fraction). A unit's values are averaged over the
    checkpoints it has; None if the sides share no checkpoint."""
    from rlearly.evaluation.units import unit_contrast

    if items.empty:
        return None
    d = _with_units(items[items["metric"] == metric])
    a_all, b_all = d[d["method"] == against], d[d["method"] == method]
    shared = sorted(set(a_all["parent_tokens"]) & set(b_all["parent_tokens"]))
    if not shared:
        return None
    sides = {against: {}, method: {}}  # unit -> [per-item values at each shared checkpoint, scaled]
    n_items = min(int(x[x["parent_tokens"] == t]["item"].nunique()) for x in (a_all, b_all) for t in shared)
    for t in shared:
        va = a_all[a_all["parent_tokens"] == t].pivot_table(index=UNIT, columns="item", values="value")
        vb = b_all[b_all["parent_tokens"] == t].pivot_table(index=UNIT, columns="item", values="value")
        cols = va.columns.intersection(vb.columns)[:n_items]
        scale = abs(float(va[cols].to_numpy().mean())) if relative else 1.0
        for name, v in ((against, va), (method, vb)):
            for unit, row in v[cols].iterrows():
                sides[name].setdefault(tuple(unit), []).append(row.to_numpy(dtype=float) / scale)
    ua, ub = list(sides[method]), list(sides[against])
    if not ua or not ub:  # no item both sides scored
        return None
    va = np.stack([np.mean(sides[method][u], axis=0) for u in ua])
    vb = np.stack([np.mean(sides[against][u], axis=0) for u in ub])
    diff, low, high, covers = unit_contrast(va, vb, ua, ub, n_boot=n_boot, seed=seed)
    return {"diff": diff, "low": low, "high": high, "n_items": n_items, "checkpoints": len(shared),
            "seeds": max(len(ua), len(ub)), "covers": covers}


def readiness_points(study_root, tables: dict, split: str = "test") -> pd.DataFrame:
    """One row per (checkpoint, pretraining run, RL seed): the base's pass@1 and pass@k_max on the RL training prompts
    (split "train") beside the RL branch's Δpass@1 on `split` (docs/PAPER.md §4 diagnostic)."""
    passk = tables["passk"]
    train = passk[(passk["split"] == "train") & (passk["method"] == "base")]
    if train.empty:
        raise RlearlyError("no base evaluations on the train split: set eval.readiness: true in the study spec")
    kt = int(train["k"].max())
    base = _with_units(train).pivot_table(index=["pretrain_seed", "parent_tokens"], columns="k", values="pass_at_k")
    d = compare_methods(study_root, passk, "rl", "base", [1], split)
    d = d.rename(columns={"diff": "rl_delta_pass1", "low": "rl_delta_low", "high": "rl_delta_high"})
    d = d.join(base[1].rename("base_train_pass1"), on=["pretrain_seed", "parent_tokens"])  # each run's own base
    d = d.join(base[kt].rename("base_train_passk"), on=["pretrain_seed", "parent_tokens"])
    return d[["parent_tokens", "pretrain_seed", "seed", "base_train_pass1", "base_train_passk", "rl_delta_pass1",
              "rl_delta_low", "rl_delta_high"]].assign(k_train=kt)


def readiness_rho(points: pd.DataFrame) -> tuple[float | None, str]:
    """Spearman ρ over checkpoints of the base's pass@k_max on the RL prompts against RL's Δpass@1 (seed
    means), with the exact one-sided p (passk.spearman_permutation), and a sentence saying it; None where
    it is undefined (fewer than 3 checkpoints, or one side constant)."""
    from rlearly.evaluation import passk

    per = points.groupby("parent_tokens")[["base_train_passk", "rl_delta_pass1"]].mean()
    if not 3 <= len(per) <= 8:
        return None, f"Spearman ρ: needs 3 to 8 checkpoints with RL, this study has {len(per)}"
    rho, p = passk.spearman_permutation(per["base_train_passk"], per["rl_delta_pass1"])
    if math.isnan(rho):
        return None, f"Spearman ρ over {len(per)} checkpoints: undefined (one side does not vary)"
    return rho, f"Spearman ρ over {len(per)} checkpoints: {rho:+.2f} (exact one-sided p = {p:.3f})"


def arm_gains(study_root, passk: pd.DataFrame, arms, splits=("test", "hard")) -> pd.DataFrame:
    """RL − base at each arm's last RL checkpoint, per split and k ∈ {1, k_max}, with paired bootstrap
    CIs (data composition vs model scale). `passk`: the table of every arm (load_tables(..., arm=None))."""
    rows = []
    for arm in arms:
        for split in splits:
            df = passk[(passk["arm"] == arm) & (passk["split"] == split)]
            if not {"rl", "base"} <= set(df["method"]):
                continue
            last = df[df["method"] == "rl"]["parent_tokens"].max()
            df = df[df["parent_tokens"] == last]
            km = k_max(df, split)
            d = contrast(study_root, df, "rl", "base", sorted({1, km}), split)
            rows += [dict(arm=arm, split=split, parent_tokens=last, k=int(r.k), base=r.start, rl=r.branch,
                          gain=r.diff, low=r.low, high=r.high) for r in d.itertuples()]
    return pd.DataFrame(rows, columns=["arm", "split", "parent_tokens", "k", "base", "rl", "gain", "low", "high"])


def gain_contrast(study_root, passk: pd.DataFrame, arm_a: str, arm_b: str, split: str = "hard",
                  k: int = 1, n_boot: int = 1000) -> dict:
    """(RL − base of arm_a) − (RL − base of arm_b) at each arm's last RL checkpoint, on the problems all the
    evaluations share. A unit is one pretraining run of an arm: its base and its RL branch (seed 0, or the
    lowest). With one run an arm, a BCa CI over problems (the same problems, so paired); with several, Welch's t
    over each arm's runs with the problems' variance (rlearly.evaluation.units.unit_contrast: the arms' runs are
    different runs, never paired)."""
    from rlearly.evaluation import passk as pk
    from rlearly.evaluation.store import SampleStore
    from rlearly.evaluation.units import unit_contrast

    units = {}
    for arm in (arm_a, arm_b):
        df = _with_units(passk)
        df = df[(df["arm"] == arm) & (df["split"] == split) & (df["k"] == k)]
        rl = df[df["method"] == "rl"]
        if rl.empty or df[df["method"] == "base"].empty:
            raise RlearlyError(f"arm {arm!r} has no RL and base evaluations on split {split!r}")
        at = df[df["parent_tokens"] == rl["parent_tokens"].max()].sort_values("seed")
        units[arm] = [(next(g[g["method"] == "base"].itertuples()), next(g[g["method"] == "rl"].itertuples()))
                      for _, g in at.groupby("pretrain_seed") if {"base", "rl"} <= set(g["method"])]
    rows = [r for arm in (arm_a, arm_b) for pair in units[arm] for r in pair]
    counts = _aligned_counts(SampleStore(resolve_path(study_root) / "samples"), rows, split)
    if counts is None:
        raise RlearlyError(f"the sample store lacks shared samples of arms {arm_a!r} and {arm_b!r} on {split!r}")
    ns = [int(r.n) for r in rows]
    na = len(units[arm_a])
    out = {"n_problems": len(counts[0]), "runs_a": na, "runs_b": len(units[arm_b])}
    if na == len(units[arm_b]) == 1:
        diff, low, high = pk.difference_of_gains(*counts, *ns, k=k, n_boot=n_boot)
        return out | {"diff": diff, "low": low, "high": high, "covers": "problems (one pretraining run an arm)"}
    gains = [pk.pass_at_k(ns[2 * i + 1], counts[2 * i + 1], k) - pk.pass_at_k(ns[2 * i], counts[2 * i], k)
             for i in range(len(rows) // 2)]  # (problems,) per unit
    runs = [((arm, pair[0].pretrain_seed), 0) for arm in (arm_a, arm_b) for pair in units[arm]]  # distinct runs
    diff, low, high, covers = unit_contrast(np.stack(gains[:na]), np.stack(gains[na:]), runs[:na], runs[na:])
    return out | {"diff": diff, "low": low, "high": high, "covers": covers.replace("items", "problems")}


def seed_spread(study_root, passk: pd.DataFrame, tokens_a, tokens_b, method: str = "rl", split: str = "test") -> dict:
    """Spread over seeds (std of pass@1) of `method` at two checkpoints, within one pretraining run (the first), and
    the one-sided F-test that it is larger at `tokens_a`, the two checkpoints' sampling noise matched
    (rlearly.evaluation.units.seed_spread_test)."""
    from rlearly.evaluation import passk as pk
    from rlearly.evaluation.store import SampleStore
    from rlearly.evaluation.units import seed_spread_test

    df = _with_units(passk)
    df = df[(df["method"] == method) & (df["split"] == split) & (df["k"] == 1)]
    df = df[df["pretrain_seed"] == df["pretrain_seed"].min()].sort_values("seed")  # RL seeds of one pretraining run
    rows_a = list(df[df["parent_tokens"] == tokens_a].itertuples())
    rows_b = list(df[df["parent_tokens"] == tokens_b].itertuples())
    counts = _aligned_counts(SampleStore(resolve_path(study_root) / "samples"), rows_a + rows_b, split)
    ns = {int(r.n) for r in rows_a + rows_b}
    if counts is None or len(ns) != 1:
        raise RlearlyError(f"the sample store lacks shared samples of every {method} seed at {tokens_a} and {tokens_b}")
    n = ns.pop()
    test = seed_spread_test([pk.pass_at_k(n, c, 1) for c in counts[:len(rows_a)]],
                            [pk.pass_at_k(n, c, 1) for c in counts[len(rows_a):]], n=n)
    return {**test, "diff": test["std_a"] - test["std_b"], "seeds_a": len(rows_a), "seeds_b": len(rows_b),
            "n_problems": len(counts[0])}


def compute_spent(branch_metrics: pd.DataFrame) -> pd.DataFrame:
    """What each branch spent: optimizer steps, rollouts, generated tokens, demonstration tokens trained on, and
    FLOPs ≈ 2·N per generated token (sampling) + 6·N per token trained (GRPO's on its rollouts' responses, SFT's on
    demonstrations), N the branch's matmul parameters (prompt tokens and the reference model's forward passes left
    out: a lower bound of the same form for every recipe). One row per branch, averaged over its runs and seeds by
    (arm, method, parent_tokens). SFT→RL's rows are its RL part; its SFT is the sft branch's row."""
    bm = branch_metrics
    if bm.empty or "n_params" not in bm:
        return pd.DataFrame()
    unit = ["arm", "method", "parent_tokens", *UNIT]
    per_step = bm["prompts_per_step"] * bm["group_size"]
    has_rl = bm["response_len"].notna() if "response_len" in bm else pd.Series(False, index=bm.index)
    gen = (bm["response_len"] * per_step).where(has_rl, 0.0) if "response_len" in bm else 0.0 * per_step
    demo = bm["sft_tokens"].fillna(0.0) if "sft_tokens" in bm else 0.0 * per_step
    d = bm.assign(rollouts=per_step.where(has_rl, 0), gen_tokens=gen, demo_tokens=demo)
    g = d.groupby(unit).agg(steps=("step", "max"), rollouts=("rollouts", "sum"), gen_tokens=("gen_tokens", "sum"),
                            demo_tokens=("demo_tokens", "sum"), n_params=("n_params", "first"))
    g["flops"] = g["n_params"] * (2 * g["gen_tokens"] + 6 * (g["gen_tokens"] + g["demo_tokens"]))
    return g.groupby(unit[:3]).mean().reset_index()


def compute_beside_gain(branch_metrics: pd.DataFrame, passk: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """compute_spent's rows of the main arm beside each branch's test gain over its base (pass@1 and pass@k_max,
    mean over runs and seeds)."""
    spent = compute_spent(branch_metrics)
    if spent.empty or passk.empty:
        return spent
    km = k_max(passk, split)
    gain = deltas_vs_base(passk, sorted({1, km}), split).pivot_table(index=["method", "parent_tokens"], columns="k",
                                                                     values="delta")
    gain.columns = [f"gain pass@{k}" for k in gain.columns]
    spent = spent[spent["arm"] == "main"].drop(columns="arm")
    return spent.join(gain, on=["method", "parent_tokens"])


def flops_curves(branch_metrics: pd.DataFrame, methods=("rl", "sft", "parallel"), parent_tokens=None,
                 arm: str = "main") -> pd.DataFrame:
    """Dev validation pass@1 along training of `methods` from one checkpoint (default the last they all share)
    against cumulative FLOPs (compute_spent's count, step by step), mean over runs and seeds."""
    bm = branch_metrics
    if bm.empty or "n_params" not in bm or "val_pass@1" not in bm:
        return pd.DataFrame()
    bm = bm[(bm["arm"] == arm) & bm["method"].isin(list(methods))]
    common = set.intersection(*(set(g["parent_tokens"]) for _, g in bm.groupby("method"))) if len(bm) else set()
    if bm["method"].nunique() < len(methods) or not common:
        return pd.DataFrame()
    bm = bm[bm["parent_tokens"] == (max(common) if parent_tokens is None else parent_tokens)]
    bm = bm.sort_values(["method", *UNIT, "step"])
    gen = (bm["response_len"] * bm["prompts_per_step"] * bm["group_size"]).fillna(0.0) if "response_len" in bm \
        else 0.0
    demo = bm["sft_tokens"].fillna(0.0) if "sft_tokens" in bm else 0.0
    flops = bm["n_params"] * (8 * gen + 6 * demo)
    bm = bm.assign(flops=flops.groupby([bm["method"], bm["pretrain_seed"], bm["seed"]]).cumsum())
    val = bm.dropna(subset=["val_pass@1"])
    return val.groupby(["method", "parent_tokens", "step"], as_index=False)[["flops", "val_pass@1"]].mean()


def compute_matched(curves: pd.DataFrame) -> pd.DataFrame:
    """Each method's dev pass@1 at the FLOPs the cheapest of them spent in all (flops_curves' table), linearly
    interpolated between its validations (none before its first): one compute-matched comparison."""
    if curves.empty:
        return pd.DataFrame()
    budget = curves.groupby("method")["flops"].max().min()
    rows = []
    for m, g in curves.groupby("method"):
        g = g.sort_values("flops")
        at = float(np.interp(budget, g["flops"], g["val_pass@1"])) if budget >= g["flops"].iloc[0] else math.nan
        rows.append(dict(method=m, flops_matched=budget, **{"dev_pass@1_matched": at},
                         flops_final=g["flops"].iloc[-1], **{"dev_pass@1_final": g["val_pass@1"].iloc[-1]}))
    return pd.DataFrame(rows).set_index("method").loc[method_order([r["method"] for r in rows])].reset_index()


def budget_curves(branch_metrics: pd.DataFrame, arms, parent_tokens=None) -> pd.DataFrame:
    """Validation pass@k along RL training of the given arms, against the training data and compute used:
    prompts seen, rollouts generated and generated tokens (cumulative). `branch_metrics` of every arm;
    `parent_tokens` default: the last checkpoint that every arm trained RL from."""
    bm = branch_metrics[branch_metrics["arm"].isin(list(arms)) & (branch_metrics["method"] == "rl")].copy()
    if bm.empty:
        raise RlearlyError(f"no RL training metrics for arms {list(arms)}")
    if parent_tokens is None:
        common = set.intersection(*(set(g["parent_tokens"]) for _, g in bm.groupby("arm")))
        if not common:
            raise RlearlyError(f"arms {list(arms)} share no RL start checkpoint")
        parent_tokens = max(common)
    bm = bm[bm["parent_tokens"] == parent_tokens]
    bm = bm.sort_values(["arm", "parent_tokens", "seed", "step"])
    per_step = bm["prompts_per_step"] * bm["group_size"]
    bm["prompts_seen"] = bm["step"] * bm["prompts_per_step"]
    bm["rollouts"] = bm["step"] * per_step
    bm["gen_tokens"] = (bm["response_len"] * per_step).groupby(
        [bm["arm"], bm["parent_tokens"], bm["seed"]]).cumsum()
    vals = [c for c in bm.columns if c.startswith("val_pass@")]
    keep = ["arm", "group_size", "parent_tokens", "seed", "step", "prompts_seen", "rollouts", "gen_tokens",
            "reward_mean", "frac_zero_std", *vals]
    keep = [c for c in keep if c in bm]
    return bm[keep].reset_index(drop=True)


def parallel_headline(passk: pd.DataFrame, general: pd.DataFrame, parent_tokens) -> dict:
    """results.json of parallel_averaging: pass@1 and pass@k_max of each recipe and its general-capability
    deltas against base at `parent_tokens` (means over seeds, from the tables)."""
    km = k_max(passk)
    out = {"parent_tokens": parent_tokens, "k_max": km}
    for k, label in ((1, "1"), (km, "k_max")):
        out |= {f"pass@{label}.{m}": v for m, v in pivot_at(passk, k)[parent_tokens].items()}
    d = general_deltas(general).query("parent_tokens == @parent_tokens")
    return out | {f"d{r.metric}.{r.method}": r.delta for r in d.itertuples()}


def budget_headline(curves: pd.DataFrame, final: pd.DataFrame) -> dict:
    """results.json of rollout_budget: per group size G, the last validation pass@1 with the prompts seen
    and tokens generated to get there, and the final test pass@k (`final`: rows arm, columns k, plus
    'rollouts / prompt')."""
    out = {"parent_tokens": curves["parent_tokens"].iloc[0]}
    last = curves.sort_values("step").groupby("group_size").last()
    for g, r in last.iterrows():
        out |= {f"G{g}.{c}": r[c] for c in ("val_pass@1", "prompts_seen", "gen_tokens")}
    for _, r in final.iterrows():
        out |= {f"G{int(r['rollouts / prompt'])}.test_pass@{k}": r[k] for k in final.columns if k != "rollouts / prompt"}
    return out


def _delta(row):
    from rlearly.evaluation.passk import Delta
    return Delta(int(row["k"]), row["start"], row["branch"], row["diff"], row["low"], row["high"])


def _has_ci(*rows) -> bool:
    return all(np.isfinite(r["low"]) and np.isfinite(r["high"]) for r in rows)


def _ci(row) -> str:
    return f"[{row['low']:+.3f}, {row['high']:+.3f}]" if _has_ci(row) else "n/a"
