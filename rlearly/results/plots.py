"""Figures for the notebooks and the report (docs/DESIGN.md §5 `plots.py`, docs/PAPER.md §1 figures 1–6).

Owns: every figure a notebook shows, drawn from the study runner's tidy tables (`passk`, `general`,
`pretrain_metrics`, `branch_metrics`, small coverage / readiness / solve-rate tables), and the one colour
per method (`METHOD_COLORS`) that makes every figure agree. Each function takes DataFrames plus options
and returns a pyplot-managed Figure (close it with `plt.close(fig)`); nothing here reads or writes files
(the caller saves) or picks a backend. Bad input (empty table, missing column, no rows for the asked
split/k/metric) raises ValueError naming what is missing.

Only two views of the tables are computed here; pass@k, CIs and coverage come from `rlearly.evaluation.passk`:
  - seeds: a line/bar is the **mean over seeds**; its band or error bar spans the **lowest `ci_low` to the
    highest `ci_high`** across seeds (an envelope of per-seed CIs, not a CI of the mean); tables without
    CIs (training curves, readiness) show the seed min..max instead;
  - deltas: branch − base at the same `parent_tokens`, each side averaged over seeds first (paired CIs of
    a delta come from `rlearly.evaluation.passk.compare`).
"""
from __future__ import annotations

import functools
import math
import warnings
import zlib

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import ticker

from rlearly.train import RECIPES, method_order

# one colour per method, seaborn "colorblind" hues, from the recipe registry; base is neutral grey
# (docs/PAPER.md §1 figures: base vs recipes)
METHOD_COLORS = {"base": "#555555", **{r.name: r.colour for r in RECIPES.values()}}
METHOD_LABELS = {"base": "base M_t", **{r.name: r.label for r in RECIPES.values()}}
_FALLBACK_COLORS = ("#fbafe4", "#ece133", "#949494", "#8c564b", "#17becf")
COVERAGE_COLORS = {"both": "#8da0cb", "branch_only": "#1b9e77", "start_only": "#e7298a", "neither": "#dddddd"}
_PASSK_COLS = ["method", "parent_tokens", "seed", "split", "k", "pass_at_k", "ci_low", "ci_high"]


def method_color(method: str) -> str:
    """The method's fixed colour (a recipe registered after import included); an unknown method gets a stable
    (name-hashed) fallback."""
    if method in RECIPES:
        return RECIPES[method].colour
    return METHOD_COLORS.get(method) or _FALLBACK_COLORS[zlib.crc32(method.encode()) % len(_FALLBACK_COLORS)]


def method_label(method: str) -> str:
    return RECIPES[method].label if method in RECIPES else METHOD_LABELS.get(method, method)


def fmt_tokens(tokens) -> str:
    """4200000 -> '4.2M', 2.1e9 -> '2.1B'."""
    t = float(tokens)
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(t) >= div:
            return f"{t / div:.3g}{suffix}"
    return f"{t:.3g}"


# ---------------------------------------------------------------- helpers

def _styled(fn):
    """Draw inside seaborn's whitegrid style without touching the caller's global rcParams."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.85):
            return fn(*args, **kwargs)
    return wrapper


def _require(df, name: str, cols) -> pd.DataFrame:
    if df is None or len(df) == 0:
        raise ValueError(f"{name} table is empty")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{name} table lacks column(s) {missing}; it has {list(df.columns)}")
    return df


def _select(df: pd.DataFrame, name: str, **where) -> pd.DataFrame:
    """Rows whose column equals the value (or is in the list); an empty result is an error naming it."""
    for col, want in where.items():
        if want is None:
            continue
        wants = list(want) if isinstance(want, (list, tuple, set, np.ndarray)) else [want]
        sub = df[df[col].isin(wants)]
        if sub.empty:
            have = sorted(df[col].dropna().unique().tolist())
            shown = repr(wants[0]) if len(wants) == 1 else repr(wants)
            raise ValueError(f"{name} table has no rows for {col} {shown} (it has {have})")
        df = sub
    return df


def _units(df: pd.DataFrame) -> list[str]:
    """The columns naming one unit of trained weights (its pretraining run, where the table has several)."""
    return ["pretrain_seed", "seed"] if "pretrain_seed" in df else ["seed"]


def _check_unique(df: pd.DataFrame, name: str, keys: list[str], id_cols=("checkpoint_id", "prompt_mode", "n")):
    dup = df[df.duplicated(keys, keep=False)]
    if len(dup):
        varying = [c for c in id_cols if c in dup and dup.groupby(keys)[c].nunique(dropna=False).max() > 1]
        why = f"differing in {varying}; filter the table to one of each first" if varying else "exact duplicates"
        raise ValueError(f"{name} table has several rows per {keys} ({why})")


def _passk_table(passk, split: str, **where) -> pd.DataFrame:
    """One row per (method, parent_tokens, k): mean pass@k over seeds, CI envelope over seeds."""
    df = _select(_require(passk, "passk", _PASSK_COLS), "passk", split=split, **where)
    _check_unique(df, f"passk (split {split!r})", ["method", "parent_tokens", *_units(df), "k"])
    return df.groupby(["method", "parent_tokens", "k"], as_index=False).agg(
        pass_at_k=("pass_at_k", "mean"), ci_low=("ci_low", "min"), ci_high=("ci_high", "max"))


def _minus_base(df: pd.DataFrame, value: str, name: str) -> pd.DataFrame:
    """Branch rows with `delta` = value − base value at the same parent_tokens (one row per method, parent)."""
    base = df[df["method"] == "base"].set_index("parent_tokens")[value]
    if base.empty:
        raise ValueError(f"{name} table has no 'base' rows to take deltas against")
    branches = df[df["method"] != "base"]
    orphans = sorted(set(branches["parent_tokens"]) - set(base.index))
    if orphans:
        warnings.warn(f"{name}: no base rows at parent_tokens {orphans}; their branches are left out")
    branches = branches[branches["parent_tokens"].isin(base.index)]
    if branches.empty:
        raise ValueError(f"{name} table has no branch rows with a base at the same parent_tokens")
    return branches.assign(delta=branches[value].to_numpy() - base.loc[branches["parent_tokens"]].to_numpy())


def _panels(n: int, *, sharex=False, sharey=True, width=3.8, height=3.0, max_cols=4):
    ncols = min(n, max_cols)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols + 1.5, height * nrows), sharex=sharex,
                             sharey=sharey, squeeze=False, layout="constrained")
    axes = list(axes.flat)
    for ax in axes[n:]:  # the unused tail of the last row
        ax.remove()
    return fig, axes[:n]


def _ylabel(axes, text: str):
    for ax in axes:
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel(text)


def _rate_axis(axes):
    """A rate's y axis (pass@k, accuracy) inside [0, 1]: from 0 to a little above the highest drawn value, at
    least 0.05 (so an all-zero study shows a flat line at the bottom, not one centred in [-0.04, 0.04])."""
    axes = list(np.ravel(axes))
    top = _rate_top(max((ax.dataLim.y1 for ax in axes if ax.has_data()), default=0.0))
    for ax in axes:
        ax.set_ylim(0, top)


def _rate_top(highest: float, margin: float = 1.05) -> float:
    """The upper limit of a rate's axis: a little above the highest value, at least 0.05, at most 1.02."""
    return min(1.02, max(0.05, margin * highest))


def _fig_legend(fig, axes, title="method", by_method=True):
    """One figure legend with every label met in any panel (a method absent from panel 1 still shows)."""
    handles = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    if by_method:  # the palette's order, whichever panel a method first appears in
        rank = {method_label(m): i for i, m in enumerate(method_order())}
        handles = dict(sorted(handles.items(), key=lambda kv: rank.get(kv[0], len(rank))))
    # centred on the right edge: at the upper corner it collides with a suptitle on a narrow figure
    fig.legend(list(handles.values()), list(handles), loc="outside right center", title=title, frameon=False)


def _token_axis(ax, values):
    ax.set_xscale("log")
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    ax.set_xticks(sorted(set(values)), [fmt_tokens(v) for v in sorted(set(values))])
    ax.set_xlabel("pretraining tokens of M_t")


def _grouped_bars(ax, d: pd.DataFrame, value: str):
    """Bars of `value`, groups on x = parent_tokens, one bar (and BarContainer) per method, zero line."""
    parents = sorted(d["parent_tokens"].unique())
    methods = method_order(d["method"].unique())
    width = 0.8 / len(methods)
    pos = {p: i for i, p in enumerate(parents)}
    for j, m in enumerate(methods):
        dm = d[d["method"] == m].sort_values("parent_tokens")
        xs = [pos[p] + (j - (len(methods) - 1) / 2) * width for p in dm["parent_tokens"]]
        ax.bar(xs, dm[value], width=width, color=method_color(m), label=method_label(m))
    ax.axhline(0.0, color="0.2", lw=0.8)
    ax.set_xticks(range(len(parents)), [fmt_tokens(p) for p in parents])
    ax.set_xlabel("pretraining tokens of M_t")


# ---------------------------------------------------------------- pass@k

FLOOR_STYLE = dict(color="0.45", ls="--", lw=1.2, label="guessing floor")


def _floor_by_k(floor: pd.DataFrame | None, split: str) -> pd.Series | None:
    """The best adversary's exact pass@k per k on `split` (rlearly.evaluation.adversaries), or None without a table."""
    if floor is None or floor.empty or split not in set(floor["split"]):
        return None
    return floor[floor["split"] == split].groupby("k")["pass_at_k"].max().sort_index()


@_styled
def passk_curves(passk: pd.DataFrame, parent_tokens=None, split: str = "test", floor: pd.DataFrame | None = None,
                 curve: pd.DataFrame | None = None):
    """pass@k vs k (log2 x), one line per method with its CI band, one panel per parent_tokens (shared y):
    PAPER figures 1–3. `parent_tokens`: None (all), one value or a list. Seeds: mean line, CI envelope.
    `floor`: the study's floor table; its best adversary's pass@k is drawn dashed in every panel. `curve`: the
    study's passk_curve table (pass@k at every k of 1..n): the line runs through every k, the markers and bands stay
    at the evaluated ks."""
    df = _passk_table(passk, split, parent_tokens=parent_tokens)
    every = None
    if curve is not None and len(curve):
        every = curve[curve["split"] == split].groupby(["method", "parent_tokens", "k"], as_index=False)[
            "pass_at_k"].mean()
    parents = sorted(df["parent_tokens"].unique())
    fig, axes = _panels(len(parents))
    fl = _floor_by_k(floor, split)
    for ax, pt in zip(axes, parents):
        sub = df[df["parent_tokens"] == pt]
        for m in method_order(sub["method"].unique()):
            d = sub[sub["method"] == m].sort_values("k")
            line = d if every is None else every[(every["method"] == m) & (every["parent_tokens"] == pt)]
            evaluated = set(d["k"])
            marks = [i for i, k in enumerate(line["k"]) if k in evaluated]  # markers at the evaluated ks only
            ax.plot(line["k"], line["pass_at_k"], marker="o", ms=3, markevery=marks, color=method_color(m),
                    label=method_label(m))
            ax.fill_between(d["k"], d["ci_low"], d["ci_high"], color=method_color(m), alpha=0.15, lw=0)
        if fl is not None:
            ax.plot(fl.index, fl.to_numpy(), **FLOOR_STYLE)
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set(title=f"M_t at {fmt_tokens(pt)} tokens", xlabel="k")
    _ylabel(axes, f"pass@k ({split})")
    _rate_axis(axes)
    fig.suptitle(f"pass@k vs k, split '{split}' (band: CI, envelope over seeds)")
    _fig_legend(fig, axes)
    return fig


@_styled
def difficulty_lines(difficulty: pd.DataFrame, ks=(1,), parent_tokens=None, split: str = "test"):
    """pass@k against the problems' operation count (the world's difficulty), one line per method (mean over its
    runs and seeds), one panel per k, at one checkpoint (default the last)."""
    df = _select(_require(difficulty, "difficulty", ["method", "parent_tokens", "split", "n_ops", "k", "pass_at_k"]),
                 "difficulty", split=split, k=list(ks))
    pt = df["parent_tokens"].max() if parent_tokens is None else parent_tokens
    df = _select(df, "difficulty", parent_tokens=pt)
    fig, axes = _panels(len(ks), width=4.2)
    for ax, k in zip(axes, ks):
        sub = df[df["k"] == k].groupby(["method", "n_ops"], as_index=False)["pass_at_k"].mean()
        for m in method_order(sub["method"].unique()):
            d = sub[sub["method"] == m]
            ax.plot(d["n_ops"], d["pass_at_k"], marker="o", ms=3, color=method_color(m), label=method_label(m))
        ax.set(title=f"pass@{k}", xlabel="operations in the problem")
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    _ylabel(axes, f"pass@k ({split})")
    _rate_axis(axes)
    fig.suptitle(f"by difficulty at {fmt_tokens(pt)} tokens, split '{split}' (mean over runs and seeds)")
    _fig_legend(fig, axes)
    return fig


@_styled
def checkpoint_sweep(passk: pd.DataFrame, ks=(1, 8, 32), split: str = "test", floor: pd.DataFrame | None = None):
    """pass@k vs the start checkpoint's pretraining tokens (log x): one panel per k, one line per method
    with CI error bars — "when does RL start working" (docs/PAPER.md §1a, headline finding 1). `floor`: the best
    adversary's pass@k, dashed."""
    df = _passk_table(passk, split)
    fl = _floor_by_k(floor, split)
    for k in ks:
        _select(df, f"passk (split {split!r})", k=k)
    fig, axes = _panels(len(ks), sharex=True)
    for ax, k in zip(axes, ks):
        sub = df[df["k"] == k]
        for m in method_order(sub["method"].unique()):
            d = sub[sub["method"] == m].sort_values("parent_tokens")
            y = d["pass_at_k"].to_numpy(float)
            yerr = np.clip([y - d["ci_low"].to_numpy(float), d["ci_high"].to_numpy(float) - y], 0, None)
            ax.errorbar(d["parent_tokens"], y, yerr=yerr, marker="o", ms=4, capsize=0, color=method_color(m),
                        label=method_label(m))
        if fl is not None and k in fl.index:
            ax.axhline(fl[k], **FLOOR_STYLE)
        _token_axis(ax, df["parent_tokens"])
        ax.set_title(f"pass@{k}")
    _ylabel(axes, f"pass@k ({split})")
    _rate_axis(axes)
    fig.suptitle(f"pass@k across pretraining checkpoints, split '{split}' (bars: CI, envelope over seeds)")
    _fig_legend(fig, axes)
    return fig


@_styled
def delta_vs_base(passk: pd.DataFrame, k_small: int = 1, k_large: int | None = None, split: str = "test"):
    """Δpass@k_small and Δpass@k_large (default: the largest k every method has) of each method against
    base at the same parent_tokens. Expansion: both up; sharpening: k_small up, k_large down (docs/PAPER.md §4)."""
    df = _passk_table(passk, split)
    if k_large is None:  # the largest k that every (method, parent_tokens) has
        k_large = max(set.intersection(*df.groupby(["method", "parent_tokens"])["k"].apply(set)), default=None)
        if k_large is None:
            raise ValueError("passk table has no k shared by every (method, parent_tokens); pass k_large")
    fig, axes = _panels(2, width=4.5)
    for ax, k in zip(axes, (k_small, k_large)):
        sub = _select(df, f"passk (split {split!r})", k=k)
        _grouped_bars(ax, _minus_base(sub, "pass_at_k", "passk"), "delta")
        ax.set_title(f"Δpass@{k}")
    _ylabel(axes, "branch − base")
    fig.suptitle(f"Δ against base ('{split}'): expansion = both up; sharpening = pass@{k_large} down")
    _fig_legend(fig, axes)
    return fig


@_styled
def coverage_bars(coverage: pd.DataFrame, normalize: bool = True):
    """Stacked coverage sets (solved by both / branch only / start only / neither), one panel per method,
    x = parent_tokens. Several seeds: mean counts. `normalize` shows fractions of problems."""
    cats = list(COVERAGE_COLORS)
    _require(coverage, "coverage", ["method", "parent_tokens", *cats])
    df = coverage.groupby(["method", "parent_tokens"], as_index=False)[cats].mean()
    if normalize:
        df[cats] = df[cats].div(df[cats].sum(axis=1).replace(0, np.nan), axis=0)
    methods = method_order(df["method"].unique())
    fig, axes = _panels(len(methods))
    for ax, m in zip(axes, methods):
        d = df[df["method"] == m].sort_values("parent_tokens")
        x = np.arange(len(d))
        bottom = np.zeros(len(d))
        for cat in cats:
            ax.bar(x, d[cat], bottom=bottom, color=COVERAGE_COLORS[cat], label=cat.replace("_", " "), width=0.7)
            bottom += d[cat].fillna(0).to_numpy()
        ax.set_xticks(x, [fmt_tokens(p) for p in d["parent_tokens"]])
        ax.set(xlabel="pretraining tokens of M_t")
        ax.set_title(method_label(m), color=method_color(m))
    _ylabel(axes, "fraction of problems" if normalize else "problems")
    fig.suptitle("Coverage: problems solved (≥ 1 correct sample) by start M_t and branch")
    _fig_legend(fig, axes, "solved by", by_method=False)
    return fig


# ---------------------------------------------------------------- general capability and dynamics

@_styled
def general_deltas(general: pd.DataFrame, metric: str = "probe_acc"):
    """branch − base of one general-capability metric at the same parent_tokens, bars per method grouped
    by parent_tokens, zero line (PAPER figure 5 analogue: RL ≈ 0, SFT-family below)."""
    df = _select(_require(general, "general", ["method", "parent_tokens", "seed", "metric", "value"]),
                 "general", metric=metric)
    _check_unique(df, f"general (metric {metric!r})", ["method", "parent_tokens", *_units(df)], ("checkpoint_id",))
    df = df.groupby(["method", "parent_tokens"], as_index=False)["value"].mean()
    fig, axes = _panels(1, width=max(5.0, 1.2 * df["parent_tokens"].nunique()), height=3.5)
    deltas = _minus_base(df, "value", "general")
    _grouped_bars(axes[0], deltas, "delta")
    if np.allclose(deltas["delta"].to_numpy(float), 0.0):  # say why the plot is empty (e.g. saturated probes)
        base = df.loc[df["method"] == "base", "value"]
        axes[0].text(0.5, 0.75, f"every branch equals its base (base {metric}: {base.min():.3f}"
                     + (f" to {base.max():.3f}" if base.max() > base.min() else "") + ")",
                     transform=axes[0].transAxes, ha="center", va="center", fontsize=10, color="0.3")
    better = "lower is better" if "nll" in metric else "higher is better"
    axes[0].set_ylabel(f"Δ {metric} (branch − base; {better})")
    axes[0].set_title(f"General capability against base: {metric}")
    _fig_legend(fig, axes)
    return fig


@_styled
def training_curves(branch_metrics: pd.DataFrame, y: str = "reward_mean"):
    """`y` vs post-training step, one line per method (mean over seeds, band = seed min..max), one panel
    per parent_tokens. Rows where `y` is NaN (not logged at that step) are skipped."""
    _require(branch_metrics, "branch_metrics", ["method", "parent_tokens", "step", y])
    df = branch_metrics.dropna(subset=[y])
    if df.empty:
        raise ValueError(f"branch_metrics column {y!r} has no values (all NaN)")
    agg = df.groupby(["method", "parent_tokens", "step"], as_index=False)[y].agg(["mean", "min", "max", "count"])
    parents = sorted(agg["parent_tokens"].unique())
    fig, axes = _panels(len(parents))
    for ax, pt in zip(axes, parents):
        sub = agg[agg["parent_tokens"] == pt]
        for m in method_order(sub["method"].unique()):
            d = sub[sub["method"] == m].sort_values("step")
            ax.plot(d["step"], d["mean"], color=method_color(m), label=method_label(m))
            if (d["count"] > 1).any():
                ax.fill_between(d["step"], d["min"], d["max"], color=method_color(m), alpha=0.15, lw=0)
        ax.set(title=f"from M_t at {fmt_tokens(pt)} tokens", xlabel="step")
    _ylabel(axes, y)
    if y.startswith(("reward", "val_pass@")):  # rates in [0, 1]
        _rate_axis(axes)
    fig.suptitle(f"{y} during post-training (band: spread over seeds)")
    _fig_legend(fig, axes)
    return fig


@_styled
def pretraining_curves(pretrain_metrics: pd.DataFrame, logx: bool = False):
    """Left: training loss and held-out NLLs vs tokens. Right: greedy accuracies (`greedy_*` columns) at
    the checkpoints. Several pretraining runs (`pretrain_seed`): one line per run and metric, the run told by its
    line style and named in the legend (a run's line never joins another's). A run without greedy evaluations gets
    a note in the right panel, not an error."""
    pm = _require(pretrain_metrics, "pretrain_metrics", ["tokens"])
    left = [c for c in ("loss", "heldout_math", "heldout_general") if c in pm and pm[c].notna().any()]
    if not left:
        raise ValueError(f"pretrain_metrics has no values for loss/heldout_math/heldout_general: {list(pm)}")
    greedy = sorted(c for c in pm.columns if c.startswith("greedy_") and pm[c].notna().any())
    runs = sorted(pm["pretrain_seed"].dropna().unique()) if "pretrain_seed" in pm else [None]
    styles = ("-", "--", ":", "-.")
    fig, (ax_l, ax_r) = _panels(2, sharey=False, width=4.5)
    for cols, ax, marker in ((left, ax_l, None), (greedy, ax_r, "o")):
        for color, col in zip(sns.color_palette("deep", max(len(cols), 1)), cols):
            for i, run in enumerate(runs):
                d = pm if run is None else pm[pm["pretrain_seed"] == run]
                d = d[["tokens", col]].dropna().sort_values("tokens")
                name = col if len(runs) == 1 else f"{col}, run {run:g}"
                ax.plot(d["tokens"], d[col], marker=marker, ms=4, color=color, ls=styles[i % len(styles)], label=name)
        if logx:
            ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: fmt_tokens(v)))
        ax.set_xlabel("pretraining tokens")
    if greedy:
        ax_r.legend(title="greedy accuracy", frameon=False)
    else:
        ax_r.text(0.5, 0.5, "no greedy_* evaluations in pretrain_metrics", ha="center", transform=ax_r.transAxes)
    ax_l.legend(frameon=False)
    ax_l.set(title="loss and held-out NLL", ylabel="nats / token")
    ax_r.set(title="greedy accuracy at checkpoints", ylabel="accuracy")
    _rate_axis(ax_r)
    fig.suptitle("Pretraining" + (f" ({len(runs)} runs)" if len(runs) > 1 else ""))
    return fig


# ---------------------------------------------------------------- diagnostics

@_styled
def readiness_scatter(points: pd.DataFrame, x: str = "base_train_passk", y: str = "rl_delta_pass1"):
    """x = base pass@k on the RL training prompts, y = RL Δpass@1 on test; one point per parent_tokens
    (mean over seeds, vertical bar = seed min..max), labelled with its tokens; y = 0 line (docs/PAPER.md §4)."""
    _require(points, "readiness points", ["parent_tokens", x, y])
    agg = points.groupby("parent_tokens", as_index=False).agg(x=(x, "mean"), y=(y, "mean"), lo=(y, "min"),
                                                              hi=(y, "max"))
    fig, (ax,) = _panels(1, width=5.0, height=4.0)
    x_, y_, lo, hi = (agg[c].to_numpy(float) for c in ("x", "y", "lo", "hi"))
    ax.errorbar(x_, y_, yerr=[y_ - lo, hi - y_], fmt="o", capsize=0,
                color=method_color("rl"), label="RL branch (bar: seed range)")
    for (px, py), tokens in _coincident(agg).items():  # one label for points drawn on top of each other
        ax.annotate(", ".join(fmt_tokens(t) for t in tokens), (px, py), textcoords="offset points", xytext=(5, 5))
    ax.axhline(0.0, color="0.2", lw=0.8)
    ax.set(xlabel=f"{x} (base M_t, RL training prompts)", ylabel=f"{y} (RL − base, test)",
           title="Readiness: base solve rate on RL prompts vs RL gain",
           xlim=(0, _rate_top(float(np.nanmax(x_)) if len(x_) else 0.0, margin=1.1)))
    ax.legend(frameon=False)
    return fig


def _coincident(agg: pd.DataFrame, tol: float = 0.02) -> dict[tuple[float, float], list]:
    """Points (x, y, parent_tokens) grouped when within `tol` of the data's range of an earlier one on both axes:
    {(x, y) of the group's first point: its parent_tokens}, so overlapping labels are written once."""
    span_x = max(float(np.ptp(agg["x"])), 1e-9) if len(agg) else 1.0
    span_y = max(float(np.ptp(agg["y"])), 1e-9) if len(agg) else 1.0
    groups: dict[tuple[float, float], list] = {}
    for _, r in agg.sort_values("parent_tokens").iterrows():
        near = [k for k in groups if abs(k[0] - r["x"]) <= tol * span_x and abs(k[1] - r["y"]) <= tol * span_y]
        groups.setdefault(near[0] if near else (float(r["x"]), float(r["y"])), []).append(r["parent_tokens"])
    return groups


def _rates(start_rates, branch_rates) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(start_rates, pd.Series) and isinstance(branch_rates, pd.Series):
        start_rates, branch_rates = start_rates.align(branch_rates, join="inner")  # same problems by id
    a, b = np.asarray(start_rates, float).ravel(), np.asarray(branch_rates, float).ravel()
    for name, v in (("start_rates", a), ("branch_rates", b)):
        if v.size == 0:
            raise ValueError(f"solve_rate_scatter: {name} is empty (or shares no problem ids with the other)")
        if np.nanmin(v) < 0 or np.nanmax(v) > 1:
            raise ValueError(f"solve_rate_scatter: {name} must be rates in [0, 1] (c/n, not counts c)")
    if a.shape != b.shape:
        raise ValueError(f"solve_rate_scatter: start and branch rates cover different problems ({a.size} vs {b.size})")
    return a, b


@_styled
def solve_rate_scatter(start_rates, branch_rates, method: str = "rl"):
    """Per-problem solve rate (c/n) of the start (x) against the branch (y), with the y = x diagonal. Arrays
    in the same problem order, or two Series indexed by problem id (aligned, inner join)."""
    a, b = _rates(start_rates, branch_rates)
    fig, (ax,) = _panels(1, width=4.5, height=4.5)
    ax.scatter(a, b, s=18, alpha=0.5, color=method_color(method), label=f"problems ({a.size})")
    ax.plot([0, 1], [0, 1], ls="--", color="0.3", lw=1, label="unchanged (y = x)")
    ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), aspect="equal", xlabel="solve rate of start M_t",
           ylabel=f"solve rate of {method_label(method)} branch")
    ax.set_title(f"Per-problem solve rate: up {np.mean(b > a):.0%}, down {np.mean(b < a):.0%}")
    ax.legend(frameon=False, loc="upper left")
    return fig


# ---------------------------------------------------------------- side experiments (arms)

def _arm_label(arm: str) -> str:
    return {"main": "main (small, 30% math)"}.get(arm, arm)


@_styled
def arm_gain_bars(gains: pd.DataFrame):
    """RL − base per arm (bars, paired CI as error bars), one panel per (split, k): data composition vs
    model scale (docs/PAPER.md §5). `gains`: analysis.arm_gains."""
    _require(gains, "arm gains", ["arm", "split", "k", "gain", "low", "high"])
    panels = sorted({(s, k) for s, k in zip(gains["split"], gains["k"])}, key=lambda sk: (sk[0] != "test", sk))
    fig, axes = _panels(len(panels), sharey=False)
    palette = dict(zip(dict.fromkeys(gains["arm"]), sns.color_palette("deep")))
    for ax, (split, k) in zip(axes, panels):
        d = gains[(gains["split"] == split) & (gains["k"] == k)].reset_index(drop=True)
        lo, hi = (d["gain"] - d["low"]).clip(lower=0), (d["high"] - d["gain"]).clip(lower=0)
        ax.bar(range(len(d)), d["gain"], yerr=[lo.fillna(0), hi.fillna(0)], capsize=3,
               color=[palette[a] for a in d["arm"]])
        ax.axhline(0.0, color="0.2", lw=0.8)
        ax.set_xticks(range(len(d)), [_arm_label(a) for a in d["arm"]], rotation=20, ha="right")
        ax.set(title=f"{split} split, pass@{k}", ylabel="RL − base")
    fig.suptitle("RL gain at the last checkpoint of each pretraining variant (error bar: paired 95% CI)")
    return fig


@_styled
def flops_curves(curves: pd.DataFrame):
    """Dev validation pass@1 against cumulative training FLOPs (analysis.flops_curves), one line per method; the
    dotted line marks the compute every method reached (where analysis.compute_matched compares them)."""
    _require(curves, "flops curves", ["method", "flops", "val_pass@1"])
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for m in method_order(curves["method"].unique()):
        d = curves[curves["method"] == m].sort_values("flops")
        ax.plot(d["flops"], d["val_pass@1"], marker="o", ms=3, color=method_color(m), label=method_label(m))
    ax.axvline(curves.groupby("method")["flops"].max().min(), color="0.4", ls=":", lw=1)
    ax.set(xscale="log", xlabel="training FLOPs (≈ 8N per generated token + 6N per demonstration token)",
           ylabel="dev pass@1 (validation)",
           title=f"compute-matched, from {fmt_tokens(curves['parent_tokens'].iloc[0])} tokens")
    _rate_axis([ax])
    ax.legend(fontsize=8)
    return fig


@_styled
def budget_curves(curves: pd.DataFrame, y: str = "val_pass@1"):
    """`y` along RL training for several rollouts-per-prompt settings, against prompts seen (left) and
    generated tokens (right, the compute that sampling costs): docs/PAPER.md §6, the rollout-budget study.
    Several seeds of a setting: x and y are averaged per step."""
    _require(curves, "budget curves", ["group_size", "prompts_seen", "gen_tokens", y])
    df = curves.dropna(subset=[y])
    if df.empty:
        raise ValueError(f"budget curves: column {y!r} has no values (set branch.eval_every > 0)")
    fig, axes = _panels(2)
    sizes = sorted(df["group_size"].unique())
    colors = dict(zip(sizes, sns.color_palette("viridis", len(sizes))))
    for ax, x, label in zip(axes, ("prompts_seen", "gen_tokens"), ("prompts seen", "generated tokens")):
        for g in sizes:
            d = df[df["group_size"] == g].groupby("step", as_index=False)[[x, y]].mean().sort_values(x)
            ax.plot(d[x], d[y], marker="o", ms=3, color=colors[g], label=f"{g} rollouts / prompt")
        ax.set_xlabel(label)
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: fmt_tokens(v)))
    _ylabel(axes, y)
    if y.startswith("val_pass@"):
        _rate_axis(axes)
    fig.suptitle(f"{y} during RL: rollouts per prompt against data (left) and compute (right)")
    _fig_legend(fig, axes, title="group size", by_method=False)
    return fig
