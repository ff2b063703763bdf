"""rlearly.results.plots: each figure draws exactly the table's numbers, in the fixed method colours, and bad input
fails with a message naming what is missing. Small hand-built tables, Agg backend, no file I/O."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

from rlearly.results import plots  # noqa: E402
from rlearly.results.plots import METHOD_COLORS  # noqa: E402

PARENTS = [1_000_000, 4_000_000]
KS = [1, 2, 4, 8]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def value(method, pt, k, seed=0):
    """Hand-picked pass@k: base rises slowly with k, branches start 0.2 higher; the later checkpoint is better."""
    base = 0.05 + 0.1 * np.log2(k) + (0.05 if pt == PARENTS[1] else 0.0)
    return round(base + (0.2 if method != "base" else 0.0) + 0.02 * seed, 6)


def make_passk(methods=("base", "rl"), seeds=(0,), split="test", ks=KS):
    rows = []
    for m in methods:
        for pt in PARENTS:
            for s in seeds:
                for k in ks:
                    p = value(m, pt, k, s)
                    rows.append(dict(checkpoint_id=f"{m}-{pt}-{s}", method=m, parent_tokens=pt, seed=s, split=split,
                                     prompt_mode="fewshot" if m == "base" else "zeroshot", n=8, k=k, pass_at_k=p,
                                     ci_low=p - 0.05 - 0.01 * s, ci_high=p + 0.05 + 0.01 * s))
    return pd.DataFrame(rows)


def labels(fig):
    return [t.get_text() for t in fig.legends[0].get_texts()]


def colors(ax):
    return [to_hex(line.get_color()) for line in ax.get_lines()]


# ---------------------------------------------------------------- palette

def test_every_method_has_its_own_colour_and_unknown_methods_are_stable():
    methods = ["base", "rl", "sft", "sft_gold", "sft_rl", "sft_gold_rl", "parallel", "combined", "interleaved"]
    assert list(METHOD_COLORS) == methods
    assert len(set(METHOD_COLORS.values())) == len(methods)
    assert plots.method_color("rl") == METHOD_COLORS["rl"]
    assert plots.method_color("my_recipe") == plots.method_color("my_recipe")
    assert plots.fmt_tokens(4_200_000) == "4.2M" and plots.fmt_tokens(2.1e9) == "2.1B"


# ---------------------------------------------------------------- pass@k curves

def test_passk_curves_one_panel_per_checkpoint_lines_equal_table():
    df = make_passk()
    fig = plots.passk_curves(df)
    axes = fig.axes
    assert len(axes) == 2
    assert axes[0].get_shared_y_axes().joined(axes[0], axes[1])
    for ax, pt in zip(axes, PARENTS):
        lines = ax.get_lines()
        assert len(lines) == 2
        assert ax.get_xscale() == "log" and ax.xaxis.get_transform().base == 2
        for line, m in zip(lines, ["base", "rl"]):
            assert list(line.get_xdata()) == KS
            np.testing.assert_allclose(line.get_ydata(), [value(m, pt, k) for k in KS])
        assert colors(ax) == [METHOD_COLORS["base"], METHOD_COLORS["rl"]]
        assert len(ax.collections) == 2  # one CI band per method
        band = ax.collections[1].get_paths()[0].vertices[:, 1]
        assert band.min() == pytest.approx(value("rl", pt, 1) - 0.05)
        assert band.max() == pytest.approx(value("rl", pt, 8) + 0.05)
    assert labels(fig) == ["base M_t", "RL"]


def test_passk_curves_means_over_seeds_with_ci_envelope():
    fig = plots.passk_curves(make_passk(seeds=(0, 1)), parent_tokens=PARENTS[0])
    (ax,) = fig.axes
    rl = ax.get_lines()[1]
    np.testing.assert_allclose(rl.get_ydata(), [value("rl", PARENTS[0], k) + 0.01 for k in KS])  # mean of +0, +0.02
    band = ax.collections[1].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(value("rl", PARENTS[0], 1) - 0.05)  # seed 0's ci_low
    assert band.max() == pytest.approx(value("rl", PARENTS[0], 8, seed=1) + 0.06)  # seed 1's ci_high


def test_passk_curves_bad_input_names_what_is_missing():
    df = make_passk()
    with pytest.raises(ValueError, match="passk table is empty"):
        plots.passk_curves(df.iloc[:0])
    with pytest.raises(ValueError, match="passk table has no rows for split 'hard'"):
        plots.passk_curves(df, split="hard")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['ci_low'\]"):
        plots.passk_curves(df.drop(columns="ci_low"))
    with pytest.raises(ValueError, match="no rows for parent_tokens 7"):
        plots.passk_curves(df, parent_tokens=7)
    two_modes = pd.concat([df, df[df.method == "base"].assign(prompt_mode="zeroshot")])
    with pytest.raises(ValueError, match=r"several rows.*prompt_mode"):
        plots.passk_curves(two_modes)


def test_legend_keeps_palette_order_when_first_panel_lacks_a_method():
    df = make_passk(methods=("base", "rl", "sft_rl", "parallel"))
    df = df[~((df.method == "sft_rl") & (df.parent_tokens == PARENTS[0]))]  # no SFT→RL at the first checkpoint
    fig = plots.passk_curves(df)
    assert [len(ax.get_lines()) for ax in fig.axes] == [3, 4]
    assert labels(fig) == ["base M_t", "RL", "SFT→RL", "parallel"]


def test_passk_curves_with_every_k_line_marks_only_the_evaluated_ks():
    df = make_passk()
    every = pd.DataFrame([dict(method=m, parent_tokens=pt, split="test", seed=0, k=k,
                               pass_at_k=value(m, pt, 1) + 0.01 * (k - 1))
                          for m in ("base", "rl") for pt in PARENTS for k in range(1, 9)])
    fig = plots.passk_curves(df, curve=every, parent_tokens=PARENTS[0])
    (ax,) = fig.axes
    rl = ax.get_lines()[1]
    assert list(rl.get_xdata()) == list(range(1, 9))  # the line runs through every k
    np.testing.assert_allclose(rl.get_ydata(), [value("rl", PARENTS[0], 1) + 0.01 * (k - 1) for k in range(1, 9)])
    assert rl.get_markevery() == [0, 1, 3, 7]  # markers at k = 1, 2, 4, 8


def test_difficulty_lines_and_wide_table_average_runs_and_seeds():
    from rlearly.results.tables import difficulty_wide

    rows = [dict(method=m, parent_tokens=pt, split="test", n_ops=n, k=1, seed=s,
                 pass_at_k=(0.5 if m == "rl" else 0.3) / n + 0.02 * s)
            for m in ("base", "rl") for pt in PARENTS for n in (1, 2, 3) for s in (0, 1)]
    df = pd.DataFrame(rows)
    fig = plots.difficulty_lines(df, ks=(1,))
    (ax,) = fig.axes
    base, rl = ax.get_lines()
    assert list(rl.get_xdata()) == [1, 2, 3]
    np.testing.assert_allclose(rl.get_ydata(), [0.5 / n + 0.01 for n in (1, 2, 3)])  # mean of seeds 0 and 1
    wide = difficulty_wide(df, PARENTS[1])
    assert list(wide.index) == ["base", "rl"] and list(wide.columns) == [1, 2, 3]
    np.testing.assert_allclose(wide.loc["base"].to_numpy(), [0.3 / n + 0.01 for n in (1, 2, 3)])
    with pytest.raises(ValueError, match="difficulty"):
        plots.difficulty_lines(df.drop(columns="n_ops"))


def test_checkpoint_sweep_panel_per_k_log_tokens_axis():
    fig = plots.checkpoint_sweep(make_passk(), ks=(1, 8))
    assert [ax.get_title() for ax in fig.axes] == ["pass@1", "pass@8"]
    for ax, k in zip(fig.axes, (1, 8)):
        assert ax.get_xscale() == "log"
        lines = ax.get_lines()
        assert len(lines) == 2 and colors(ax) == [METHOD_COLORS["base"], METHOD_COLORS["rl"]]
        for line, m in zip(lines, ["base", "rl"]):
            assert list(line.get_xdata()) == PARENTS
            np.testing.assert_allclose(line.get_ydata(), [value(m, pt, k) for pt in PARENTS])
        segs = ax.collections[1].get_segments()  # rl's error bars span ci_low..ci_high
        np.testing.assert_allclose([s[:, 1] for s in segs], [[value("rl", pt, k) - 0.05, value("rl", pt, k) + 0.05]
                                                              for pt in PARENTS])
    assert labels(fig) == ["base M_t", "RL"]
    with pytest.raises(ValueError, match="no rows for k 32"):
        plots.checkpoint_sweep(make_passk(), ks=(1, 32))


def test_delta_vs_base_bars_are_branch_minus_base_at_same_checkpoint():
    df = make_passk(methods=("base", "rl", "sft_rl"))
    sharpened = (df.method == "sft_rl") & (df.k == 8)
    df.loc[sharpened, "pass_at_k"] -= 0.5  # sft_rl: pass@8 falls below base
    fig = plots.delta_vs_base(df)
    assert [ax.get_title() for ax in fig.axes] == ["Δpass@1", "Δpass@8"]  # k_large defaults to the largest k
    d1, dk = fig.axes
    assert [c.get_label() for c in d1.containers] == ["RL", "SFT→RL"]
    np.testing.assert_allclose([p.get_height() for p in d1.containers[0]], [0.2, 0.2])
    np.testing.assert_allclose([p.get_height() for p in dk.containers[1]], [-0.3, -0.3])
    assert [to_hex(c[0].get_facecolor()) for c in dk.containers] == [METHOD_COLORS["rl"], METHOD_COLORS["sft_rl"]]
    assert [t.get_text() for t in dk.get_xticklabels()] == ["1M", "4M"]
    assert list(dk.get_lines()[0].get_ydata()) == [0, 0]  # zero line
    with pytest.raises(ValueError, match="no 'base' rows"):
        plots.delta_vs_base(df[df.method != "base"])
    orphan = df[~((df.method == "base") & (df.parent_tokens == PARENTS[0]))]
    with pytest.warns(UserWarning, match=r"no base rows at parent_tokens \[1000000\]"):
        fig = plots.delta_vs_base(orphan)
    assert [len(c) for c in fig.axes[0].containers] == [1, 1]  # only the checkpoint with a base is left


def test_coverage_bars_stack_four_sets_per_checkpoint():
    cov = pd.DataFrame([dict(method=m, parent_tokens=pt, start_only=1, branch_only=3 if m == "rl" else 0, both=4,
                             neither=2) for m in ("rl", "sft") for pt in PARENTS])
    fig = plots.coverage_bars(cov)
    assert [ax.get_title() for ax in fig.axes] == ["RL", "SFT"]
    rl = fig.axes[0]
    assert len(rl.containers) == 4
    heights = np.array([[p.get_height() for p in c] for c in rl.containers])  # (set, checkpoint)
    np.testing.assert_allclose(heights[:, 0], [0.4, 0.3, 0.1, 0.2])  # both, branch only, start only, neither
    np.testing.assert_allclose(heights.sum(axis=0), [1.0, 1.0])
    assert labels(fig) == ["both", "branch only", "start only", "neither"]
    with pytest.raises(ValueError, match=r"coverage table lacks column\(s\) \['neither'\]"):
        plots.coverage_bars(cov.drop(columns="neither"))


def make_general(metric="probe_acc"):
    vals = {("base", PARENTS[0]): 0.40, ("base", PARENTS[1]): 0.50, ("rl", PARENTS[0]): 0.41,
            ("rl", PARENTS[1]): 0.50, ("sft", PARENTS[0]): 0.33, ("sft", PARENTS[1]): 0.44}
    return pd.DataFrame([dict(checkpoint_id=f"{m}-{pt}", method=m, parent_tokens=pt, seed=0, metric=metric, value=v)
                         for (m, pt), v in vals.items()])


def test_general_deltas_bars_and_zero_line():
    fig = plots.general_deltas(make_general())
    (ax,) = fig.axes
    assert [c.get_label() for c in ax.containers] == ["RL", "SFT"]
    np.testing.assert_allclose([p.get_height() for p in ax.containers[0]], [0.01, 0.0], atol=1e-12)
    np.testing.assert_allclose([p.get_height() for p in ax.containers[1]], [-0.07, -0.06])
    assert ax.get_lines()[0].get_ydata()[0] == 0
    assert "higher is better" in ax.get_ylabel()
    nll = plots.general_deltas(make_general("heldout_nll"), metric="heldout_nll")
    assert "lower is better" in nll.axes[0].get_ylabel()
    with pytest.raises(ValueError, match="general table has no rows for metric 'probe_acc_norm'"):
        plots.general_deltas(make_general(), metric="probe_acc_norm")
    assert not ax.texts  # a plot with bars needs no note


def test_general_deltas_says_why_nothing_is_drawn():
    """Saturated probes (every checkpoint at 1.000) give all-zero deltas: the plot says so instead of being empty."""
    fig = plots.general_deltas(make_general().assign(value=1.0))
    assert [t.get_text() for t in fig.axes[0].texts] == ["every branch equals its base (base probe_acc: 1.000)"]


def test_training_curves_mean_over_seeds_and_skip_nan():
    rows = [dict(method=m, parent_tokens=pt, seed=s, step=step, reward_mean=0.1 * step + s * 0.2 + (m == "rl"),
                 **{"val_pass@8": np.nan if step % 2 else 0.5})
            for m in ("rl", "parallel") for pt in PARENTS for s in (0, 1) for step in range(4)]
    bm = pd.DataFrame(rows)
    fig = plots.training_curves(bm)
    assert len(fig.axes) == 2
    for ax in fig.axes:
        assert len(ax.get_lines()) == 2 and colors(ax) == [METHOD_COLORS["rl"], METHOD_COLORS["parallel"]]
        np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [1.1 + 0.1 * s for s in range(4)])
        assert len(ax.collections) == 2  # seed bands
    assert labels(fig) == ["RL", "parallel"]
    val = plots.training_curves(bm, y="val_pass@8")
    assert list(val.axes[0].get_lines()[0].get_xdata()) == [0, 2]
    with pytest.raises(ValueError, match="'sft_loss'"):
        plots.training_curves(bm, y="sft_loss")
    with pytest.raises(ValueError, match="all NaN"):
        plots.training_curves(bm.assign(reward_mean=np.nan))


def test_pretraining_curves_losses_left_greedy_right():
    tokens = [0, 1000, 2000, 3000, 4000]
    pm = pd.DataFrame(dict(step=range(5), tokens=tokens, loss=[5, 4, 3, 2.5, 2.2],
                           heldout_math=[5.1, np.nan, 3.1, np.nan, 2.4],
                           heldout_general=[5.2, np.nan, 3.3, np.nan, 2.6],
                           greedy_0shot_answer=[0.0, np.nan, 0.1, np.nan, 0.3]))
    fig = plots.pretraining_curves(pm)
    left, right = fig.axes
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["loss", "heldout_math", "heldout_general"]
    assert list(left.get_lines()[1].get_xdata()) == [0, 2000, 4000]
    np.testing.assert_allclose(right.get_lines()[0].get_ydata(), [0.0, 0.1, 0.3])
    assert len(right.get_lines()) == 1
    with pytest.raises(ValueError, match="no values for loss"):
        plots.pretraining_curves(pm[["step", "tokens"]])


def test_pretraining_curves_draw_each_run_apart_and_last_values_say_which_run():
    """Two pretraining runs (a study's replica): one line per run and metric, never one zig-zag line through both;
    the headline numbers are the main run's, with the runs' mean and spread beside them."""
    from rlearly.results.tables import last_values

    pm = pd.concat([pd.DataFrame(dict(pretrain_seed=p, tokens=[1000, 2000, 3000], loss=[5 - p, 4 - p, 3 - p],
                                      greedy_0shot=[0.1, 0.2, 0.3 + p / 10])) for p in (0, 1)], ignore_index=True)
    pm = pm.sample(frac=1, random_state=0)  # rows in any order, as tables concatenate runs
    fig = plots.pretraining_curves(pm)
    left, right = fig.axes
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["loss, run 0", "loss, run 1"]
    for line, want in zip(left.get_lines(), ([5, 4, 3], [4, 3, 2])):
        assert list(line.get_xdata()) == [1000, 2000, 3000] and list(line.get_ydata()) == want
    assert left.get_lines()[0].get_linestyle() != left.get_lines()[1].get_linestyle()
    assert "2 runs" in fig._suptitle.get_text()
    last = last_values(pm, ["tokens", "loss", "greedy_0shot"])
    assert last["loss"] == 3 and last["runs"] == 2  # the main run's (seed 0), not whichever sorts last
    assert last["loss.runs_mean"] == pytest.approx(2.5) and last["loss.runs_sd"] == pytest.approx(2 ** -0.5)
    assert last["greedy_0shot"] == pytest.approx(0.3) and "tokens.runs_mean" not in last


def test_readiness_scatter_one_labelled_point_per_checkpoint():
    pts = pd.DataFrame(dict(parent_tokens=[PARENTS[0], PARENTS[0], PARENTS[1]], base_train_passk=[0.1, 0.1, 0.4],
                            rl_delta_pass1=[-0.02, 0.04, 0.2], seed=[0, 1, 0]))
    fig = plots.readiness_scatter(pts)
    (ax,) = fig.axes
    pts_line = ax.get_lines()[0]
    np.testing.assert_allclose(pts_line.get_xdata(), [0.1, 0.4])
    np.testing.assert_allclose(pts_line.get_ydata(), [0.01, 0.2])
    assert to_hex(pts_line.get_color()) == METHOD_COLORS["rl"]
    assert [t.get_text() for t in ax.texts] == ["1M", "4M"]
    assert list(ax.get_lines()[1].get_ydata()) == [0, 0]  # y = 0 line
    # checkpoints drawn on top of each other (no RL gain, no base solves) share one label
    zeros = pd.DataFrame(dict(parent_tokens=[999_424, 2_000_896, 3_000_320, 10_000_384], seed=0,
                              base_train_passk=[0.0, 0.0, 0.001, 0.7], rl_delta_pass1=[0.0, 0.0, 0.0005, 0.2]))
    assert [t.get_text() for t in plots.readiness_scatter(zeros).axes[0].texts] == ["999k, 2M, 3M", "10M"]
    with pytest.raises(ValueError, match="rl_delta_pass1"):
        plots.readiness_scatter(pts.drop(columns="rl_delta_pass1"))


def test_solve_rate_scatter_points_and_diagonal():
    start = pd.Series([0.0, 0.25, 0.5, 1.0], index=["p1", "p2", "p3", "p4"])
    branch = pd.Series([0.5, 0.25, 0.75], index=["p3", "p2", "p1"])  # aligned by problem id, p4 dropped
    fig = plots.solve_rate_scatter(start, branch, method="sft")
    (ax,) = fig.axes
    np.testing.assert_allclose(ax.collections[0].get_offsets(), [[0.0, 0.75], [0.25, 0.25], [0.5, 0.5]])
    assert to_hex(ax.collections[0].get_facecolor()[0]) == METHOD_COLORS["sft"]
    assert list(ax.get_lines()[0].get_xdata()) == [0, 1] and list(ax.get_lines()[0].get_ydata()) == [0, 1]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["problems (3)", "unchanged (y = x)"]
    with pytest.raises(ValueError, match="start_rates is empty"):
        plots.solve_rate_scatter([], [])
    with pytest.raises(ValueError, match="not counts"):
        plots.solve_rate_scatter([3, 5], [0.1, 0.2])
    with pytest.raises(ValueError, match="different problems"):
        plots.solve_rate_scatter([0.1, 0.2], [0.1])


def test_pass_at_k_axes_fit_zero_to_one():
    """An all-zero study draws its lines at the bottom of [0, 0.05], not centred in [-0.04, 0.04]; real
    values keep their top (CI bands included) and never pass 1.02."""
    zero = make_passk().assign(pass_at_k=0.0, ci_low=0.0, ci_high=0.0)
    for fig in (plots.passk_curves(zero), plots.checkpoint_sweep(zero, ks=(1, 8))):
        assert all(ax.get_ylim() == (0.0, 0.05) for ax in fig.axes if ax.get_lines())
    high = make_passk()
    for fig in (plots.passk_curves(high), plots.checkpoint_sweep(high, ks=(1, 8))):
        lo, hi = fig.axes[0].get_ylim()
        assert lo == 0.0 and high["ci_high"].max() <= hi <= 1.02
