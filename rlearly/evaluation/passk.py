"""pass@k and the expansion/sharpening diagnostics (docs/DESIGN.md §5 "Evaluation protocol", docs/PAPER.md §4).

Owns: the unbiased pass@k estimator of Chen et al. (2021), pass@k curves, bootstrap confidence intervals
over problems (one model, and paired for two models on the same problems), and the diagnostics that
tell a branch's "expansion" from its "sharpening" against its start checkpoint: Δpass@1, Δpass@k_max,
the crossover k, coverage sets, the per-problem solve-rate shift, distinct correct solutions, a verdict,
and the readiness curve (the base model's pass@k on the RL training prompts).

Pure numpy/scipy. Inputs are per-problem correct counts `c` out of `n` samples per problem; a branch and
its start may use different n, and every comparison is on the same problems in the same order.
"""
from __future__ import annotations

import inspect
import itertools
import math
import warnings
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from scipy import stats

VERDICTS = ("expansion", "sharpening", "regression", "no significant change")


# ---------------------------------------------------------------- the estimator

def _check_nk(n: int, k: int) -> tuple[int, int]:
    n, k = int(n), int(k)
    if n < 1:
        raise ValueError(f"n={n} must be >= 1 (samples per problem)")
    if k < 1:
        raise ValueError(f"k={k} must be >= 1")
    if k > n:
        raise ValueError(f"k={k} > n={n}: pass@k needs at least k samples per problem")
    return n, k


def _counts(c, n: int) -> np.ndarray:
    arr = np.asarray(c)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError("correct counts must be whole numbers")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "iub":
        raise ValueError(f"correct counts must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() > n):
        raise ValueError(f"correct counts must lie in [0, n={n}], got [{arr.min()}, {arr.max()}]")
    return arr


def pass_at_k(n: int, c, k: int):
    """Unbiased pass@k = 1 − C(n−c, k)/C(n, k) per problem (Chen et al. 2021, eq. 1).

    Computed as 1 − prod_{i=n−c+1}^{n} (1 − k/i) in log space: log1p terms summed from the top, so no
    factorial or binomial is ever formed and n in the thousands is exact to ~1e-15. `c` may be a scalar
    (returns a float) or an array of per-problem counts (returns an array of the same shape).
    """
    n, k = _check_nk(n, k)
    cs = _counts(c, n)
    # t[i] = log(1 − k/i) for i = 1..n; only i > k is ever used (n − c >= k below)
    i = np.arange(1, n + 1, dtype=np.float64)
    t = np.full(n, -np.inf)
    t[k:] = np.log1p(-k / i[k:])
    # top[m] = sum_{i=n−m+1}^{n} t[i]: the log ratio C(n−m, k)/C(n, k) for m correct samples
    top = np.concatenate(([0.0], np.cumsum(t[::-1])))
    with np.errstate(invalid="ignore"):
        out = np.where(n - cs < k, 1.0, -np.expm1(top[cs])) + 0.0  # + 0.0 turns -0.0 into 0.0
    return float(out) if np.ndim(c) == 0 else out


def pass_at_k_curve(n: int, correct_counts, ks: Iterable[int] | None = None) -> dict[int, float]:
    """Mean pass@k over problems for every k in 1..n (or the given ks)."""
    cs = _counts(correct_counts, int(n))
    if cs.size == 0:
        raise ValueError("pass@k of zero problems is undefined")
    ks = range(1, int(n) + 1) if ks is None else ks
    return {int(k): float(np.mean(pass_at_k(n, cs, k))) for k in ks}


# ---------------------------------------------------------------- bootstrap over problems

def pass_at_k_by(n: int, correct_counts, groups, ks: Iterable[int]) -> list[dict]:
    """Mean pass@k per group of problems (e.g. their operation count): rows {group, n_problems, k, pass_at_k}, the
    groups in sorted order. `groups`: one label per problem, aligned with `correct_counts`."""
    cs, g = _counts(correct_counts, int(n)), np.asarray(groups)
    if len(g) != len(cs):
        raise ValueError(f"{len(g)} group labels for {len(cs)} problems")
    return [{"group": v.item() if hasattr(v, "item") else v, "n_problems": int((g == v).sum()), "k": int(k),
             "pass_at_k": float(np.mean(pass_at_k(n, cs[g == v], int(k))))} for v in sorted(set(g.tolist()))
            for k in ks]


def _rng_kwarg(seed: int) -> dict:
    """scipy >= 1.15 takes `rng`; older versions `random_state`."""
    params = inspect.signature(stats.bootstrap).parameters
    gen = np.random.default_rng(seed)
    return {"rng": gen} if "rng" in params else {"random_state": gen}


def _mean_ci(values: np.ndarray, n_boot: int, alpha: float, seed: int, method: str) -> tuple[float, float]:
    """Bootstrap CI of the mean of per-problem values, resampling problems with replacement.

    All-equal values have a zero-width distribution: returned as (v, v) with no warning. BCa can still
    fail (NaN) on near-degenerate data; then the percentile interval is used instead.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("a confidence interval over zero problems is undefined")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha={alpha} must lie in (0, 1)")
    if np.ptp(values) == 0.0:  # also one problem: nothing to resample
        return float(values[0]), float(values[0])
    for m in ((method, "percentile") if method != "percentile" else ("percentile",)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.bootstrap((values,), np.mean, n_resamples=int(n_boot), confidence_level=1.0 - alpha,
                                  method=m, vectorized=True, axis=-1, **_rng_kwarg(seed))
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if np.isfinite(low) and np.isfinite(high):
            return low, high
    raise ValueError("bootstrap interval is undefined for these values")  # pragma: no cover


def mean_ci(values, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high) of per-item values (e.g. per-document NLL differences) with a BCa bootstrap CI."""
    low, high = _mean_ci(np.asarray(values, dtype=np.float64), n_boot, alpha, seed, "BCa")
    return float(np.mean(values)), low, high


def bootstrap_ci(correct_counts, n: int, k: int, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0,
                 method: str = "BCa") -> tuple[float, float]:
    """(low, high) 1−alpha bootstrap CI of mean pass@k over problems (problems resampled with replacement)."""
    return _mean_ci(pass_at_k(n, np.asarray(correct_counts), k), n_boot, alpha, seed, method)


def paired_bootstrap_diff(counts_a, counts_b, n_a: int, n_b: int, k: int, n_boot: int = 1000,
                          alpha: float = 0.05, seed: int = 0, method: str = "BCa") -> tuple[float, float, float]:
    """(mean diff, low, high) of pass@k(a) − pass@k(b) on the same problems.

    Paired: the per-problem differences are resampled, which is the same as resampling problem indices
    jointly for both models, so problem difficulty cancels out. The CI excludes 0 when low > 0 or high < 0.
    """
    a, b = np.asarray(counts_a), np.asarray(counts_b)
    if a.shape != b.shape:
        raise ValueError(f"paired counts need the same problems: shapes {a.shape} and {b.shape}")
    d = pass_at_k(n_a, a, k) - pass_at_k(n_b, b, k)
    low, high = _mean_ci(d, n_boot, alpha, seed, method)
    return float(np.mean(d)), low, high


def difference_of_gains(c_start_a, c_branch_a, c_start_b, c_branch_b, n_sa: int, n_ba: int, n_sb: int, n_bb: int,
                        k: int, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high) of [pass@k(branch a) − pass@k(start a)] − [pass@k(branch b) − pass@k(start b)] over
    the same problems: does recipe/base a gain more than b? Per-problem contrasts are resampled jointly."""
    cs = [np.asarray(c) for c in (c_start_a, c_branch_a, c_start_b, c_branch_b)]
    if len({c.shape for c in cs}) != 1:
        raise ValueError(f"difference of gains needs counts on the same problems: shapes {[c.shape for c in cs]}")
    p = [pass_at_k(n, c, k) for n, c in zip((n_sa, n_ba, n_sb, n_bb), cs)]
    d = (p[1] - p[0]) - (p[3] - p[2])
    low, high = _mean_ci(d, n_boot, alpha, seed, "BCa")
    return float(np.mean(d)), low, high


def spread_difference(counts_a, counts_b, n: int, n_boot: int = 2000, alpha: float = 0.05,
                      seed: int = 0) -> tuple[float, float, float, float]:
    """(std_a, std_b, low, high): the spread over seeds of pass@1 at two checkpoints, and a CI of std_a − std_b.

    `counts_a`, `counts_b`: (seeds, problems) correct counts out of `n` of several seeds of one recipe at two
    checkpoints, on the same problems. The spread is the sample std (ddof=1) over seeds of mean pass@1.
    The percentile CI resamples both: the seeds at each checkpoint with replacement (the seeds are the
    experiment's units: a spread is a property of the seed distribution), then the problems, jointly for
    every seed at both checkpoints. With 3 seeds the interval is wide, as it should be.
    """
    a, b = np.asarray(counts_a, dtype=np.float64), np.asarray(counts_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(a.shape[0], b.shape[0]) < 2:
        raise ValueError(f"need (seeds >= 2, problems) counts on the same problems: shapes {a.shape}, {b.shape}")
    rng = np.random.default_rng(seed)
    wp = _resample_weights(rng, a.shape[1], n_boot) / a.shape[1]  # (B, P)
    ma, mb = (a / n) @ wp.T, (b / n) @ wp.T  # (seeds, B): seed means of pass@1 on resampled problems
    sa = rng.integers(0, a.shape[0], size=(n_boot, a.shape[0]))  # resampled seeds per replicate
    sb = rng.integers(0, b.shape[0], size=(n_boot, b.shape[0]))
    cols = np.arange(n_boot)
    boot = np.std(ma[sa, cols[:, None]], axis=1, ddof=1) - np.std(mb[sb, cols[:, None]], axis=1, ddof=1)
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    std = lambda c: float(np.std(c.mean(axis=1) / n, ddof=1))  # noqa: E731
    return std(a), std(b), float(low), float(high)


def _resample_weights(rng: np.random.Generator, size: int, n_boot: int) -> np.ndarray:
    """(n_boot, size) counts of how often each item is drawn in each bootstrap resample (rows sum to size)."""
    idx = rng.integers(0, size, size=(n_boot, size))
    return np.stack([np.bincount(row, minlength=size) for row in idx]).astype(np.float64)


def seed_contrast(counts_a, counts_b, n_a: int, n_b: int, k: int, paired_seeds: bool = False, n_boot: int = 2000,
                  alpha: float = 0.05, seed: int = 0) -> tuple[float, float, float]:
    """(diff, low, high): mean pass@k of A − of B, each averaged over its seeds (trained weights: RL or SFT
    seeds) and the problems, with a two-stage bootstrap CI that resamples seeds and problems.

    `counts_a` (seeds_a, problems) and `counts_b` (seeds_b, problems) on the same problems. Each resample draws
    each side's seeds with replacement (the same draw for both when `paired_seeds`: seed s of A was trained
    from seed s of B, as SFT→RL from SFT), then the problems with replacement (the same for every seed:
    problem difficulty cancels), and takes the difference of the means (percentile interval). With one seed
    on each side there is no seed variance to resample: the paired BCa interval over problems
    (paired_bootstrap_diff), which then covers problems only.
    """
    a, b = np.atleast_2d(np.asarray(counts_a)), np.atleast_2d(np.asarray(counts_b))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"seed contrast needs counts on the same problems: shapes {a.shape} and {b.shape}")
    if paired_seeds and a.shape[0] != b.shape[0]:
        raise ValueError(f"paired seeds need as many seeds on each side: {a.shape[0]} and {b.shape[0]}")
    if a.shape[0] == b.shape[0] == 1:
        return paired_bootstrap_diff(a[0], b[0], n_a, n_b, k, n_boot, alpha, seed)
    return two_stage_diff(pass_at_k(n_a, a, k), pass_at_k(n_b, b, k), paired_seeds, n_boot, alpha, seed)


def two_stage_diff(values_a, values_b, paired: bool = False, n_boot: int = 2000, alpha: float = 0.05,
                   seed: int = 0) -> tuple[float, float, float]:
    """(diff, low, high): mean of `values_a` (units_a, problems) − mean of `values_b` (units_b, problems), with
    a percentile CI from a two-stage bootstrap: each resample draws each side's units (trained weights: seeds,
    pretraining runs) with replacement, the same draw for both when `paired`, then the problems with
    replacement, jointly for every unit (problem difficulty cancels)."""
    pa, pb = np.atleast_2d(np.asarray(values_a, dtype=np.float64)), np.atleast_2d(np.asarray(values_b, dtype=np.float64))
    rng = np.random.default_rng(seed)
    wp = _resample_weights(rng, pa.shape[1], n_boot) / pa.shape[1]  # (B, P): problem resample, mean weights
    ma, mb = pa @ wp.T, pb @ wp.T  # (units, B): each unit's mean over the resampled problems
    wa = _resample_weights(rng, pa.shape[0], n_boot) / pa.shape[0]  # (B, units_a)
    wb = wa if paired else _resample_weights(rng, pb.shape[0], n_boot) / pb.shape[0]
    boot = np.einsum("sb,bs->b", ma, wa) - np.einsum("sb,bs->b", mb, wb)
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return float(pa.mean() - pb.mean()), float(low), float(high)


def spearman_permutation(x, y) -> tuple[float, float]:
    """(Spearman rho, one-sided p of rho this high under random pairing): exact over all permutations for
    n <= 8 points (e.g. checkpoints), so it is valid where the t-approximation is not."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 3 or x.size > 8:
        raise ValueError(f"need 3..8 paired points, got shapes {x.shape} and {y.shape}")
    rx, ry = stats.rankdata(x), stats.rankdata(y)
    if np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return math.nan, math.nan
    rho = lambda r: float(np.corrcoef(rx, r)[0, 1])  # noqa: E731
    obs = rho(ry)
    perms = [rho(ry[list(p)]) for p in itertools.permutations(range(x.size))]
    return obs, float(np.mean(np.asarray(perms) >= obs - 1e-12))


def stratified_rank_test(x, y, strata, n_perm: int = 20000, seed: int = 0) -> tuple[float, float, int]:
    """(S, p, pairs): does y rise with x *within* strata (e.g. RL gain with base readiness among pretraining runs at
    the same tokens, so that both rising with tokens proves nothing)? S is the sum over strata of Kendall's
    concordant minus discordant pairs; p the one-sided share of within-stratum permutations of y giving S at least
    as large (exact when there are at most `n_perm` of them, else `n_perm` seeded draws); `pairs` the pairs
    compared. No stratum with two points: (nan, nan, 0)."""
    x, y, strata = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64), np.asarray(strata)
    groups = [np.flatnonzero(strata == s) for s in dict.fromkeys(strata.tolist())]
    groups = [g for g in groups if len(g) >= 2]
    pairs = sum(len(g) * (len(g) - 1) // 2 for g in groups)
    if not groups:
        return math.nan, math.nan, 0

    def score(yy) -> float:  # concordant minus discordant pairs, summed over the strata
        return sum(float((np.sign(x[g][:, None] - x[g][None, :]) * np.sign(yy[g][:, None] - yy[g][None, :])).sum())
                   / 2 for g in groups)

    def permuted(orders) -> float:  # the score with each stratum's y in the given order
        yy = y.copy()
        for g, order in zip(groups, orders):
            yy[g] = y[list(order)]
        return score(yy)

    if math.prod(math.factorial(len(g)) for g in groups) <= n_perm:  # every within-stratum permutation
        orders = itertools.product(*(itertools.permutations(g) for g in groups))
    else:
        rng = np.random.default_rng(seed)
        orders = ([rng.permutation(g) for g in groups] for _ in range(n_perm))
    obs, draws = score(y), np.asarray([permuted(o) for o in orders])
    return obs, float(np.mean(draws >= obs - 1e-9)), pairs


# ---------------------------------------------------------------- branch against its start

@dataclass(frozen=True)
class Delta:
    """pass@k of a branch minus its start, with a paired bootstrap CI."""

    k: int
    start: float  # mean pass@k of the start checkpoint
    branch: float  # mean pass@k of the branch
    diff: float  # branch − start
    low: float
    high: float

    @property
    def up(self) -> bool:
        """Significantly higher: the CI lies above 0."""
        return self.low > 0.0

    @property
    def down(self) -> bool:
        """Significantly lower: the CI lies below 0."""
        return self.high < 0.0


def _pair(c_start, c_branch, n_start: int, n_branch: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = _counts(c_start, int(n_start)), _counts(c_branch, int(n_branch))
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"start and branch counts must be 1-D over the same problems: {a.shape} vs {b.shape}")
    if a.size == 0:
        raise ValueError("no problems to compare")
    return a, b


def delta_at(c_start, c_branch, n_start: int, n_branch: int, k: int, n_boot: int = 1000, alpha: float = 0.05,
             seed: int = 0) -> Delta:
    """Δpass@k = branch − start at one k, with its paired bootstrap CI."""
    a, b = _pair(c_start, c_branch, n_start, n_branch)
    diff, low, high = paired_bootstrap_diff(b, a, n_branch, n_start, k, n_boot, alpha, seed)
    return Delta(int(k), float(np.mean(pass_at_k(n_start, a, k))), float(np.mean(pass_at_k(n_branch, b, k))),
                 diff, low, high)


def delta_passk(c_start, c_branch, n_start: int, n_branch: int, k_max: int | None = None, n_boot: int = 1000,
                alpha: float = 0.05, seed: int = 0) -> dict[str, Delta]:
    """{"pass@1": Delta, "pass@k_max": Delta}; k_max defaults to min(n_start, n_branch)."""
    k_max = min(int(n_start), int(n_branch)) if k_max is None else int(k_max)
    return {"pass@1": delta_at(c_start, c_branch, n_start, n_branch, 1, n_boot, alpha, seed),
            "pass@k_max": delta_at(c_start, c_branch, n_start, n_branch, k_max, n_boot, alpha, seed)}


def crossover_k(c_start, c_branch, n_start: int, n_branch: int) -> int | None:
    """Smallest k where the branch's mean pass@k is <= the start's, given that it is above at k = 1.

    None when the branch is not above at k = 1 or never comes down to the start for k <= min(n). Both
    curves reaching 1.0 (every problem solved by both) is a tie at saturation, not a crossing.
    A sharpened branch crosses (higher pass@1, lower pass@k_max); an expanded one does not.
    """
    a, b = _pair(c_start, c_branch, n_start, n_branch)
    k_max = min(int(n_start), int(n_branch))
    for k in range(1, k_max + 1):
        p_start = float(np.mean(pass_at_k(n_start, a, k)))
        gap = float(np.mean(pass_at_k(n_branch, b, k))) - p_start
        if k == 1 and gap <= 0:
            return None
        if gap <= 1e-12 and p_start < 1.0 - 1e-12:
            return k
    return None


def coverage_sets(c_start, c_branch) -> dict[str, int]:
    """Problems solved (>= 1 correct sample) by the start only / the branch only / both / neither."""
    a, b = np.asarray(c_start) > 0, np.asarray(c_branch) > 0
    if a.shape != b.shape:
        raise ValueError(f"start and branch counts must cover the same problems: {a.shape} vs {b.shape}")
    return {"start_only": int(np.sum(a & ~b)), "branch_only": int(np.sum(~a & b)),
            "both": int(np.sum(a & b)), "neither": int(np.sum(~a & ~b))}


def solve_rate_shift(c_start, c_branch, n_start: int, n_branch: int) -> dict[str, float]:
    """Per-problem shift c_branch/n_branch − c_start/n_start: mean, median and fraction up/down/same."""
    a, b = _pair(c_start, c_branch, n_start, n_branch)
    d = b / int(n_branch) - a / int(n_start)
    return {"mean": float(d.mean()), "median": float(np.median(d)), "frac_up": float(np.mean(d > 0)),
            "frac_down": float(np.mean(d < 0)), "frac_same": float(np.mean(d == 0))}


def distinct_correct(correct_sets: Sequence[Iterable[str]], normalize: bool = True) -> float:
    """Mean number of distinct correct completions per problem (0 for a problem with none).

    `correct_sets[i]` holds the correct completion strings of problem i (repeats allowed). With
    `normalize`, runs of whitespace are collapsed and ends stripped before comparing.
    """
    if len(correct_sets) == 0:
        raise ValueError("distinct_correct of zero problems is undefined")
    norm = (lambda s: " ".join(s.split())) if normalize else (lambda s: s)
    return float(np.mean([len({norm(s) for s in group}) for group in correct_sets]))


def verdict(d1: Delta, dk: Delta) -> str:
    """Expansion or sharpening from Δpass@1 (d1) and Δpass@k_max (dk), decided by their CIs.

    "up"/"down" mean the paired CI lies entirely above/below 0 (docs/PAPER.md §4 "Sharpening vs expansion"):
      expansion             d1 up and dk up (new correct paths: coverage grows with pass@1), or
                            d1 unchanged and dk up (coverage grows alone)
      sharpening            d1 up and dk not up (pass@k at large k "stagnates or falls")
      regression            d1 down (whatever dk does), or d1 unchanged and dk down
      no significant change neither CI excludes 0
    """
    if d1.up:
        return "expansion" if dk.up else "sharpening"
    if d1.down or dk.down:
        return "regression"
    if dk.up:
        return "expansion"
    return "no significant change"


def compare(c_start, c_branch, n_start: int, n_branch: int, correct_sets_start=None, correct_sets_branch=None,
            k_max: int | None = None, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> dict:
    """Every diagnostic of a branch against its start on the same problems, as one JSON-able dict."""
    deltas = delta_passk(c_start, c_branch, n_start, n_branch, k_max, n_boot, alpha, seed)
    out = {name: vars(d).copy() for name, d in deltas.items()}
    out["verdict"] = verdict(deltas["pass@1"], deltas["pass@k_max"])
    out["crossover_k"] = crossover_k(c_start, c_branch, n_start, n_branch)
    out["coverage"] = coverage_sets(c_start, c_branch)
    out["solve_rate_shift"] = solve_rate_shift(c_start, c_branch, n_start, n_branch)
    if correct_sets_start is not None:
        out["distinct_correct_start"] = distinct_correct(correct_sets_start)
    if correct_sets_branch is not None:
        out["distinct_correct_branch"] = distinct_correct(correct_sets_branch)
    return out


def readiness(c_train_base, n: int, ks: Iterable[int] | None = None) -> dict[int, float]:
    """The base checkpoint's mean pass@k on the RL *training* prompts (docs/PAPER.md §4 diagnostic, §8 claim 2).

    Just the curve; plot the RL gain against it to see whether base solve-rate predicts RL working.
    """
    return pass_at_k_curve(n, c_train_base, ks)
