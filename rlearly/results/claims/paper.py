"""The paper's ten claims (docs/PAPER.md §8), each one registered unit: what it needs (methods, arm roles, splits),
the rule of each of its parts, and the function that measures them on a study (rlearly.results.claims.rules)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from rlearly.errors import RlearlyError
from rlearly.evaluation.passk import spearman_permutation, stratified_rank_test
from rlearly.results.analysis import (CAPABILITY_TOL, SFT_FAMILY, arm_gains, budget_curves, compare_methods, contrast,
                                      fmt_tokens, gain_contrast, general_contrast, seed_spread)
from rlearly.results.claims.rules import (CONTRADICTED, FLAT_TOL, HELD, JUMP_SHARE, MEASURABLE, MIN_SCORED, NI_MARGIN,
                                          NO_EFFECT, NOT_MEASURED, PEAK_TOL, Part, Rule, Study, _all, _at_most, _ci,
                                          _non_inferior, _row, _series, _set, _sig, _within, beyond_verdict, register,
                                          sig_verdict)

_NULL_FLAT = f"|Δ| > {FLAT_TOL}"

_PAIRED = ("BCa bootstrap over problems with one unit a side; with several, a t-interval paired by pretraining run "
           "(seeds averaged within a run; units.unit_contrast)")

_ITEMS = "as over problems, over documents (probes for the margins)"


@register(1, "RL starts working early, after a threshold",
          "Δpass@1 +1–3 pp at 2B tokens (train reward flat ≈ 0.02), +13 pp at 4B, +40 pp at 20B",
          (Rule("no gain where the base is first measurable", "Δpass@1 RL − base at the earliest RL checkpoint whose "
                f"base pass@k_max ≥ {MEASURABLE}", _NULL_FLAT,
                f"±{FLAT_TOL}; measured only if ≥ {MIN_SCORED:.0%} of RL's samples carry a scored answer", _PAIRED),
           Rule("a threshold", "Δpass@1 RL − base at every checkpoint from some later one on", "Δ ≤ 0 there", "0",
                _PAIRED),
           Rule("a large jump early", "tokens of the first checkpoint whose Δpass@1 is significant and at least "
                f"{JUMP_SHARE:.2g} of the last checkpoint's", "that checkpoint in the second half of pretraining",
                "≤ ½ of the last checkpoint's tokens", "none (a position; significance from the paired CI)")),
          methods=("rl", "base"))
def _claim1(s: Study, parts: dict) -> dict:
    flat, thr, early = parts.values()
    d = s.contrast("rl")
    if len(d) < 2:
        flat.why = "needs RL and base at ≥ 2 checkpoints"
        return {}
    stats = {"dpass1_first": d["diff"].iloc[0], "dpass1_last": d["diff"].iloc[-1], "threshold_tokens": None,
             "jump_tokens": None}
    ok = [s.measurable(t) for t in d["parent_tokens"]]
    if not any(ok):
        flat.why = f"no checkpoint's base reaches pass@{s.km} {MEASURABLE}: a flat line there is two zeros"
    else:
        first = d.iloc[ok.index(True)]
        rate = s.scored_rate("rl", first["parent_tokens"])
        flat.value = f"at {fmt_tokens(first['parent_tokens'])}: {_row(first)}" + \
            (f" (scored answers {rate:.0%})" if np.isfinite(rate) else "")
        stats["dpass1_first_measurable"] = first["diff"]
        if np.isfinite(rate) and rate < MIN_SCORED:
            _set(flat, NOT_MEASURED, f"RL gave a scored answer in {rate:.1%} of samples: a flat line measures nothing")
        else:
            _within(flat, first["low"], first["high"], FLAT_TOL)
    up = d["up"].to_numpy()
    tail = next((i for i in range(len(up)) if up[i:].all()), None)  # the start of the run of gains to the end
    thr.value = "Δpass@1 " + _series(d)
    last_tokens, last_gain = d["parent_tokens"].iloc[-1], d["diff"].iloc[-1]
    if d[["low", "high"]].isna().any().any():
        _set(thr, NOT_MEASURED, "no interval at some checkpoint")
        _set(early, NOT_MEASURED, "no interval at some checkpoint")
        return stats
    if tail == 0:  # significant from the first checkpoint on: the threshold, if any, lies before the study's
        _set(thr, NO_EFFECT, f"RL gains already at the first checkpoint ({fmt_tokens(d['parent_tokens'].iloc[0])}): "
             "no threshold inside the study")
        _set(early, NO_EFFECT, "no threshold to place the jump after")
        return stats
    if tail is None:
        down = bool(d["down"].iloc[-1])
        _set(thr, CONTRADICTED if down else NO_EFFECT,
             "RL lowers pass@1 at the last checkpoint" if down else "no run of significant gains to the last checkpoint")
        _set(early, NO_EFFECT, "no gain to place")
        return stats
    stats["threshold_tokens"] = d["parent_tokens"].iloc[tail]
    _set(thr, HELD, f"gains significant from {fmt_tokens(stats['threshold_tokens'])} on")
    large = d[d["up"] & (d["diff"] >= JUMP_SHARE * last_gain)]  # the last checkpoint always is one
    t = large["parent_tokens"].iloc[0]
    stats["jump_tokens"] = t
    early.value = (f"Δpass@1 first significant and ≥ {JUMP_SHARE:.2g} of the last ({JUMP_SHARE * last_gain:+.3f}) at "
                   f"{fmt_tokens(t)} of {fmt_tokens(last_tokens)} tokens ({t / last_tokens:.0%})")
    _set(early, HELD if t <= last_tokens / 2 else CONTRADICTED)
    return stats


@register(2, "The base model's pass@k on the RL training prompts predicts the RL gain",
          "RL failed where base train pass@32 was 14% (2B) and worked at 25% (4B); no fitted threshold published",
          (Rule("readiness predicts the gain beyond tokens", "RL Δpass@1 (test) against base pass@k_max on the train "
                "split, among pretraining runs at the same checkpoint (tokens held fixed)", "no positive association",
                "one-sided p < 0.05", "exact permutation within each checkpoint over every arm's runs (Kendall pairs "
                "summed); across checkpoints alone readiness and gain both rise with tokens, which proves nothing"),
           Rule("no gain below a small solve rate", "Δpass@1 RL − base at the checkpoint of lowest measurable base "
                f"readiness (train pass@k_max ≥ {MEASURABLE}), with a significant gain at a higher one", _NULL_FLAT,
                f"±{FLAT_TOL}", _PAIRED)),
          methods=("rl", "base"), splits=("test", "train"))
def _claim2(s: Study, parts: dict) -> dict:
    beyond, below = parts.values()
    train = s.passk[(s.passk["split"] == "train") & (s.passk["method"] == "base")]
    if train.empty or len(s.ckpts) < 2:
        beyond.why = below.why = "needs base evaluations on the train split (eval.readiness: true) and RL at ≥ 2 " \
                                 "checkpoints"
        return {}
    kt = int(train["k"].max())
    xy = _readiness_units(s, kt)  # every arm's pretraining runs: (arm, pretrain_seed, parent_tokens, x, y)
    stats = {"readiness_k": kt}
    if len(xy) >= 3 and xy["parent_tokens"].nunique() >= 3:  # the old rule, across checkpoints: context only
        per = xy.groupby("parent_tokens")[["x", "y"]].mean()
        if len(per) <= 8:
            stats["spearman_over_checkpoints"] = spearman_permutation(per["x"], per["y"])[0]
            stats["spearman_tokens_alone"] = spearman_permutation(per.index.to_numpy(float), per["y"])[0]
    s_obs, p, pairs = stratified_rank_test(xy["x"], xy["y"], xy["parent_tokens"]) if len(xy) else (0, 1, 0)
    context = (f"; across checkpoints alone ρ = {stats['spearman_over_checkpoints']:+.2f}, tokens alone "
               f"{stats['spearman_tokens_alone']:+.2f}") if "spearman_tokens_alone" in stats else ""
    if not pairs:
        beyond.why = ("not testable at this design: needs ≥ 2 pretraining runs (or arms) evaluated for readiness and "
                      "trained by RL at the same checkpoint" + context)
    else:
        s_rev, p_rev, _ = stratified_rank_test(xy["x"], -xy["y"], xy["parent_tokens"])
        beyond.value = f"within-checkpoint concordance {s_obs:+.0f} of {pairs} pairs, p = {p:.3f}" + context
        _set(beyond, HELD if p < 0.05 else CONTRADICTED if p_rev < 0.05 else NO_EFFECT)
        stats |= {"concordance": s_obs, "concordance_p": p}
    main = xy[(xy["arm"] == "main") & (xy["pretrain_seed"] == xy["pretrain_seed"].min())].sort_values("x")
    low = main[main["x"] >= MEASURABLE]
    d = s.contrast("rl").set_index("parent_tokens")
    if low.empty:
        below.why = f"no checkpoint's base reaches train pass@{kt} {MEASURABLE}"
        return stats
    t0 = low["parent_tokens"].iloc[0]
    r = d.loc[t0]
    higher = d[d.index.isin(main[main["x"] > low["x"].iloc[0]]["parent_tokens"])]
    below.value = f"at {fmt_tokens(t0)} (base train pass@{kt} {low['x'].iloc[0]:.3f}): {_row(r)}"
    stats |= {"readiness_lowest": float(low["x"].iloc[0]), "dpass1_at_lowest": float(r["diff"])}
    if not higher["up"].any():
        _set(below, NO_EFFECT, "no significant gain at a higher readiness")
    else:
        _within(below, r["low"], r["high"], FLAT_TOL)
    return stats


def _readiness_units(s: Study, k: int) -> pd.DataFrame:
    """Per pretraining run of every arm and checkpoint: the base's pass@k on the train split (x) and RL's Δpass@1
    on the test split (y; RL seeds averaged within the run)."""
    out = []
    every = s.every["passk"]
    for arm, p in every.groupby("arm"):
        train = p[(p["split"] == "train") & (p["method"] == "base") & (p["k"] == k)]
        if train.empty or "rl" not in set(p["method"]):
            continue
        ready = train.groupby(["pretrain_seed", "parent_tokens"])["pass_at_k"].mean().rename("x")
        gain = compare_methods(s.root, p, "rl", "base", [1], s.split).groupby(["pretrain_seed", "parent_tokens"])
        xy = pd.concat([ready, gain["diff"].mean().rename("y")], axis=1, join="inner").reset_index()
        out.append(xy.assign(arm=arm))
    cols = ["arm", "pretrain_seed", "parent_tokens", "x", "y"]
    return pd.concat(out, ignore_index=True)[cols] if out else pd.DataFrame(columns=cols)


@register(3, "Direct RL expands: pass@k_max rises with pass@1",
          "Δpass@32 (RL − base) +5.6 to +23.6 pp at every checkpoint; small or mixed on MATH",
          (Rule("pass@k_max up wherever pass@1 is", "Δpass@k_max RL − base at each checkpoint whose Δpass@1 CI is "
                "above 0", "Δ ≤ 0", "0", _PAIRED),),
          methods=("rl", "base"))
def _claim3(s: Study, parts: dict) -> dict:
    (part,) = parts.values()
    one, big = s.contrast("rl"), s.contrast("rl", k=s.km)
    post = big[big["parent_tokens"].isin(one[one["up"]]["parent_tokens"])]
    part.value = f"Δpass@{s.km} " + _series(big)
    if post.empty:
        part.why = "no checkpoint where RL lifted pass@1 significantly"
        return {"dpasskmax_last": big["diff"].iloc[-1] if len(big) else None}
    _all(part, [sig_verdict(r.low, r.high) for r in post.itertuples()])
    return {"dpasskmax_last": big["diff"].iloc[-1], "dpasskmax_min_post": post["diff"].min()}


@register(4, "SFT→RL sharpens",
          "SFT→RL − SFT: pass@1 ≈ +16 pp, pass@32 −6 to −7.5 pp",
          (Rule("pass@1 up", "pass@1 SFT→RL − SFT at the last checkpoint", "Δ ≤ 0", "0", _PAIRED),
           Rule("pass@k_max down", "pass@k_max SFT→RL − SFT at the last checkpoint", "Δ ≥ 0", "0", _PAIRED)),
          methods=("sft", "sft_rl"))
def _claim4(s: Study, parts: dict) -> dict:
    p1, pk = parts.values()
    one, big = s.contrast("sft_rl", "sft"), s.contrast("sft_rl", "sft", s.km)
    if one.empty or big.empty:
        p1.why = pk.why = "needs SFT→RL and SFT at a shared checkpoint"
        return {}
    one, big = one.iloc[-1], big.iloc[-1]
    p1.value = f"Δpass@1 at {fmt_tokens(one['parent_tokens'])}: {_row(one)}"
    pk.value = f"Δpass@{s.km}: {_row(big)}"
    _sig(p1, one["low"], one["high"])
    _sig(pk, -big["high"], -big["low"])
    return {"dpass1": one["diff"], "dpasskmax": big["diff"]}


@register(5, "RL beats single-demo SFT on pass@1 once the base is capable; SFT-Gold wins on pass@k",
          "RL overtakes SFT on pass@1 from ≈ 10–12B (44B: 56.2 vs 42.4); SFT-Gold − RL pass@32 +7 to +50 pp; "
          "SFT-Gold→RL has the best pass@1 (60.3 at 44B)",
          (Rule("RL not ahead at the earliest", "pass@1 RL − SFT at the earliest SFT checkpoint whose base pass@k_max "
                f"≥ {MEASURABLE}", f"Δ > {FLAT_TOL}", f"≤ +{FLAT_TOL}", _PAIRED),
           Rule("RL ahead at the last", "pass@1 RL − SFT at the last checkpoint", "Δ ≤ 0", "0", _PAIRED),
           Rule("SFT-Gold wins on pass@k_max", "pass@k_max SFT-Gold − RL at each SFT-Gold checkpoint", "Δ ≤ 0", "0",
                _PAIRED),
           Rule("SFT-Gold→RL has the best pass@1", "pass@1 SFT-Gold→RL − the best other recipe at each of its "
                "checkpoints", "Δ ≤ 0", "0", _PAIRED)),
          methods=("rl", "sft"))
def _claim5(s: Study, parts: dict) -> dict:
    early, late, gold, gold_rl = parts.values()
    rs = s.contrast("rl", "sft")
    stats = {"rl_minus_sft_pass1_first": None, "rl_minus_sft_pass1_last": None, "gold_minus_rl_passkmax_min": None,
             "gold_rl_minus_best_pass1_min": None}
    if len(rs) >= 2:
        ok = [s.measurable(t) for t in rs["parent_tokens"]]
        first, last = rs.iloc[ok.index(True) if any(ok) else 0], rs.iloc[-1]
        late.value = f"at {fmt_tokens(last['parent_tokens'])}: {_row(last)}"
        _sig(late, last["low"], last["high"])
        stats |= {"rl_minus_sft_pass1_first": first["diff"], "rl_minus_sft_pass1_last": last["diff"]}
        if not any(ok) or first["parent_tokens"] == last["parent_tokens"]:
            early.why = f"no SFT checkpoint before the last whose base reaches pass@{s.km} {MEASURABLE}"
        else:
            early.value = f"pass@1 RL − SFT at {fmt_tokens(first['parent_tokens'])}: {_row(first)}"
            _at_most(early, first["low"], first["high"], FLAT_TOL)
    else:
        early.why = late.why = "needs RL and SFT at ≥ 2 checkpoints"
    if s.has("sft_gold"):
        g = s.contrast("sft_gold", "rl", s.km)
        gold.value = f"pass@{s.km} SFT-Gold − RL " + _series(g)
        _all(gold, [sig_verdict(r.low, r.high) for r in g.itertuples()])
        stats["gold_minus_rl_passkmax_min"] = g["diff"].min() if len(g) else None
    else:
        gold.why = "needs SFT-Gold branches"
    if s.has("sft_gold_rl"):
        verdicts, vals = [], []
        for t in s.mean_at("sft_gold_rl", 1).index:
            others = {m: s.mean_at(m, 1).get(t) for m in ("rl", "sft", "sft_gold", "sft_rl", "parallel") if s.has(m)}
            others = {m: v for m, v in others.items() if v is not None and np.isfinite(v)}
            if not others:
                continue
            best = max(others, key=others.get)
            c = s.contrast("sft_gold_rl", best)
            c = c[c["parent_tokens"] == t].iloc[0]
            verdicts.append(sig_verdict(c["low"], c["high"]))
            vals.append(f"{fmt_tokens(t)}: − {best} {_row(c)}")
            stats["gold_rl_minus_best_pass1_min"] = min(stats["gold_rl_minus_best_pass1_min"] or math.inf, c["diff"])
        gold_rl.value = "pass@1 SFT-Gold→RL " + "; ".join(vals)
        _all(gold_rl, verdicts)
    else:
        gold_rl.why = "SFT-Gold→RL (method sft_gold_rl) not run: the claim is at most partly held"
    return stats


@register(6, "RL keeps general capability; SFT erodes it",
          "6-task average: RL within ±0.5 pp of base; SFT −5 to −7 pp, SFT-Gold ≈ −7 pp, SFT→RL ≈ −4 to −6 pp",
          (Rule("RL keeps capability", "held-out general NLL, RL − base, relative, per document averaged over "
                "checkpoints", f"Δ > +{CAPABILITY_TOL:.0%}", f"≤ +{CAPABILITY_TOL:.0%}", _ITEMS),
           Rule("SFT erodes it", "the same, each SFT-family branch − RL", f"Δ ≤ +{CAPABILITY_TOL:.0%}",
                f"> +{CAPABILITY_TOL:.0%} (the same tolerance as RL's)", _ITEMS),
           Rule("SFT lowers the probes' margins", "per-probe log-likelihood margin (correct option − best wrong one, "
                "nats; facts, pronouns, sequences), each SFT-family branch − RL, averaged over checkpoints",
                "Δ ≥ 0", "0", _ITEMS.replace("documents", "probes"))),
          methods=("rl", "base"))
def _claim6(s: Study, parts: dict) -> dict:
    keep_p, erode_p, margin_p = parts.values()
    items = s.tables.get("general_items", pd.DataFrame())
    have = set(items["method"]) if not items.empty else set()
    sfts = [m for m in SFT_FAMILY if m in have]
    if not {"rl", "base"} <= have:
        keep_p.why = erode_p.why = margin_p.why = "needs per-document general-capability scores of base and RL"
        return {}
    margins = "probe_margin" in set(items["metric"])  # evaluations before probe margins: accuracy only
    probe = "probe_margin" if margins else "probe_correct"
    score = lambda m, a: general_contrast(items, m, a, probe, relative=False)  # noqa: E731
    keep, rl_probe = general_contrast(items, "rl", "base"), score("rl", "base")
    if keep is None:
        keep_p.why = erode_p.why = margin_p.why = "needs general-capability scores of base and RL on the same documents"
        return {}
    unit = "nats" if margins else "accuracy"
    probe_text = f"; Δprobe {unit} {rl_probe['diff']:+.3f} {_ci(rl_probe['low'], rl_probe['high'])}" if rl_probe else ""
    keep_p.value = f"ΔNLL RL − base {keep['diff']:+.2%} [{keep['low']:+.2%}, {keep['high']:+.2%}] " \
                   f"({keep['n_items']} documents, {keep['covers']})" + probe_text
    _at_most(keep_p, keep["low"], keep["high"], CAPABILITY_TOL)
    stats = {"dnll_rel.rl": keep["diff"], "dnll_rel.rl_high": keep["high"],
             f"d{probe}.rl": rl_probe["diff"] if rl_probe else None}
    if not sfts:
        erode_p.why = margin_p.why = "needs an SFT-family branch"
        return stats
    worse = {m: general_contrast(items, m, "rl") for m in sfts}
    erode_p.value = " · ".join(f"{m} − RL {c['diff']:+.2%} [{c['low']:+.2%}, {c['high']:+.2%}]"
                               for m, c in worse.items())
    _all(erode_p, [beyond_verdict(c["low"], c["high"], CAPABILITY_TOL) for c in worse.values()], "SFT-family method")
    lower = {m: score(m, "rl") for m in sfts}
    lower = {m: c for m, c in lower.items() if c is not None}
    if lower:
        n_probes = next(iter(lower.values()))["n_items"]
        margin_p.value = " · ".join(f"{m} − RL {c['diff']:+.3f} {_ci(c['low'], c['high'])}"
                                    for m, c in lower.items()) + f" ({unit}, {n_probes} probes)"
        _all(margin_p, [sig_verdict(-c["high"], -c["low"]) for c in lower.values()], "SFT-family method")
        if not margins:
            margin_p.why = f"{margin_p.why}; accuracy: these evaluations predate probe margins"
    else:
        margin_p.why = "needs per-probe scores of the SFT-family branches and RL"
    return stats | {f"dnll_rel_minus_rl.{m}": c["diff"] for m, c in worse.items()} | \
        {f"dnll_rel_minus_rl_low.{m}": c["low"] for m, c in worse.items()} | \
        {f"d{probe}_minus_rl.{m}": c["diff"] for m, c in lower.items()}


@register(7, "Parallel averaging wins on pass@k_max and keeps capability",
          "pass@32 parallel − RL +3.9 to +16.4 pp; pass@1 between SFT and RL; capability within ±1 pp of base",
          (Rule("≥ the best on pass@k_max", "pass@k_max parallel − the best of RL, SFT, SFT→RL at each parallel "
                "checkpoint", f"Δ ≤ −{NI_MARGIN}", f"non-inferiority margin {NI_MARGIN}", _PAIRED),
           Rule("pass@1 between SFT and RL", "pass@1 parallel − the lower of SFT and RL, and the higher − parallel",
                "either ≤ 0", "0", _PAIRED),
           Rule("keeps capability", "held-out general NLL, parallel − RL, relative", f"Δ > +{CAPABILITY_TOL:.0%}",
                f"≤ +{CAPABILITY_TOL:.0%} (claim 6's)", _ITEMS)),
          methods=("parallel", "rl", "sft"))
def _claim7(s: Study, parts: dict) -> dict:
    win_p, between_p, cap_p = parts.values()
    wins, betweens, vals, vals1 = [], [], [], []
    stats = {"parallel_minus_best_passkmax_min": None}
    for t in s.mean_at("parallel", s.km).index:
        pk = {m: s.mean_at(m, s.km).get(t) for m in ("rl", "sft", "sft_rl") if s.has(m)}
        pk = {m: v for m, v in pk.items() if v is not None and np.isfinite(v)}
        if not pk:
            wins.append(NOT_MEASURED)
            betweens.append(NOT_MEASURED)
            continue
        best = max(pk, key=pk.get)
        c = s.contrast("parallel", best, s.km)
        c = c[c["parent_tokens"] == t].iloc[0]
        verdict = Part(win_p.rule)
        _non_inferior(verdict, c["low"], c["high"], NI_MARGIN)
        wins.append(verdict.verdict)
        vals.append(f"{fmt_tokens(t)}: − {best} {_row(c)}")
        low_so_far = stats["parallel_minus_best_passkmax_min"]
        stats["parallel_minus_best_passkmax_min"] = c["diff"] if low_so_far is None else min(low_so_far, c["diff"])
        p1 = {m: s.mean_at(m, 1).get(t) for m in ("rl", "sft")}
        if any(v is None for v in p1.values()):
            betweens.append(NOT_MEASURED)
            continue
        lo, hi = sorted(p1, key=p1.get)
        c_lo = s.contrast("parallel", lo)
        c_lo = c_lo[c_lo["parent_tokens"] == t].iloc[0]
        c_hi = s.contrast(hi, "parallel")
        c_hi = c_hi[c_hi["parent_tokens"] == t].iloc[0]
        v_lo, v_hi = sig_verdict(c_lo["low"], c_lo["high"]), sig_verdict(c_hi["low"], c_hi["high"])
        betweens.append(HELD if v_lo == v_hi == HELD else CONTRADICTED if CONTRADICTED in (v_lo, v_hi) else
                        NOT_MEASURED if NOT_MEASURED in (v_lo, v_hi) else NO_EFFECT)
        vals1.append(f"{fmt_tokens(t)}: − {lo} {_row(c_lo)}, {hi} − parallel {_row(c_hi)}")
    win_p.value = f"pass@{s.km} parallel " + "; ".join(vals)
    between_p.value = "pass@1 " + "; ".join(vals1)
    _all(win_p, wins)
    _all(between_p, betweens)
    items = s.tables.get("general_items", pd.DataFrame())
    cap = general_contrast(items, "parallel", "rl") if not items.empty else None
    if cap is None:
        cap_p.why = "needs per-document general-capability scores of parallel and RL"
    else:
        cap_p.value = f"ΔNLL parallel − RL {cap['diff']:+.2%} [{cap['low']:+.2%}, {cap['high']:+.2%}]"
        _at_most(cap_p, cap["low"], cap["high"], CAPABILITY_TOL)
        stats["dnll_rel_parallel_minus_rl"] = cap["diff"]
    return stats


@register(8, "Rollout count trades sample efficiency for compute efficiency",
          "n=64 peaks within 40–50K samples, n=5 needs 100–380K; n=5 leads against FLOPs early (Feb blog)",
          (Rule("many rollouts better per prompt", "test pass@1, many − few rollouts per prompt, same prompts seen",
                "Δ ≤ 0", "0", "BCa bootstrap over problems (one seed per arm)"),
           Rule("few rollouts better per token", "test pass@1, few − many stopped at few's generated tokens (arm "
                "rollouts_same_tokens), else dev-split validation pass@1 at interpolated tokens", "Δ ≤ 0", "0",
                "BCa bootstrap over problems; the fallback: normal approximation"),
           Rule("both reach about the same peak", "test pass@1, few rollouts trained to its dev plateau (arm "
                "rollouts_few_plateau) − many rollouts", f"|Δ| > {PEAK_TOL:g}", f"±{PEAK_TOL:g}",
                "BCa bootstrap over problems (one seed per arm); held when the interval lies inside ±tolerance"),
           Rule("few rollouts better per FLOP on hard prompts", "pass@1 against generated tokens, few − many, on a "
                "Hard training split (≤ 8 of 64 base samples correct) against an Easy one (16–64 of 64)", "Δ ≤ 0",
                "0", "not built: the world has no training split chosen by the base's successes")),
          methods=("rl",), roles=("rollouts_few", "rollouts_many"))
def _claim8(s: Study, parts: dict) -> dict:
    prompt_p, token_p, peak_p, hard_p = parts.values()
    hard_p.why = "not testable at this design: needs Easy/Hard training splits chosen by the base's successes out " \
                 "of 64 samples (PAPER.md §6), which the world does not build"
    few, many = s.roles["rollouts_few"], s.roles["rollouts_many"]
    short = s.roles.get("rollouts_same_tokens")
    bm = s.every["branch_metrics"]
    curves = budget_curves(bm, [few, many])
    sizes = curves.groupby("arm")["group_size"].first()
    start = curves["parent_tokens"].iloc[0]
    pk_all = s.every["passk"]
    sel = pk_all[(pk_all["method"] == "rl") & (pk_all["parent_tokens"] == start) &
                 pk_all["arm"].isin([few, many, *([short] if short else [])])]
    sel = sel.assign(method=sel["arm"])
    a = contrast(s.root, sel, many, few, [1], s.split)
    cf = curves[curves["arm"] == few].dropna(subset=["val_pass@1"]).groupby("step").mean(numeric_only=True)
    cm = curves[curves["arm"] == many].dropna(subset=["val_pass@1"]).groupby("step").mean(numeric_only=True)
    if a.empty:
        prompt_p.why = token_p.why = peak_p.why = "needs test evaluations of both rollout settings"
        return {}
    ga, gb, r = int(sizes[few]), int(sizes[many]), a.iloc[0]
    prompt_p.value = f"G={gb} − G={ga} at equal prompts: Δpass@1 {_row(r)}"
    _sig(prompt_p, r["low"], r["high"])
    stats = {"few_G": ga, "many_G": gb, "dpass1_same_prompts": r["diff"]}
    plateau = s.roles.get("rollouts_few_plateau")
    at = pk_all[(pk_all["method"] == "rl") & (pk_all["parent_tokens"] == start) & pk_all["arm"].isin([plateau, many])]
    c = contrast(s.root, at.assign(method=at["arm"]), plateau, many, [1], s.split) if plateau else pd.DataFrame()
    if c.empty:
        peak_p.why = "not testable at this design: needs an arm with role rollouts_few_plateau (few rollouts trained " \
                     "to its dev plateau)" if not plateau else "needs test evaluations of rollouts_few_plateau"
    else:
        c = c.iloc[0]
        peak_p.value = f"G={ga} at its plateau − G={gb}: Δtest pass@1 {_row(c)}"
        _within(peak_p, c["low"], c["high"], PEAK_TOL)
        stats["dpass1_peaks"] = c["diff"]
    b = contrast(s.root, sel, few, short, [1], s.split) if short else pd.DataFrame()
    if not b.empty:
        sc, b = budget_curves(bm, [short], start), b.iloc[0]
        t = cf["gen_tokens"].iloc[-1] if not cf.empty else math.nan
        g_short, t_short = (int(sc["group_size"].iloc[0]), sc["gen_tokens"].iloc[-1]) if len(sc) else (gb, math.nan)
        token_p.value = (f"G={ga} − G={g_short} at {t:,.0f} vs {t_short:,.0f} generated tokens: Δtest pass@1 "
                         f"{_row(b)}")
        _sig(token_p, b["low"], b["high"])
        stats |= {"dpass1_same_tokens": b["diff"], "many_tokens_over_few": t_short / t}
    elif cf.empty or cm.empty:
        token_p.why = "needs validation pass@1 during RL (branch.eval_every) or a rollouts_same_tokens arm"
    else:
        t = cf["gen_tokens"].iloc[-1]
        v_few, v_many = cf["val_pass@1"].iloc[-1], float(np.interp(t, cm["gen_tokens"], cm["val_pass@1"]))
        se = lambda c, i: c["val_pass@1_se"].iloc[i] if "val_pass@1_se" in c else math.nan  # noqa: E731
        half = 1.96 * math.hypot(se(cf, -1), se(cm, int(np.abs(cm["gen_tokens"] - t).argmin())))
        d = v_few - v_many
        token_p.value = f"G={ga} − G={gb} at {t:,.0f} generated tokens: Δdev pass@1 {d:+.3f} {_ci(d - half, d + half)}"
        _sig(token_p, d - half, d + half)
        stats["dpass1_same_tokens"] = d
    return stats


@register(9, "Data composition matters more than model scale",
          "1B on 60B math-heavy mix beats 4B on the 50B mix (RL pass@1 21–22% vs 12%, authors' working notes)",
          (Rule("the targeted mix gains more than the wider model", "hard-split RL gain (pass@1), targeted mix − "
                "wider model, at each arm's last RL checkpoint (judged on sealed: sealed_hard, at the level chosen on "
                "dev_hard)", "Δ ≤ 0", "0",
                "BCa over problems with one run an arm; with several, Welch's t over the runs"),),
          methods=("rl", "base"), roles=("targeted_mix", "wider_model"), splits=("hard",))
def _claim9(s: Study, parts: dict) -> dict:
    (part,) = parts.values()
    mix, wide, hard = s.roles["targeted_mix"], s.roles["wider_model"], s.read_split("hard")
    try:
        top = gain_contrast(s.root, s.every["passk"], mix, wide, split=hard)
    except RlearlyError as e:
        part.why = str(e)
        return {}
    g = arm_gains(s.root, s.every["passk"], ["main", mix, wide], [hard]).query("k == 1").set_index("arm")["gain"]
    part.value = (f"{hard}-split Δpass@1 from RL: " + ", ".join(f"{a} {v:+.3f}" for a, v in g.items()) +
                  f"; targeted − wider {top['diff']:+.3f} {_ci(top['low'], top['high'])} ({top['n_problems']} "
                  f"problems; the interval covers {top['covers']})")
    _sig(part, top["low"], top["high"])
    return {"gain_main": g.get("main"), "gain_targeted": g.get(mix), "gain_wider": g.get(wide),
            "targeted_minus_wider": top["diff"]}


@register(10, "Seed brittleness near the threshold",
          "4 seeds at 4–10B: test accuracy diverges across seeds there and settles by ≈ 10B",
          (Rule("larger seed spread at the threshold", "variance over ≥ 3 RL seeds of test pass@1 at the first "
                "multi-seed checkpoint with a significant RL gain, over that at the last", "ratio ≤ 1",
                "one-sided p < 0.05", "F-test over the seeds (df seeds − 1 a side; the problems are the same for "
                "every seed; the checkpoint with less sampling noise is given the difference)"),),
          methods=("rl", "base"))
def _claim10(s: Study, parts: dict) -> dict:
    (part,) = parts.values()
    rl = s.passk[(s.passk["method"] == "rl") & (s.passk["split"] == s.split) & (s.passk["k"] == 1)]
    rl = rl[rl["pretrain_seed"] == rl["pretrain_seed"].min()]  # RL seeds of one pretraining run
    seeds = rl.groupby("parent_tokens")["seed"].nunique()
    multi = sorted(seeds[seeds >= 3].index)
    if len(multi) < 2:
        part.why = f"needs ≥ 3 RL seeds at ≥ 2 checkpoints; has {int(seeds.max()) if len(seeds) else 0} seed(s) at " \
                   f"{len(multi) or 'no'} checkpoint(s) with 3+"
        return {}
    std = rl[rl["parent_tokens"].isin(multi)].groupby("parent_tokens")["pass_at_k"].std()
    one = s.contrast("rl")
    up = one[one["up"] & one["parent_tokens"].isin(multi)]
    if up.empty or up["parent_tokens"].iloc[0] == multi[-1]:
        part.value = "std of pass@1 over seeds " + "; ".join(f"{fmt_tokens(t)}: {v:.3f}" for t, v in std.items())
        part.why = "no multi-seed checkpoint with a significant RL gain before the last"
        return {}
    thr = up["parent_tokens"].iloc[0]
    try:
        c = seed_spread(s.root, s.passk, thr, multi[-1], split=s.split)
    except RlearlyError as e:
        part.why = str(e)
        return {}
    part.value = (f"std of pass@1 over {c['seeds_a']} seeds at {fmt_tokens(thr)} {c['std_a']:.3f}, over "
                  f"{c['seeds_b']} at {fmt_tokens(multi[-1])} {c['std_b']:.3f}: variance ratio {c['ratio']:.3g}, "
                  f"F-test p = {c['p']:.3f} (df {c['df_a']}, {c['df_b']})")
    _set(part, HELD if c["held"] else CONTRADICTED if c["reversed"] else NO_EFFECT)
    return {"seed_std_threshold": c["std_a"], "seed_std_last": c["std_b"], "seed_std_diff": c["diff"],
            "seed_spread_p": c["p"]}


# ---------------------------------------------------------------- evaluating every claim
