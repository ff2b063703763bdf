"""pass@k estimator, bootstrap CIs and the expansion/sharpening diagnostics (rlearly.evaluation.passk)."""
import itertools
import warnings

import numpy as np
import pytest

from rlearly.evaluation import passk as pk


def brute_pass_at_k(n: int, c: int, k: int) -> float:
    """Fraction of all k-subsets of n samples (the first c correct) that hold at least one correct one."""
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(i < c for i in s) for s in subsets) / len(subsets)


def test_pass_at_k_matches_enumeration_over_all_subsets():
    for n in range(1, 9):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pk.pass_at_k(n, c, k) == pytest.approx(brute_pass_at_k(n, c, k), abs=1e-12), (n, c, k)


def test_pass_at_k_known_values():
    for n in (1, 5, 32, 256):
        for k in (1, n // 2 or 1, n):
            assert pk.pass_at_k(n, n, k) == 1.0
            assert pk.pass_at_k(n, 0, k) == 0.0
        for c in range(n + 1):
            assert pk.pass_at_k(n, c, 1) == pytest.approx(c / n, abs=1e-12)
    # hand: n=4, c=1, k=2 -> 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pk.pass_at_k(4, 1, 2) == pytest.approx(0.5)
    assert pk.pass_at_k(32, 1, 32) == 1.0  # pass@n is "any of the n is correct"


def test_pass_at_k_large_n_is_finite_and_monotone():
    n = 1024
    c = np.arange(1, n)
    ks = [1, 2, 3, 8, 32, 100, 512, 1000, 1023, 1024]
    table = np.stack([pk.pass_at_k(n, c, k) for k in ks])  # (len(ks), n-1)
    assert np.all(np.isfinite(table)) and table.min() >= 0.0 and table.max() <= 1.0
    assert np.all(np.diff(table, axis=0) >= -1e-12)  # non-decreasing in k
    assert np.all(np.diff(table, axis=1) >= -1e-12)  # non-decreasing in c
    assert table[0] == pytest.approx(c / n, abs=1e-12)
    assert np.all(table[-1] == 1.0)
    # c=1, k=512: exactly k/n = 0.5
    assert pk.pass_at_k(n, 1, 512) == pytest.approx(0.5, abs=1e-12)


def test_pass_at_k_vectorised_and_scalar_agree():
    c = np.array([[0, 3], [7, 8]])
    out = pk.pass_at_k(8, c, 3)
    assert out.shape == (2, 2)
    assert out[1, 0] == pytest.approx(pk.pass_at_k(8, 7, 3))
    assert isinstance(pk.pass_at_k(8, 3, 3), float)


def test_pass_at_k_rejects_bad_arguments():
    with pytest.raises(ValueError, match="k=5 > n=4"):
        pk.pass_at_k(4, 1, 5)
    with pytest.raises(ValueError, match="k=0"):
        pk.pass_at_k(4, 1, 0)
    with pytest.raises(ValueError, match="lie in"):
        pk.pass_at_k(4, 5, 1)
    with pytest.raises(ValueError, match="whole"):
        pk.pass_at_k(4, 1.5, 1)


def test_pass_at_k_curve_monotone_and_endpoints():
    rng = np.random.default_rng(0)
    c = rng.integers(0, 17, size=50)
    curve = pk.pass_at_k_curve(16, c)
    assert list(curve) == list(range(1, 17))
    vals = np.array(list(curve.values()))
    assert np.all(np.diff(vals) >= -1e-12)
    assert curve[1] == pytest.approx(np.mean(c / 16))
    assert curve[16] == pytest.approx(np.mean(c > 0))
    assert pk.pass_at_k_curve(16, c, ks=[1, 8]) == {1: curve[1], 8: curve[8]}
    assert pk.readiness(c, 16, [1, 8]) == {1: curve[1], 8: curve[8]}


def test_bootstrap_ci_contains_mean_and_shrinks_with_more_problems():
    rng = np.random.default_rng(1)
    widths = []
    for n_problems in (40, 1000):
        c = rng.binomial(8, rng.uniform(size=n_problems))
        low, high = pk.bootstrap_ci(c, 8, 1, n_boot=500, seed=0)
        mean = np.mean(pk.pass_at_k(8, c, 1))
        assert low <= mean <= high
        widths.append(high - low)
    assert widths[1] < widths[0] / 2  # ~ 1/sqrt(25) = 0.2 expected
    assert pk.bootstrap_ci(c, 8, 1, n_boot=200, seed=3) == pk.bootstrap_ci(c, 8, 1, n_boot=200, seed=3)
    lo_p, hi_p = pk.bootstrap_ci(c, 8, 4, n_boot=200, method="percentile")
    assert lo_p < np.mean(pk.pass_at_k(8, c, 4)) < hi_p


def test_bootstrap_degenerate_inputs_give_a_point_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pk.bootstrap_ci([3] * 20, 8, 1) == (0.375, 0.375)
        assert pk.bootstrap_ci([5], 8, 2) == pytest.approx((pk.pass_at_k(8, 5, 2),) * 2)
        assert pk.paired_bootstrap_diff([1, 2, 3], [1, 2, 3], 8, 8, 2) == (0.0, 0.0, 0.0)


def test_paired_diff_excludes_zero_for_clear_gain_and_includes_it_for_noise():
    rng = np.random.default_rng(2)
    start = rng.binomial(16, rng.uniform(0.1, 0.6, size=200))
    better = np.minimum(start + 3, 16)
    diff, low, high = pk.paired_bootstrap_diff(better, start, 16, 16, 1, n_boot=500)
    assert diff > 0 and low > 0 and low <= diff <= high
    # the same model sampled twice: the CI straddles 0
    p = rng.uniform(0.1, 0.6, size=200)
    a, b = rng.binomial(16, p), rng.binomial(16, p)
    diff, low, high = pk.paired_bootstrap_diff(a, b, 16, 16, 1, n_boot=500)
    assert low < 0 < high
    with pytest.raises(ValueError, match="same problems"):
        pk.paired_bootstrap_diff([1, 2], [1], 4, 4, 1)


def test_coverage_sets_by_hand():
    start = [0, 3, 0, 2, 0]
    branch = [1, 0, 0, 5, 2]
    assert pk.coverage_sets(start, branch) == {"start_only": 1, "branch_only": 2, "both": 1, "neither": 1}


def test_crossover_k_by_hand():
    # start: 10 problems with 2/8 correct  -> pass@1 .25, pass@2 1-15/28=.464, pass@3 1-20/56=.643
    # branch: 5 problems 8/8, 5 problems 0/8 -> pass@k = .5 for every k
    start = [2] * 10
    branch = [8] * 5 + [0] * 5
    assert pk.crossover_k(start, branch, 8, 8) == 3
    assert pk.crossover_k(branch, start, 8, 8) is None  # below at k=1
    # above until both reach 1.0 (branch from k=5, start from k=7): a tie at saturation is no crossing
    assert pk.crossover_k(start, [4] * 10, 8, 8) is None
    # branch 9 x 3/8 + one 0/8. k=4: start 1-C(6,4)/C(8,4) = 1-15/70 = .786 < branch .9*(1-C(5,4)/70) = .836;
    # k=5: start 1-C(6,5)/C(8,5) = 1-6/56 = .893 > branch .9*(1-C(5,5)/56) = .884  -> crosses at 5
    assert pk.crossover_k(start, [3] * 9 + [0], 8, 8) == 5


def test_solve_rate_shift_and_distinct_correct_by_hand():
    s = pk.solve_rate_shift([2, 4, 4, 0], [4, 4, 2, 1], 8, 4)
    # shifts: 4/4-2/8=.75, 4/4-4/8=.5, 2/4-4/8=0, 1/4-0=.25
    assert s == pytest.approx({"mean": 0.375, "median": 0.375, "frac_up": 0.75, "frac_down": 0.0, "frac_same": 0.25})
    sets = [["a = 1", "a  = 1 ", "b"], [], ["x"]]
    assert pk.distinct_correct(sets) == pytest.approx((2 + 0 + 1) / 3)
    assert pk.distinct_correct(sets, normalize=False) == pytest.approx((3 + 0 + 1) / 3)


def _expansion_case():
    start = np.array([1] * 100 + [0] * 100)  # pass@1 1/16, pass@8 .5
    branch = np.full(200, 4)  # pass@1 .5, pass@8 1
    return start, branch


def _sharpening_case():
    start = np.full(200, 2)  # pass@1 .25, pass@8 1
    branch = np.array([8] * 100 + [0] * 100)  # pass@1 .5, pass@8 .5
    return start, branch


def test_verdicts_on_constructed_cases():
    start, branch = _expansion_case()
    d = pk.delta_passk(start, branch, 8, 8, n_boot=300)
    assert d["pass@1"].diff == pytest.approx(0.5 - 1 / 16) and d["pass@k_max"].diff == pytest.approx(0.5)
    assert pk.verdict(d["pass@1"], d["pass@k_max"]) == "expansion"
    start, branch = _sharpening_case()
    d = pk.delta_passk(start, branch, 8, 8, n_boot=300)
    assert d["pass@k_max"].k == 8 and d["pass@k_max"].down
    assert pk.verdict(d["pass@1"], d["pass@k_max"]) == "sharpening"
    d = pk.delta_passk(branch, start, 8, 8, n_boot=300)  # the other way round pass@1 falls
    assert pk.verdict(d["pass@1"], d["pass@k_max"]) == "regression"
    d = pk.delta_passk(start, start, 8, 8)
    assert pk.verdict(d["pass@1"], d["pass@k_max"]) == "no significant change"


def test_verdict_rules_from_intervals():
    up, flat, down = pk.Delta(1, 0, 0, .1, .05, .15), pk.Delta(1, 0, 0, 0, -.1, .1), pk.Delta(1, 0, 0, -.1, -.15, -.05)
    assert pk.verdict(up, up) == "expansion"
    assert pk.verdict(up, flat) == "sharpening" and pk.verdict(up, down) == "sharpening"
    assert pk.verdict(down, up) == "regression" and pk.verdict(flat, down) == "regression"
    assert pk.verdict(flat, up) == "expansion"
    assert pk.verdict(flat, flat) == "no significant change"


def test_compare_collects_every_diagnostic_with_different_n():
    start, branch = _sharpening_case()
    out = pk.compare(start, branch * 2, 8, 16, [["a"]] * 200, [["a", "b"]] * 200,
                     n_boot=200)
    assert out["pass@k_max"]["k"] == 8  # min(n_start, n_branch)
    assert out["verdict"] == "sharpening" and out["crossover_k"] == 3
    assert out["coverage"]["start_only"] == 100
    assert out["distinct_correct_branch"] == 2.0


def test_difference_of_gains_by_hand():
    # 4 problems, n = 2, pass@1 = c / 2. Arm a: start (0,0,1,1) -> branch (2,2,1,1): gains +1,+1,0,0.
    # Arm b: start (0,0,1,1) -> branch (1,0,1,1): gains +.5,0,0,0. Contrast per problem .5,1,0,0: mean .375
    diff, low, high = pk.difference_of_gains([0, 0, 1, 1], [2, 2, 1, 1], [0, 0, 1, 1], [1, 0, 1, 1], 2, 2, 2, 2, k=1)
    assert diff == pytest.approx(0.375)
    assert low <= diff <= high and 0.0 <= low and high <= 1.0
    with pytest.raises(ValueError, match="same problems"):
        pk.difference_of_gains([0], [1, 1], [0], [0], 2, 2, 2, 2, k=1)


def test_spread_difference_by_hand():
    # n = 4. Checkpoint a, three seeds: mean counts 1, 0, 4 -> pass@1 .25, 0, 1: std (ddof 1) = sqrt(.2708) = .5204.
    # Checkpoint b: mean counts 1, 1, 2 -> .25, .25, .5: std = sqrt(.0208) = .1443.
    a = [[2, 0, 2, 0], [0, 0, 0, 0], [4, 4, 4, 4]]
    b = [[1, 1, 1, 1], [1, 1, 1, 1], [2, 2, 2, 2]]
    std_a, std_b, low, high = pk.spread_difference(a, b, 4)
    assert std_a == pytest.approx((0.8125 / 3) ** 0.5) and std_b == pytest.approx((0.0625 / 3) ** 0.5)
    assert low <= std_a - std_b <= high
    # the seeds are resampled: with three seeds a resample repeats one seed 3 times in 1 of 9 draws (std 0),
    # so the interval reaches down to 0 - std_b's resamples, below 0: three seeds cannot show a spread
    assert low < 0 < high
    with pytest.raises(ValueError, match="same problems"):
        pk.spread_difference(a, [[1, 1], [1, 1]], 4)


def test_seed_contrast_by_hand():
    # one seed a side: the paired bootstrap over problems, exactly
    a, b = np.array([[4, 0, 2, 2]]), np.array([[2, 0, 2, 0]])
    assert pk.seed_contrast(a, b, 4, 4, 1) == pk.paired_bootstrap_diff(a[0], b[0], 4, 4, 1)
    # two paired seeds, A = B + 1 correct on every problem: the difference is 1/4 in every resample
    b2 = np.array([[1, 0, 2, 1], [3, 1, 0, 2]])
    d, low, high = pk.seed_contrast(b2 + 1, b2, 4, 4, 1, paired_seeds=True, n_boot=500)
    assert d == pytest.approx(0.25) and low == pytest.approx(0.25) and high == pytest.approx(0.25)
    # unpaired, the seeds' own spread (here: seed means .25 and .375) widens the interval
    d, low, high = pk.seed_contrast(b2 + 1, b2, 4, 4, 1, paired_seeds=False, n_boot=500)
    assert d == pytest.approx(0.25) and low < 0.25 < high
    with pytest.raises(ValueError, match="as many seeds"):
        pk.seed_contrast(b2, b, 4, 4, 1, paired_seeds=True)


def test_spearman_permutation_is_exact():
    rho, p = pk.spearman_permutation([1, 2, 3, 4], [10, 20, 30, 40])
    assert rho == pytest.approx(1.0) and p == pytest.approx(1 / 24)  # one ordering of 4! is as high
    rho, p = pk.spearman_permutation([1, 2, 3, 4], [40, 30, 20, 10])
    assert rho == pytest.approx(-1.0) and p == pytest.approx(1.0)
    assert np.isnan(pk.spearman_permutation([1, 1, 1], [1, 2, 3])[0])
    with pytest.raises(ValueError, match="3..8"):
        pk.spearman_permutation([1, 2], [1, 2])


def test_mean_ci_of_per_item_values():
    mean, low, high = pk.mean_ci([0.0, 1.0, 2.0, 3.0, 4.0])
    assert mean == 2.0 and low < 2.0 < high
    assert pk.mean_ci([0.5, 0.5]) == (0.5, 0.5, 0.5)
