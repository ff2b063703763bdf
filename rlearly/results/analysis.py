"""Contrasts between a study's methods, with intervals from its sample store: deltas against base with paired
bootstrap CIs, expansion against sharpening, general-capability contrasts, the readiness diagnostic, the side
experiments' gains (arms), and headline numbers. The table readers of rlearly.results.tables are re-exported here,
so a notebook needs one import.

A contrast is method − another at the same `parent_tokens` (`contrast`); its CI comes from the stored samples and
resamples what varies: problems with one unit a side, units and then problems with several
(`passk.seed_contrast`, units paired where both sides come from the same pretraining runs and seeds), and says so in
its `covers` column. Nothing here trains or samples; the tables and the sample store are only read.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from rlearly.errors import DataError, RlearlyError
from rlearly.results.tables import (  # noqa: F401
    TABLES,
    UNIT,
    _by_method,
    arms,
    deltas_vs_base,
    final_values,
    fmt_tokens,
    k_max,
    last_values,
    load_tables,
    passk_wide,
    pivot_at,
    present_columns,
    project_root,
    repo_root,
    resolve_path,
    role_arms,
    seed_mean,
    shown,
    sweep_ks,
    write_results,
)
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


def covers(n_a: int, n_b: int, runs: int = 1) -> str:
    """What a contrast's interval resamples, in words (docs/DESIGN.md §5: intervals say what they resample): `n_a`
    and `n_b` units a side, from `runs` pretraining runs."""
    if max(n_a, n_b) <= 1:
        return "problems (one seed)"
    what = f"pretraining runs ({runs}) and seeds" if runs > 1 else "seeds"
    return f"{what} ({n_a} vs {n_b} units) and problems" if runs > 1 else f"seeds ({n_a} vs {n_b}) and problems"


def _with_units(df: pd.DataFrame) -> pd.DataFrame:
    return df if "pretrain_seed" in df else df.assign(pretrain_seed=0)


def pair_units(ra: list, rb: list, against: str) -> list | None:
    """`rb` reordered so that rb[i] is the start of ra[i] (both from the same pretraining run, and with the
    same branch seed unless `against` is base), or None when the two sides are not paired unit by unit."""
    if against == "base":
        by_run = {r.pretrain_seed: r for r in rb}
        runs = [r.pretrain_seed for r in ra]
        ok = len(set(runs)) == len(runs) == len(by_run) and set(runs) == set(by_run)
        return [by_run[p] for p in runs] if ok else None
    units = lambda rows: [(r.pretrain_seed, r.seed) for r in rows]  # noqa: E731
    return list(rb) if units(ra) == units(rb) else None


def contrast(study_root, passk: pd.DataFrame, method: str, against: str = "base", ks=None, split: str = "test",
             n_boot: int = 2000) -> pd.DataFrame:
    """`method` − `against` at each checkpoint: the difference of seed means, with a CI that resamples the
    seeds of trained weights and the problems (passk.seed_contrast; seeds are paired when both sides have
    the same ones, as SFT→RL's seed s starts from SFT's seed s). One row per (parent_tokens, k): start,
    branch, diff, low, high, seeds_a, seeds_b, covers, up, down. The CI is NaN when the stored samples are
    missing or do not reproduce the table's numbers."""
    from rlearly.evaluation import passk as pk
    from rlearly.evaluation.store import SampleStore

    df = _with_units(passk[passk["split"] == split])
    ks = list(ks) if ks is not None else [1, k_max(passk, split)]
    ids = df.drop_duplicates(["method", "parent_tokens", *UNIT])
    store, rows = SampleStore(resolve_path(study_root) / "samples"), []
    for t in sorted(ids[ids["method"] == method]["parent_tokens"].unique()):
        ra = list(ids[(ids["method"] == method) & (ids["parent_tokens"] == t)].sort_values(UNIT).itertuples())
        rb = list(ids[(ids["method"] == against) & (ids["parent_tokens"] == t)].sort_values(UNIT).itertuples())
        if not rb:
            continue
        pairs = pair_units(ra, rb, against)
        paired, rb = pairs is not None and len(ra) > 1, pairs or rb
        runs = len({r.pretrain_seed for r in ra + rb})
        counts = _aligned_counts(store, ra + rb, split)
        for k in ks:
            va = [df[(df["checkpoint_id"] == r.checkpoint_id) & (df["k"] == k)]["pass_at_k"] for r in ra]
            vb = [df[(df["checkpoint_id"] == r.checkpoint_id) & (df["k"] == k)]["pass_at_k"] for r in rb]
            if any(v.empty for v in va + vb):
                continue
            start, branch = float(np.mean([v.iloc[0] for v in vb])), float(np.mean([v.iloc[0] for v in va]))
            low = high = math.nan
            if counts is not None and k <= min(int(r.n) for r in ra + rb) and len({int(r.n) for r in ra + rb}) == 1:
                n = int(ra[0].n)
                d, lo, hi = pk.seed_contrast(np.stack(counts[:len(ra)]), np.stack(counts[len(ra):]), n, n, k,
                                             paired_seeds=paired, n_boot=n_boot)
                if abs(d - (branch - start)) < 1e-9:  # the same problems as the table: the CI belongs to it
                    low, high = lo, hi
            rows.append(dict(parent_tokens=t, k=k, start=start, branch=branch, diff=branch - start, low=low,
                             high=high, seeds_a=len(ra), seeds_b=len(rb), covers=covers(len(ra), len(rb), runs)))
    out = pd.DataFrame(rows, columns=["parent_tokens", "k", "start", "branch", "diff", "low", "high", "seeds_a",
                                      "seeds_b", "covers"])
    return out.assign(up=out["low"] > 0, down=out["high"] < 0)


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
    checkpoints both have, with a bootstrap CI. `relative` divides each checkpoint's difference by `against`'s
    mean there (ΔNLL as a fraction). Where either side has several seeds at a checkpoint, the percentile CI
    resamples those seeds and the items (two stages, items shared across seeds and checkpoints); with one
    seed each, the BCa CI over items. Units are paired (resampled together) where both sides come from the same
    pretraining runs (and seeds, unless `against` is base). None if they share no checkpoint."""
    from rlearly.evaluation.passk import mean_ci

    if items.empty:
        return None
    d = _with_units(items[items["metric"] == metric])
    a_all, b_all = d[d["method"] == against], d[d["method"] == method]
    shared = sorted(set(a_all["parent_tokens"]) & set(b_all["parent_tokens"]))
    if not shared:
        return None
    per = []  # per checkpoint: (units_a, items), (units_b, items) values, the scale, and whether units pair
    for t in shared:
        va = a_all[a_all["parent_tokens"] == t].pivot_table(index=UNIT, columns="item", values="value")
        vb = b_all[b_all["parent_tokens"] == t].pivot_table(index=UNIT, columns="item", values="value")
        cols = va.columns.intersection(vb.columns)
        ua, ub = [_Unit(*u) for u in va.index], [_Unit(*u) for u in vb.index]
        pairs = pair_units(ub, ua, against)  # a's units in the order of b's
        if pairs is not None:
            va = va.loc[[(u.pretrain_seed, u.seed) for u in pairs]]
        va, vb = va[cols].to_numpy(), vb[cols].to_numpy()
        per.append((va, vb, abs(va.mean()) if relative else 1.0, pairs is not None and len(ub) > 1))
    n_items = min(v[0].shape[1] for v in per)
    per = [(va[:, :n_items], vb[:, :n_items], scale, paired) for va, vb, scale, paired in per]
    seeds = max(max(va.shape[0], vb.shape[0]) for va, vb, _, _ in per)
    point = np.mean([(vb.mean(0) - va.mean(0)) / scale for va, vb, scale, _ in per], axis=0)  # (items,)
    out = {"diff": float(point.mean()), "n_items": n_items, "checkpoints": len(shared), "seeds": seeds}
    if seeds == 1:
        _, low, high = mean_ci(point, n_boot)
        return out | {"low": low, "high": high, "covers": "items (one seed)"}
    rng = np.random.default_rng(seed)
    w = rng.integers(0, n_items, size=(n_boot, n_items))
    boot = np.zeros(n_boot)
    for va, vb, scale, paired in per:
        ia = rng.integers(0, va.shape[0], size=(n_boot, va.shape[0]))
        ib = ia if paired else rng.integers(0, vb.shape[0], size=(n_boot, vb.shape[0]))
        ma = np.stack([va[ia[r]][:, w[r]].mean() for r in range(n_boot)])
        mb = np.stack([vb[ib[r]][:, w[r]].mean() for r in range(n_boot)])
        boot += (mb - ma) / scale / len(per)
    low, high = np.quantile(boot, [0.025, 0.975])
    runs = len(set(a_all["pretrain_seed"]) | set(b_all["pretrain_seed"]))
    what = f"pretraining runs ({runs}) and seeds" if runs > 1 else "seeds"
    return out | {"low": float(low), "high": float(high), "covers": f"{what} (up to {seeds} units) and items"}


class _Unit:
    def __init__(self, pretrain_seed, seed):
        self.pretrain_seed, self.seed = pretrain_seed, seed


def readiness_points(study_root, tables: dict, split: str = "test") -> pd.DataFrame:
    """One row per (checkpoint, RL seed): the base's pass@1 and pass@k_max on the RL training prompts
    (split "train") beside the RL branch's Δpass@1 on `split` (docs/PAPER.md §4 diagnostic)."""
    passk = tables["passk"]
    train = passk[(passk["split"] == "train") & (passk["method"] == "base")]
    if train.empty:
        raise RlearlyError("no base evaluations on the train split: set eval.readiness: true in the study spec")
    kt = int(train["k"].max())
    base = train.pivot_table(index="parent_tokens", columns="k", values="pass_at_k")
    d = compare_methods(study_root, passk, "rl", "base", [1], split)
    d = d.rename(columns={"diff": "rl_delta_pass1", "low": "rl_delta_low", "high": "rl_delta_high"})
    d = d.join(base[1].rename("base_train_pass1"), on="parent_tokens")
    d = d.join(base[kt].rename("base_train_passk"), on="parent_tokens")
    return d[["parent_tokens", "seed", "base_train_pass1", "base_train_passk", "rl_delta_pass1",
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
    lowest). With one run an arm, a BCa CI over problems (the same problems, so paired); with several, a
    two-stage bootstrap over each arm's runs, then the problems (passk.two_stage_diff)."""
    from rlearly.evaluation import passk as pk
    from rlearly.evaluation.store import SampleStore

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
    diff, low, high = pk.two_stage_diff(np.stack(gains[:na]), np.stack(gains[na:]), n_boot=n_boot)
    return out | {"diff": diff, "low": low, "high": high,
                  "covers": f"pretraining runs ({na} vs {len(units[arm_b])}) and problems"}


def seed_spread(study_root, passk: pd.DataFrame, tokens_a, tokens_b, method: str = "rl", split: str = "test",
                n_boot: int = 1000) -> dict:
    """Spread over seeds (std of pass@1) of `method` at two checkpoints, within one pretraining run (the first),
    and a CI of their difference from resampling the shared test problems (passk.spread_difference)."""
    from rlearly.evaluation import passk as pk
    from rlearly.evaluation.store import SampleStore

    df = _with_units(passk)
    df = df[(df["method"] == method) & (df["split"] == split) & (df["k"] == 1)]
    df = df[df["pretrain_seed"] == df["pretrain_seed"].min()].sort_values("seed")  # RL seeds of one pretraining run
    rows_a = list(df[df["parent_tokens"] == tokens_a].itertuples())
    rows_b = list(df[df["parent_tokens"] == tokens_b].itertuples())
    counts = _aligned_counts(SampleStore(resolve_path(study_root) / "samples"), rows_a + rows_b, split)
    ns = {int(r.n) for r in rows_a + rows_b}
    if counts is None or len(ns) != 1:
        raise RlearlyError(f"the sample store lacks shared samples of every {method} seed at {tokens_a} and {tokens_b}")
    std_a, std_b, low, high = pk.spread_difference(counts[:len(rows_a)], counts[len(rows_a):], ns.pop(), n_boot)
    return {"std_a": std_a, "std_b": std_b, "diff": std_a - std_b, "low": low, "high": high,
            "n_problems": len(counts[0])}


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
