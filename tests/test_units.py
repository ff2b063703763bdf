"""Intervals over units of trained weights (rlearly.evaluation.units): by hand, where the old rules gave the wrong
verdict, and their coverage and power in simulation at a study's own design (3 pretraining runs, 3 seeds)."""
import math

import numpy as np
import pytest
from scipy import stats

from rlearly.evaluation.passk import spread_difference, two_stage_diff
from rlearly.evaluation.units import seed_spread_test, unit_contrast


def test_paired_by_run_by_hand():
    """Two runs, two items: per-run differences 0.2 and 0.4 on both items, so no item spread and no residual: the
    interval is the t-interval over the two run differences (mean 0.3, sd 0.1414, df 1)."""
    a = np.array([[0.5, 0.7], [0.6, 0.8]])
    b = np.array([[0.3, 0.5], [0.2, 0.4]])
    diff, low, high, covers = unit_contrast(a, b, [(0, 0), (1, 0)], [(0, 0), (1, 0)])
    half = stats.t.ppf(0.975, 1) * math.sqrt(0.02 / 2)
    assert diff == pytest.approx(0.3) and (low, high) == pytest.approx((0.3 - half, 0.3 + half))
    assert covers == "pretraining runs (2, paired; seeds averaged within a run) and items"


def test_seeds_are_averaged_within_a_run_before_pairing():
    """Run 0 has three seeds on A and one on B: A's run-0 value is its seeds' mean, so each run weighs the same."""
    a = np.array([[0.4], [0.6], [0.5], [0.9]])  # run 0: seeds 0-2 (mean 0.5); run 1: 0.9
    b = np.array([[0.3], [0.6]])
    diff, _, _, covers = unit_contrast(a, b, [(0, 0), (0, 1), (0, 2), (1, 0)], [(0, 0), (1, 0)])
    assert diff == pytest.approx(((0.5 - 0.3) + (0.9 - 0.6)) / 2) and covers.startswith("pretraining runs (2, paired")


def test_one_unit_a_side_is_the_items_bootstrap_and_unpaired_runs_are_welch():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0, 1, (1, 50)), rng.uniform(0, 1, (1, 50))
    assert unit_contrast(a, b, [(0, 0)], [(0, 0)])[3] == "items (one unit a side)"
    a3, b3 = rng.uniform(0, 1, (3, 50)), rng.uniform(0, 1, (3, 50))
    assert unit_contrast(a3, b3, [(r, 0) for r in range(3)], [(r + 5, 0) for r in range(3)])[3] == \
        "pretraining runs (3 vs 3, unpaired) and items"
    assert unit_contrast(a3, b3[:1], [(0, s) for s in range(3)], [(0, 9)])[3] == "seeds (3 vs 1) and items"
    with pytest.raises(ValueError, match="same items"):
        unit_contrast(a3, b3[:, :10], [(r, 0) for r in range(3)], [(r, 0) for r in range(3)])


def _late_claim5():
    """The late study's claim 5 at 10M, made up: RL − SFT about +0.045 in each of three pretraining runs whose
    levels differ by far more (0.067 of spread), RL with three seeds in run 0 and one in runs 1 and 2."""
    rng = np.random.default_rng(5)
    q = rng.uniform(0.15, 0.55, 500)
    level, gap = {0: -0.067, 1: 0.0, 2: 0.067}, {0: 0.051, 1: 0.029, 2: 0.055}
    units_rl = [(0, 0), (0, 1), (0, 2), (1, 0), (2, 0)]
    rl = np.stack([rng.binomial(16, np.clip(q + level[r] + gap[r], 0, 1)) / 16 for r, _ in units_rl])
    sft = np.stack([rng.binomial(16, np.clip(q + level[r], 0, 1)) / 16 for r in range(3)])
    return rl, units_rl, sft, [(r, 0) for r in range(3)]


def test_claim5_contrast_pairs_by_run_where_the_old_one_could_not():
    """The old rule paired only identical unit lists; here they differ (5 RL units, 3 SFT), so it resampled the
    sides apart and the runs' level spread entered twice: no significant effect. Paired by run: held."""
    rl, url, sft, usft = _late_claim5()
    _, low_old, high_old = two_stage_diff(rl, sft, paired=False, n_boot=2000)
    assert low_old < 0 < high_old  # the old verdict: no significant effect
    diff, low, high, covers = unit_contrast(rl, sft, url, usft)
    assert 0.02 < diff < 0.07 and low > 0  # the new one: held
    assert covers.startswith("pretraining runs (3, paired")


def _simulate(rng, runs=3, problems=300, n=16, effect=0.045, run_sd=0.067, gap_sd=0.015):
    q = rng.uniform(0.2, 0.5, problems)
    u, g = rng.normal(0, run_sd, runs), rng.normal(effect, gap_sd, runs)
    b = rng.binomial(n, np.clip(q[None] + u[:, None], 0, 1)) / n
    a = rng.binomial(n, np.clip(q[None] + u[:, None] + g[:, None], 0, 1)) / n
    return a, b


def test_paired_interval_keeps_its_coverage_at_three_runs_where_the_bootstrap_does_not():
    """Made-up studies with three pretraining runs whose levels vary far more than their RL − SFT gap (+0.045).
    Where the gap's run-to-run spread dominates the problems' noise (sd 0.03, 500 problems x 64 samples), a
    percentile bootstrap over the three runs (the old rule, even paired) covers +0.045 about 80% of the time and the
    paired interval about 95%; at the late study's own spread (sd 0.015, 300 x 16) both are near 90-95%."""
    rng = np.random.default_rng(11)
    units = [(r, 0) for r in range(3)]
    for kw, new_at_least, old_at_most in ((dict(problems=500, n=64, gap_sd=0.03), 0.92, 0.86),
                                         (dict(problems=300, n=16, gap_sd=0.015), 0.88, 1.0)):
        new = old = 0
        for i in range(300):
            a, b = _simulate(rng, **kw)
            _, low, high, _ = unit_contrast(a, b, units, units)
            new += low <= 0.045 <= high
            _, low, high = two_stage_diff(a, b, paired=True, n_boot=400, seed=i)
            old += low <= 0.045 <= high
        assert new / 300 >= new_at_least and old / 300 <= old_at_most, (kw, new / 300, old / 300)


def test_seed_spread_test_can_hold_with_three_seeds_and_fails_when_the_spread_is_equal():
    """Claim 10's rule. With 3 seeds a side: a true seed spread of 0.079 at the threshold and 0.004 at the end (the
    issue's simulation) is found (held) in about 80% of made-up studies, where the old bootstrap over seeds held in
    none; with the same spread at both it holds in about 5% (its size), and never holds the other way round."""
    rng = np.random.default_rng(3)
    q = rng.uniform(0.1, 0.6, 300)

    def seeds(sd, k=3):
        return np.stack([rng.binomial(16, np.clip(q + e, 0, 1)) / 16 for e in rng.normal(0, sd, k)])
    held = held_old = size = 0
    for i in range(200):
        a, b = seeds(0.079), seeds(0.004)
        held += seed_spread_test(a, b)["held"]
        _, _, low, _ = spread_difference((a * 16).round(), (b * 16).round(), 16, n_boot=300, seed=i)
        held_old += low > 0
        size += seed_spread_test(seeds(0.03), seeds(0.03))["held"]
    assert held / 200 >= 0.7 and held_old == 0 and size / 200 <= 0.1, (held, held_old, size)
    t = seed_spread_test(seeds(0.0, 6), seeds(0.08, 6))
    assert not t["held"] and t["reversed"]  # a larger spread at the end is the opposite result


def test_a_side_of_one_unit_borrows_the_others_spread_between_units():
    """One run: RL with 3 seeds against SFT with 1 (the late study at 4.5M), seeds spread by 0.03 and the items by
    0.1. Without the single side's unit spread the interval covered the items alone (about 79%); given the other
    side's, it keeps 95% (0.948 over 1,000 such studies)."""
    rng = np.random.default_rng(5)
    hits = 0
    for _ in range(400):
        q = rng.uniform(0.1, 0.6, 200)
        a = np.stack([q + 0.05 + e + rng.normal(0, 0.1, 200) for e in rng.normal(0, 0.03, 3)])
        b = np.stack([q + e + rng.normal(0, 0.1, 200) for e in rng.normal(0, 0.03, 1)])
        _, low, high, covers = unit_contrast(a, b, [(0, 0), (0, 1), (0, 2)], [(0, 3)])
        hits += low <= 0.05 <= high
    assert covers == "seeds (3 vs 1) and items" and hits / 400 >= 0.92, hits / 400


def test_sampling_noise_is_matched_before_the_spreads_are_compared():
    """Seeds with no spread of their own at two levels: at 0.5 each seed's mean carries more binomial noise than at
    0.1. Compared raw, the level alone makes the 'larger spread at 0.5' hold (about 24% of the time, 6 seeds a side);
    matched, it holds at most its 5% (0.2% here: the matched test is conservative)."""
    rng = np.random.default_rng(2)

    def seeds(p, k=6):
        return rng.binomial(16, np.full((k, 60), p)) / 16
    raw = matched = 0
    for _ in range(400):
        a, b = seeds(0.5), seeds(0.1)
        raw += seed_spread_test(a, b)["held"]
        matched += seed_spread_test(a, b, n=16)["held"]
    assert raw / 400 > 0.15 and matched / 400 <= 0.06, (raw, matched)
