"""Intervals over units of trained weights: pretraining runs and the seeds of branches trained from them.

A study's numbers vary at three levels: between pretraining runs, between branch seeds from one run, and between
the items measured (problems, documents, probes; the samples per problem inside them). A contrast of two methods
must resample what varies, and with the two or three units a study can afford, a percentile bootstrap over the
units undercovers (over three run means it covers the truth about 75% of the time: tests/test_units.py). Here:

    unit_contrast(a, b, units_a, units_b)   mean of A − mean of B, each a (units, items) array of per-unit values
        paired by run     both sides hold the same pretraining runs (>= 2): seeds are averaged within a run and
                          the interval is a t-interval over the per-run differences (df = runs − 1)
        paired by seed    one run, the same seeds on both sides (>= 2; SFT→RL's seed s starts from SFT's seed s)
        unpaired          Welch's t over each side's unit means (runs' means where a side has several runs); a
                          side of one unit is given the other side's spread between units
        one unit a side   the paired BCa bootstrap over items (it then covers the items only)
      Each t-interval's variance is that of a two-way random layout (units x items): it covers the units drawn and
      the items drawn, without counting the samples' noise twice; Satterthwaite's degrees of freedom (about
      units − 1 where the units' spread dominates). Coverage is checked in simulation (tests/test_units.py).
    seed_spread_test(a, b, n)                is the spread over seeds larger at A than at B (claim 10): an F-test of
                                             the two variances of seed means, the sides' sampling noise matched,
                                             with as many degrees of freedom as the seeds allow.

A unit is a (pretrain_seed, seed) pair, as in the study tables.
"""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
from scipy import stats

from rlearly.evaluation.passk import mean_ci


def _mean_by(values: np.ndarray, keys: list) -> dict:
    """{key: the mean row of `values` over the rows with that key}, keys in first-seen order."""
    rows = defaultdict(list)
    for v, k in zip(values, keys):
        rows[k].append(v)
    return {k: np.mean(vs, axis=0) for k, vs in rows.items()}


def _t_interval(diff: float, var: float, df: float, alpha: float) -> tuple[float, float]:
    if not math.isfinite(var) or var < 0 or df < 1:
        return math.nan, math.nan
    half = stats.t.ppf(1 - alpha / 2, df) * math.sqrt(var)
    return diff - half, diff + half


def unit_contrast(values_a, values_b, units_a, units_b, alpha: float = 0.05, n_boot: int = 2000,
                  seed: int = 0) -> tuple[float, float, float, str]:
    """(diff, low, high, covers): the mean over A's units minus the mean over B's, with a 1−alpha interval chosen
    by how the sides' units pair (module docstring), and what it resamples in words.

    `values_a` (units_a, items), `values_b` (units_b, items): per-unit values on the same items (e.g. pass@k per
    problem); `units_a`, `units_b`: a (pretrain_seed, seed) per row. The point estimate gives each pretraining run
    the same weight (seeds averaged within a run first), as the paired intervals do."""
    a, b = np.atleast_2d(np.asarray(values_a, dtype=np.float64)), np.atleast_2d(np.asarray(values_b, dtype=np.float64))
    ua, ub = [tuple(u) for u in units_a], [tuple(u) for u in units_b]
    if a.shape[1] != b.shape[1] or len(ua) != len(a) or len(ub) != len(b):
        raise ValueError(f"need per-unit values on the same items: shapes {a.shape}, {b.shape}, "
                         f"{len(ua)} and {len(ub)} units")
    runs_a, runs_b = _mean_by(a, [u[0] for u in ua]), _mean_by(b, [u[0] for u in ub])
    if set(runs_a) == set(runs_b) and len(runs_a) >= 2:  # paired by pretraining run
        d = np.stack([runs_a[r] - runs_b[r] for r in sorted(runs_a)])  # (runs, items)
        return _paired(d, alpha, f"pretraining runs ({len(d)}, paired; seeds averaged within a run) and items")
    if set(runs_a) == set(runs_b) and len(runs_a) == 1:
        seeds_a, seeds_b = _mean_by(a, ua), _mean_by(b, ub)
        if set(seeds_a) == set(seeds_b) and len(seeds_a) >= 2:  # paired by seed
            d = np.stack([seeds_a[s] - seeds_b[s] for s in sorted(seeds_a)])
            return _paired(d, alpha, f"seeds ({len(d)}, paired) and items")
        if len(a) == len(b) == 1:
            diff, low, high = mean_ci(a[0] - b[0], n_boot, alpha, seed)
            return diff, low, high, "items (one unit a side)"
        return _welch(a, b, alpha, f"seeds ({len(a)} vs {len(b)}) and items")
    ma, mb = np.stack(list(runs_a.values())), np.stack(list(runs_b.values()))  # the runs' means (seeds averaged)
    if len(ma) == len(mb) == 1:
        diff, low, high = mean_ci(ma[0] - mb[0], n_boot, alpha, seed)
        return diff, low, high, "items (one pretraining run a side)"
    return _welch(ma, mb, alpha, f"pretraining runs ({len(ma)} vs {len(mb)}, unpaired) and items")


def _satterthwaite(terms: list[tuple[float, int]]) -> float:
    """Degrees of freedom of a sum of variance terms (coefficient x mean square, its df)."""
    den = sum(v * v / k for v, k in terms if k > 0 and v != 0)
    return sum(v for v, _ in terms) ** 2 / den if den > 0 else math.inf


def _mean_squares(x: np.ndarray) -> tuple[float, float]:
    """(MS between units, MS residual) of a (units, items) two-way layout without replication."""
    u, i = x.shape
    if u < 2:
        return 0.0, 0.0
    unit, item, grand = x.mean(axis=1), x.mean(axis=0), x.mean()
    resid = x - unit[:, None] - item[None, :] + grand
    return i * float(np.var(unit, ddof=1)), float((resid ** 2).sum()) / ((u - 1) * (i - 1)) if i > 1 else 0.0


def _paired(d: np.ndarray, alpha: float, covers: str) -> tuple[float, float, float, str]:
    """The grand mean of per-unit, per-item differences `d` (units, items), with the variance of a two-way random
    layout (units, items and their interaction: (MS_units + MS_items − MS_residual) / (units x items)), so it
    covers both the units drawn and the items drawn without counting the sampling noise twice; Satterthwaite's
    degrees of freedom (about units − 1 where the units' spread dominates)."""
    u, i = d.shape
    ms_u, ms_e = _mean_squares(d)
    ms_i = u * float(np.var(d.mean(axis=0), ddof=1)) if i > 1 else 0.0
    terms = [(ms_u / (u * i), u - 1), (ms_i / (u * i), i - 1), (-ms_e / (u * i), (u - 1) * (i - 1))]
    var = max(sum(v for v, _ in terms), ms_u / (u * i))
    diff = float(d.mean())
    df = max(_satterthwaite(terms), u - 1)  # never fewer than the units give (a negative term can shrink it)
    return (diff, *_t_interval(diff, var, df, alpha), covers)


def _welch(a: np.ndarray, b: np.ndarray, alpha: float, covers: str) -> tuple[float, float, float, str]:
    """The difference of the two sides' grand means, unpaired units: each side's units add their spread, the items
    add the spread of the per-item difference of the side means less the residual noise already counted in the
    units' terms; Welch-Satterthwaite degrees of freedom. A side with one unit cannot show its units' spread: it is
    given the other side's (the same spread between units on both sides), else it would add none and the interval
    would cover the items alone."""
    i = a.shape[1]
    sides = [x for x in (a, b) if len(x) > 1]
    borrow = 1.0 if len(sides) == 1 else 0.0  # the lone unit's share, counted on its lender's mean squares (one
    terms, noise = [], []  # estimate, so one term with the lender's df, not two independent ones)
    for x in sides:
        ms_u, ms_e = _mean_squares(x)
        weight = 1 / len(x) + borrow
        terms.append((ms_u * weight / i, len(x) - 1))
        noise.append((-ms_e * weight / i, (len(x) - 1) * (i - 1)))
    units = sum(v for v, _ in terms)
    d_items = a.mean(axis=0) - b.mean(axis=0)
    terms += [(float(np.var(d_items, ddof=1)) / i if i > 1 else 0.0, i - 1), *noise]
    var = max(sum(v for v, _ in terms), units)
    diff = float(a.mean() - b.mean())
    df = max(_satterthwaite(terms), min([len(x) - 1 for x in (a, b) if len(x) > 1] or [i - 1]))
    return (diff, *_t_interval(diff, var, df, alpha), covers)


def sampling_variance(rates: np.ndarray, n: int) -> float:
    """The variance a seed's mean over items owes to sampling alone: `rates` (seeds, items) are per-item shares of
    n samples correct; each item's binomial variance p(1−p)/n estimated without bias by p̂(1−p̂)/(n−1)."""
    if n < 2:
        return 0.0
    return float(np.mean(np.sum(rates * (1 - rates), axis=1) / (n - 1))) / rates.shape[1] ** 2


def seed_spread_test(values_a, values_b, alpha: float = 0.05, n: int | None = None) -> dict:
    """Is the spread over seeds larger at A than at B? `values_a` (seeds_a, items), `values_b` (seeds_b, items):
    per-seed values (e.g. pass@1 per problem of the RL seeds of one pretraining run at two checkpoints). The
    spread is the variance over seeds of their means over the items; the items are the same for every seed, so
    their difficulty is common, but each seed's evaluation adds its sampling noise, which differs with the level
    (p(1−p)/n per item). With `n` (the values are shares of n samples correct) the side with less sampling noise
    is given the difference, so both carry the same and a level alone cannot make the test hold (conservative: a
    constant added to a variance makes its ratio's tail lighter than F's). One-sided F-test of var_A > var_B with
    (seeds_a − 1, seeds_b − 1) degrees of freedom: it can hold with 3 seeds a side (ratio > 19 at alpha 0.05),
    where a bootstrap over 3 seeds cannot (a resample of one seed drawn three times has no spread). `held` when
    p < alpha, `reversed` when the opposite test's p < alpha.

    Returns {std_a, std_b, noise_a, noise_b, ratio, p, p_reverse, df_a, df_b, held, reversed}."""
    a, b = np.atleast_2d(np.asarray(values_a, dtype=np.float64)), np.atleast_2d(np.asarray(values_b, dtype=np.float64))
    if min(len(a), len(b)) < 2:
        raise ValueError(f"a spread needs >= 2 seeds a side, got {len(a)} and {len(b)}")
    va, vb = float(np.var(a.mean(axis=1), ddof=1)), float(np.var(b.mean(axis=1), ddof=1))
    na, nb = (sampling_variance(a, n), sampling_variance(b, n)) if n else (0.0, 0.0)
    top = max(na, nb)
    da, db = len(a) - 1, len(b) - 1
    floor = 1e-12  # all seeds equal on one side: the ratio is then ~0 or very large, not undefined
    ratio = (va + top - na + floor) / (vb + top - nb + floor)
    p, p_rev = float(stats.f.sf(ratio, da, db)), float(stats.f.sf(1 / ratio, db, da))
    return {"std_a": math.sqrt(va), "std_b": math.sqrt(vb), "noise_a": math.sqrt(na), "noise_b": math.sqrt(nb),
            "ratio": ratio, "p": p, "p_reverse": p_rev, "df_a": da, "df_b": db, "held": p < alpha,
            "reversed": p_rev < alpha}
