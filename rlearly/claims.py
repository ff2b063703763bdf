"""The paper's claims (PAPER §8) beside what a study measured: each claim's statistic, CI and verdict,
computed from the study's tables and sample store, never from wording.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rlearly.analysis import (CAPABILITY_TOL, SFT_FAMILY, _ci, arm_gains, budget_curves, compare_methods, fmt_tokens,
                              gain_contrast, general_contrast, general_deltas, k_max, load_tables, over_seeds, seed_mean, seed_spread)
from rlearly.errors import RlearlyError
from rlearly.passk import spearman_permutation

# ---------------------------------------------------------------- the paper's claims (PAPER §8)

NOT_MEASURED = "not measured in this study"
SAME_TOKENS = "same_tokens_"  # claim 8: the many-rollout RL arm stopped at the few-rollout arm's generated tokens

# What the paper reports for each claim (quoted from PAPER.md §1, §5, §6 and §8; GSM8K unless said).
PAPER_NUMBERS = {
    1: "Δpass@1 +1–3 pp at 2B tokens (train reward flat ≈ 0.02), +13 pp at 4B, +40 pp at 20B",
    2: "RL failed where base train pass@32 was 14% (2B) and worked at 25% (4B); no fitted threshold published",
    3: "Δpass@32 (RL − base) +5.6 to +23.6 pp at every checkpoint; small or mixed on MATH",
    4: "SFT→RL − SFT: pass@1 ≈ +16 pp, pass@32 −6 to −7.5 pp",
    5: "RL overtakes SFT on pass@1 from ≈ 10–12B (44B: 56.2 vs 42.4); SFT-Gold − RL pass@32 +7 to +50 pp",
    6: "6-task average: RL within ±0.5 pp of base; SFT −5 to −7 pp, SFT-Gold ≈ −7 pp, SFT→RL ≈ −4 to −6 pp",
    7: "pass@32 parallel − RL +3.9 to +16.4 pp; pass@1 between SFT and RL; capability within ±1 pp of base",
    8: "n=64 peaks within 40–50K samples, n=5 needs 100–380K; n=5 leads against FLOPs early (Feb blog)",
    9: "1B on 60B math-heavy mix beats 4B on the 50B mix (RL pass@1 21–22% vs 12%, authors' working notes)",
    10: "4 seeds at 4–10B: test accuracy diverges across seeds there and settles by ≈ 10B",
}


@dataclass
class Claim:
    """One claim of PAPER §8 beside this study's statistic; `stats` go to results.json (null = not measured)."""

    id: int
    claim: str
    test: str
    measured: str = "—"
    paper: str = ""  # the paper's corresponding number (PAPER.md), for reading beside ours
    verdict: str = NOT_MEASURED  # held | partly held | not held | inconclusive | not measured in this study
    why: str = ""
    stats: dict = field(default_factory=dict)


class _Study:
    """What the claims read: the tables, the checkpoints, k_max, and cached paired comparisons."""

    def __init__(self, study_root, tables: dict, split: str, every: dict | None = None):
        self.root, self.tables, self.split = study_root, tables, split
        self.every = every  # the tables of every arm (side experiments), or None
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
        cl.verdict = "held"
        cl.why = f"flat at the earliest checkpoint, significant gain from {fmt_tokens(first)} tokens"
    return cl


def _claim2(s: _Study) -> Claim:
    cl = Claim(2, "The base model's pass@k on the RL training prompts predicts the RL gain",
               "Spearman ρ between base pass@k_max on the train split and RL Δpass@1 (test) over the checkpoints; "
               "exact permutation p < 0.05")
    train = s.passk[(s.passk["split"] == "train") & (s.passk["method"] == "base")] if not s.passk.empty else s.passk
    if train.empty or not s.has("rl", "base") or len(s.ckpts) < 3:
        cl.why = "needs base evaluations on the train split (eval.readiness: true) and RL at ≥ 3 checkpoints"
        return cl
    kt = int(train["k"].max())
    x = train[train["k"] == kt].groupby("parent_tokens")["pass_at_k"].mean()
    y = s.cmp("rl").set_index("parent_tokens")["diff"]
    xy = pd.concat([x.rename("x"), y.rename("y")], axis=1, join="inner")
    rho, p = spearman_permutation(xy["x"], xy["y"]) if 3 <= len(xy) <= 8 else (math.nan, math.nan)
    cl.stats = {"spearman": rho, "spearman_p": p}
    cl.measured = f"ρ = {rho:+.2f}, one-sided permutation p = {p:.3f} over {len(xy)} checkpoints (base train " \
        f"pass@{kt}: " + ", ".join(f"{v:.3f}" for v in xy["x"]) + "; RL Δpass@1: " + \
        ", ".join(f"{v:+.3f}" for v in xy["y"]) + ")"
    if not np.isfinite(rho):
        cl.verdict, cl.why = "inconclusive", "base solve rate or RL gain constant across checkpoints (or > 8 of them)"
    elif p < 0.05:
        cl.verdict, cl.why = "held", "RL gain rises with the base solve rate on the training prompts (p < 0.05)"
    elif rho <= 0:
        cl.verdict, cl.why = "not held", "no positive relation"
    else:
        cl.verdict, cl.why = "inconclusive", f"positive but not significant with {len(xy)} checkpoints"
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
               "against SFT at the last checkpoint: Δpass@1 CI above 0 and Δpass@k_max CI below 0 (paired CIs)")
    if not s.has("sft", "sft_rl"):
        cl.why = "needs SFT and SFT→RL branches"
        return cl
    one, big = s.cmp("sft_rl", "sft").iloc[-1], s.cmp("sft_rl", "sft", s.km).iloc[-1]
    cl.stats = {"dpass1": one["diff"], "dpasskmax": big["diff"]}
    cl.measured = f"at {fmt_tokens(one['parent_tokens'])}: Δpass@1 {one['diff']:+.3f} {_ci(one)}, " \
                  f"Δpass@{s.km} {big['diff']:+.3f} {_ci(big)}"
    if _no_signal(cl, s):
        return cl
    _two_part_verdict(cl, {"pass@1 up": _direction(one["low"], one["high"]),
                           f"pass@{s.km} down": _direction(-big["high"], -big["low"])})
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
               f"held-out general NLL, relative, per document averaged over checkpoints (bootstrap CI over "
               f"documents): RL − base CI below +{CAPABILITY_TOL:.0%}; each SFT-family branch − RL CI above 0")
    g, items = s.tables["general"], s.tables.get("general_items", pd.DataFrame())
    sfts = [m for m in SFT_FAMILY if not g.empty and m in set(g["method"])]
    if g.empty or not {"rl", "base"} <= set(g["method"]) or not sfts:
        cl.why = "needs general-capability scores of base, RL and an SFT-family branch"
        return cl
    if items.empty:
        cl.verdict, cl.why = "inconclusive", "no per-document values stored (evaluations older than this claim test)"
        return cl
    keep = general_contrast(items, "rl", "base")
    worse = {m: general_contrast(items, m, "rl") for m in sfts}
    acc = general_deltas(g, ("probe_acc",)).groupby("method")["delta"].mean()
    cl.stats = {"dnll_rel.rl": keep["diff"], "dnll_rel.rl_high": keep["high"]} | \
               {f"dnll_rel_minus_rl.{m}": c["diff"] for m, c in worse.items()} | \
               {f"dnll_rel_minus_rl_low.{m}": c["low"] for m, c in worse.items()} | \
               {f"dprobe_acc.{m}": acc[m] for m in ["rl", *sfts] if m in acc}
    cl.measured = f"ΔNLL RL − base {keep['diff']:+.2%} [{keep['low']:+.2%}, {keep['high']:+.2%}] · " + \
        " · ".join(f"{m} − RL {c['diff']:+.2%} [{c['low']:+.2%}, {c['high']:+.2%}]" for m, c in worse.items()) + \
        f" ({keep['n_items']} documents) · Δprobe acc " + ", ".join(f"{m} {v:+.3f}" for m, v in acc.items()
                                                                   if m != "base")
    keeps, erodes = keep["high"] <= CAPABILITY_TOL, {m: c["low"] > 0 for m, c in worse.items()}
    if keep["low"] > CAPABILITY_TOL or any(c["high"] < 0 for c in worse.values()):
        cl.verdict = "not held"
    else:
        cl.verdict = "held" if keeps and all(erodes.values()) else "partly held" if keeps or any(erodes.values()) \
            else "inconclusive"
    cl.why = f"RL {'keeps' if keeps else 'does not clearly keep'} held-out NLL; worse than RL: " + \
        ", ".join(f"{m} {'yes' if e else 'no'}" for m, e in erodes.items())
    return cl


def _claim7(s: _Study) -> Claim:
    cl = Claim(7, "Parallel averaging wins on pass@k_max and keeps capability",
               "at every checkpoint pass@k_max of parallel − the best of RL, SFT, SFT→RL: paired CI above 0; "
               f"pass@1 between SFT and RL (point values); mean probe acc within {CAPABILITY_TOL:g} of RL's")
    if not s.has("parallel", "rl", "sft"):
        cl.why = "needs parallel, RL and SFT branches"
        return cl
    others = [m for m in ("rl", "sft", "sft_rl") if s.has(m)]
    par_k = s.mean_at("parallel", s.km)
    table = pd.concat([s.mean_at(m, s.km) for m in others], axis=1, keys=others).loc[par_k.index].dropna(how="all")
    wins = []
    for t, row in table.iterrows():
        best = row.idxmax()
        c = s.cmp("parallel", best, s.km)
        wins.append(c[c["parent_tokens"] == t].iloc[0].to_dict() | {"best": best})
    wins = pd.DataFrame(wins)
    p1 = pd.concat([s.mean_at(m, 1) for m in ("parallel", "rl", "sft")], axis=1, keys=["p", "rl", "sft"]).dropna()
    between = ((p1["p"] >= p1[["rl", "sft"]].min(axis=1) - 1e-12) & (p1["p"] <= p1[["rl", "sft"]].max(axis=1) + 1e-12))
    g = general_deltas(s.tables["general"], ("probe_acc",)) if not s.tables["general"].empty else pd.DataFrame()
    acc = g.groupby("method")["delta"].mean() if not g.empty else pd.Series(dtype=float)
    cap_gap = acc["parallel"] - acc["rl"] if {"parallel", "rl"} <= set(acc.index) else None
    cl.stats = {"parallel_minus_best_passkmax_min": wins["diff"].min(),
                "parallel_minus_best_passkmax_low_min": wins["low"].min(), "probe_acc_parallel_minus_rl": cap_gap}
    cl.measured = f"pass@{s.km} parallel − best other: " + \
        "; ".join(f"{fmt_tokens(r['parent_tokens'])}: − {r['best']} {r['diff']:+.3f} {_ci(r)}" for _, r in wins.iterrows()) + \
        f" · pass@1 between SFT and RL at {int(between.sum())}/{len(between)} checkpoints" + \
        (f" · Δprobe acc parallel − RL {cap_gap:+.3f}" if cap_gap is not None else "")
    if _no_signal(cl, s):
        return cl
    win = "yes" if (wins["low"] > 0).all() else "opposite" if (wins["high"] < 0).any() else "unclear"
    parts = {"wins pass@k_max": win, "pass@1 between": "yes" if between.all() else "no",
             "keeps capability": "yes" if cap_gap is not None and abs(cap_gap) <= CAPABILITY_TOL else "no"}
    held = [p for p, ok in parts.items() if ok == "yes"]
    cl.verdict = "held" if len(held) == len(parts) else "not held" if win == "opposite" else \
        "partly held" if held else "not held"
    cl.why = "; ".join(f"{p}: {ok}" for p, ok in parts.items())
    return cl


def _claim10(s: _Study) -> Claim:
    cl = Claim(10, "Seed brittleness near the threshold",
               "std over ≥ 3 RL seeds of test pass@1: larger at the first checkpoint with a significant RL gain than "
               "at the last; CI of the difference from resampling problems")
    rl = s.passk[(s.passk["method"] == "rl") & (s.passk["split"] == s.split) & (s.passk["k"] == 1)] \
        if s.has("rl") else pd.DataFrame()
    seeds = rl.groupby("parent_tokens")["seed"].nunique() if not rl.empty else pd.Series(dtype=int)
    multi = sorted(seeds[seeds >= 3].index)
    if len(multi) < 2 or not s.has("base"):
        cl.why = f"needs ≥ 3 RL seeds at ≥ 2 checkpoints (branch.seeds); has {int(seeds.max()) if len(seeds) else 0} " \
                 f"seed(s) at {len(multi) or 'no'} checkpoint(s) with 3+"
        return cl
    std = rl[rl["parent_tokens"].isin(multi)].groupby("parent_tokens")["pass_at_k"].std()
    cl.measured = "std of pass@1 over seeds " + "; ".join(f"{fmt_tokens(t)}: {v:.3f}" for t, v in std.items())
    if _no_signal(cl, s):
        return cl
    one = s.cmp("rl")
    up = one[one["up"] & one["parent_tokens"].isin(multi)]
    if up.empty or up["parent_tokens"].iloc[0] == multi[-1]:
        cl.verdict, cl.why = "inconclusive", "no multi-seed checkpoint with a significant RL gain before the last"
        return cl
    thr = up["parent_tokens"].iloc[0]
    try:
        c = seed_spread(s.root, s.passk, thr, multi[-1], split=s.split)
    except RlearlyError as e:
        cl.verdict, cl.why = "inconclusive", str(e)
        return cl
    cl.stats = {"seed_std_threshold": c["std_a"], "seed_std_last": c["std_b"], "seed_std_diff": c["diff"],
                "seed_std_diff_low": c["low"], "seed_std_diff_high": c["high"]}
    cl.measured += f" · at {fmt_tokens(thr)} − at {fmt_tokens(multi[-1])}: {c['diff']:+.3f} [{c['low']:+.3f}, " \
                   f"{c['high']:+.3f}]"
    d = _direction(c["low"], c["high"])
    cl.verdict = _VERDICT_OF[d]
    cl.why = f"threshold at {fmt_tokens(thr)}: spread there " + \
        {"yes": "larger than at the last checkpoint", "opposite": "smaller than at the last checkpoint",
         "unclear": "not distinguishable from the last checkpoint's"}[d]
    return cl


_VERDICT_OF = {"yes": "held", "opposite": "not held", "unclear": "inconclusive"}  # a one-part claim's _direction


def _direction(low: float, high: float) -> str:
    return "yes" if low > 0 else "opposite" if high < 0 else "unclear"


def _two_part_verdict(cl: Claim, parts: dict[str, str]) -> None:
    """held: every part significant as claimed; not held: one significant the other way; else partly/inconclusive."""
    got = list(parts.values())
    cl.verdict = ("held" if all(g == "yes" for g in got) else "not held" if "opposite" in got
                  else "partly held" if "yes" in got else "inconclusive")
    cl.why = "; ".join(f"{p}: {g}" for p, g in parts.items())


def _claim8(s: _Study) -> Claim:
    cl = Claim(8, "Rollout count trades sample efficiency for compute efficiency",
               "same prompts seen: test pass@1 of many − few rollouts/prompt > 0 (paired CI); same generated "
               "tokens: test pass@1 of few − many > 0 (paired CI; many stopped at few's tokens, arm "
               f"{SAME_TOKENS}<G>), else validation pass@1 at interpolated tokens (normal-approx CI)")
    bm = s.every["branch_metrics"] if s.every is not None else pd.DataFrame()
    arms = [a for a in dict.fromkeys(bm["arm"])] if "arm" in bm else []
    budget = [a for a in arms if a.startswith("rollouts_")]
    if not budget:
        cl.why = "needs RL arms named rollouts_<G> that differ from main in rollouts per prompt only"
        return cl
    curves = budget_curves(bm, ["main", *budget] if "main" in arms else budget)
    sizes = curves.groupby("arm")["group_size"].first()
    few, many = sizes.idxmin(), sizes.idxmax()
    start = curves["parent_tokens"].iloc[0]
    pk_all = s.every["passk"]
    short = [a for a in arms if a.startswith(SAME_TOKENS)]
    sel = pk_all[(pk_all["method"] == "rl") & (pk_all["parent_tokens"] == start) & pk_all["arm"].isin([few, many, *short])]
    sel = sel.assign(method=sel["arm"])
    a = over_seeds(compare_methods(s.root, sel, many, few, [1], s.split))
    ga, gb = int(sizes[few]), int(sizes[many])
    cf = curves[curves["arm"] == few].dropna(subset=["val_pass@1"]).groupby("step").mean(numeric_only=True)
    cm = curves[curves["arm"] == many].dropna(subset=["val_pass@1"]).groupby("step").mean(numeric_only=True)
    if a.empty or cf.empty or cm.empty:
        cl.why = "needs test evaluations of both settings and validation pass@1 during RL (branch.eval_every)"
        return cl
    t = cf["gen_tokens"].iloc[-1]  # the few-rollout run's whole sampling budget
    r = a.iloc[0]
    cl.stats = {"few_G": ga, "many_G": gb, "dpass1_same_prompts": r["diff"], "dpass1_same_prompts_low": r["low"],
                "dpass1_same_prompts_high": r["high"]}
    cl.measured = f"G={gb} − G={ga} at equal prompts: Δpass@1 {r['diff']:+.3f} {_ci(r)}; "
    b = over_seeds(compare_methods(s.root, sel, few, short[0], [1], s.split)) if short else pd.DataFrame()
    if not b.empty:  # the many-rollout setting stopped at the few one's budget, evaluated on the test split
        sc = budget_curves(bm, short[:1], start)
        t_many, b = sc["gen_tokens"].iloc[-1], b.iloc[0]
        d, low, high = b["diff"], b["low"], b["high"]
        cl.measured += (f"G={ga} − G={int(sc['group_size'].iloc[0])} at {t:,.0f} vs {t_many:,.0f} generated tokens: "
                        f"Δtest pass@1 {d:+.3f} {_ci(b)}")
        cl.stats |= {"many_tokens_over_few": t_many / t}
    else:  # the many-rollout run's validation curve, interpolated to the few one's budget
        v_few = cf["val_pass@1"].iloc[-1]
        v_many = float(np.interp(t, cm["gen_tokens"], cm["val_pass@1"]))
        se = lambda c, i: c["val_pass@1_se"].iloc[i] if "val_pass@1_se" in c else math.nan  # noqa: E731
        half = 1.96 * math.hypot(se(cf, -1), se(cm, int(np.abs(cm["gen_tokens"] - t).argmin())))
        d, low, high = v_few - v_many, v_few - v_many - half, v_few - v_many + half
        cl.measured += f"G={ga} − G={gb} at {t:,.0f} generated tokens: Δval pass@1 {d:+.3f} [{low:+.3f}, {high:+.3f}]"
    cl.stats |= {"dpass1_same_tokens": d, "dpass1_same_tokens_low": low, "dpass1_same_tokens_high": high}
    if _no_signal(cl, s):
        return cl
    _two_part_verdict(cl, {"many rollouts better per prompt": _direction(r["low"], r["high"]),
                           "few rollouts better per token": _direction(low, high)})
    return cl


def _claim9(s: _Study) -> Claim:
    cl = Claim(9, "Data composition matters more than model scale",
               "hard-split RL gain (pass@1): math-heavy mix − wider model > 0, paired bootstrap CI over problems")
    arms = set(s.every["passk"]["arm"]) if s.every is not None and "arm" in s.every["passk"] else set()
    if not {"main", "math_heavy", "wider"} <= arms:
        cl.why = "needs arms math_heavy (more task data) and wider (larger model) with RL and hard-split evaluations"
        return cl
    try:
        top = gain_contrast(s.root, s.every["passk"], "math_heavy", "wider")
        low_end = gain_contrast(s.root, s.every["passk"], "wider", "main")
    except RlearlyError as e:
        cl.why = str(e)
        return cl
    gains = arm_gains(s.root, s.every["passk"], ["main", "math_heavy", "wider"], ["hard"]).query("k == 1")
    g = gains.set_index("arm")["gain"]
    cl.stats = {"gain_main": g.get("main"), "gain_math_heavy": g.get("math_heavy"), "gain_wider": g.get("wider"),
                "math_minus_wider": top["diff"], "math_minus_wider_low": top["low"],
                "math_minus_wider_high": top["high"], "wider_minus_main": low_end["diff"]}
    cl.measured = ("hard-split Δpass@1 from RL: " + ", ".join(f"{a} {v:+.3f}" for a, v in g.items()) +
                   f"; math-heavy − wider {top['diff']:+.3f} [{top['low']:+.3f}, {top['high']:+.3f}]; wider − main "
                   f"{low_end['diff']:+.3f} [{low_end['low']:+.3f}, {low_end['high']:+.3f}] ({top['n_problems']} problems)")
    if _no_signal(cl, s):
        return cl
    d = _direction(top["low"], top["high"])
    cl.verdict = _VERDICT_OF[d]
    cl.why = {"yes": "the math-heavy base gains more from RL than the wider one",
              "opposite": "the wider base gains more from RL than the math-heavy one",
              "unclear": "the CI of the contrast covers 0"}[d]
    return cl


_CLAIMS = (_claim1, _claim2, _claim3, _claim4, _claim5, _claim6, _claim7, _claim8, _claim9, _claim10)


def claims(study_root, tables: dict | None = None, split: str = "test") -> list[Claim]:
    """Each claim of PAPER §8 with the statistic this study measured and a verdict computed from it.
    `tables`: the main arm's (default load_tables); side experiments are read from every arm's tables."""
    tables = tables if tables is not None else load_tables(study_root)
    every = load_tables(study_root, arm=None) if "arm" in tables["passk"] else None
    s = _Study(study_root, tables, split, every)
    out = [c(s) for c in _CLAIMS]
    for c in out:
        c.paper = PAPER_NUMBERS[c.id]
    return out


def claims_frame(cls: list[Claim]) -> pd.DataFrame:
    return pd.DataFrame([{"#": c.id, "claim (PAPER §8)": c.claim, "test": c.test, "paper": c.paper,
                          "this study": c.measured, "verdict": c.verdict, "why": c.why} for c in cls]).set_index("#")


_VERDICT_COLORS = {"held": "#d9f2d9", "partly held": "#fff2cc", "not held": "#f8d7da", "inconclusive": "#eeeeee"}


def claims_table(cls: list[Claim]):
    """claims_frame styled for reading: full text, left-aligned, the verdict cell coloured."""
    return (claims_frame(cls).style
            .set_properties(**{"text-align": "left", "white-space": "normal", "vertical-align": "top"})
            .set_table_styles([{"selector": "th", "props": [("text-align", "left")]}])
            .map(lambda v: f"background-color: {_VERDICT_COLORS.get(v, 'transparent')}", subset=["verdict"]))


def claims_results(cls: list[Claim]) -> dict:
    verdicts = [c.verdict for c in cls]
    counts = {"claims_measured": sum(v != NOT_MEASURED for v in verdicts), "claims_held": verdicts.count("held"),
              "claims_partly_held": verdicts.count("partly held"), "claims_not_held": verdicts.count("not held"),
              "claims_inconclusive": verdicts.count("inconclusive")}
    return counts | {f"claim{c.id}.{k}": v for c in cls for k, v in c.stats.items()}


