"""The paper's claims (PAPER §8) beside what a study measured: each claim's statistic, CI and verdict,
computed from the study's tables and sample store, never from wording.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rlearly.analysis import (CAPABILITY_TOL, SFT_FAMILY, _ci, arm_gains, budget_curves, compare_methods, fmt_tokens,
                              gain_contrast, general_deltas, k_max, load_tables, over_seeds, seed_mean)
from rlearly.errors import RlearlyError

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
               "Spearman ρ between base pass@k_max on the train split and RL Δpass@1 (test) over ≥ 3 checkpoints")
    train = s.passk[(s.passk["split"] == "train") & (s.passk["method"] == "base")] if not s.passk.empty else s.passk
    if train.empty or not s.has("rl", "base") or len(s.ckpts) < 3:
        cl.why = "needs base evaluations on the train split (eval.readiness: true) and RL at ≥ 3 checkpoints"
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
               "tokens: validation pass@1 of few − many > 0 (normal-approx CI)")
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
    sel = pk_all[(pk_all["method"] == "rl") & (pk_all["parent_tokens"] == start) & pk_all["arm"].isin([few, many])]
    sel = sel.assign(method=sel["arm"])
    a = over_seeds(compare_methods(s.root, sel, many, few, [1], s.split))
    ga, gb = int(sizes[few]), int(sizes[many])
    cf = curves[curves["group_size"] == ga].dropna(subset=["val_pass@1"]).groupby("step").mean(numeric_only=True)
    cm = curves[curves["group_size"] == gb].dropna(subset=["val_pass@1"]).groupby("step").mean(numeric_only=True)
    if a.empty or cf.empty or cm.empty:
        cl.why = "needs test evaluations of both settings and validation pass@1 during RL (branch.eval_every)"
        return cl
    t = cf["gen_tokens"].iloc[-1]  # the few-rollout run's whole sampling budget
    v_few = cf["val_pass@1"].iloc[-1]
    v_many = float(np.interp(t, cm["gen_tokens"], cm["val_pass@1"]))
    se = lambda c, i: c["val_pass@1_se"].iloc[i] if "val_pass@1_se" in c else math.nan  # noqa: E731
    half = 1.96 * math.hypot(se(cf, -1), se(cm, int(np.abs(cm["gen_tokens"] - t).argmin())))
    r = a.iloc[0]
    cl.stats = {"few_G": ga, "many_G": gb, "dpass1_same_prompts": r["diff"], "dpass1_same_prompts_low": r["low"],
                "dpass1_same_prompts_high": r["high"], "dval1_same_tokens": v_few - v_many,
                "dval1_same_tokens_low": v_few - v_many - half, "dval1_same_tokens_high": v_few - v_many + half}
    cl.measured = (f"G={gb} − G={ga} at equal prompts: Δpass@1 {r['diff']:+.3f} {_ci(r)}; G={ga} − G={gb} at "
                   f"{t:,.0f} generated tokens: Δval pass@1 {v_few - v_many:+.3f} "
                   f"[{v_few - v_many - half:+.3f}, {v_few - v_many + half:+.3f}]")
    if _no_signal(cl, s):
        return cl
    _two_part_verdict(cl, {"many rollouts better per prompt": _direction(r["low"], r["high"]),
                           "few rollouts better per token": _direction(v_few - v_many - half, v_few - v_many + half)})
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
    cl.verdict = {"yes": "held", "opposite": "not held", "unclear": "inconclusive"}[d]
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
    return [c(s) for c in _CLAIMS]


def claims_frame(cls: list[Claim]) -> pd.DataFrame:
    return pd.DataFrame([{"#": c.id, "claim (PAPER §8)": c.claim, "test": c.test, "this study": c.measured,
                          "verdict": c.verdict, "why": c.why} for c in cls]).set_index("#")


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


