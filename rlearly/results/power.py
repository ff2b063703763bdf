"""The power and size of every claim's rule at a study's own design: how often the rule holds when the paper's claim
is true at this world's scale (power), and how often when it is false (size). A rule is *fit* when it holds at least
80% of the time under the first and at most 5% under the second, part by part, then for the claim.

How a study is simulated. A claim part compares cells (a method at a checkpoint), each made of the design's units
(pretraining runs x branch seeds) on its problems (n samples each) or its general-capability items. A cell is given
by its pass@1 and pass@k_max: a problem's solve rate is drawn from the Beta distribution with that mean whose spread
gives that pass@k_max, at the same quantile for every cell (a problem is hard or easy for every method). Each
pretraining run shifts every cell's mean alike (RUN_SD), each run shifts a contrast's treated side (GAP_SD), each
branch seed its own unit (SEED_SD); counts are binomial. The simulated per-unit values go through the very procedures
the claims use (rlearly.evaluation.units.unit_contrast and seed_spread_test, the tolerances of
rlearly.results.claims.rules) and decide with the claims' own verdict functions (rules.sig_verdict, within_verdict,
at_most_verdict, beyond_verdict, non_inferior_verdict, all_verdict).

Effects. "true" gives each contrast the paper's size scaled to this world: a gain as the same share of the headroom
above the lower level (Δ_world = Δ_paper / (1 − level_paper) x (1 − level_world)), a loss as the same share of the
level. Where the paper gives no number, the world's own measurement (the table says which). "false" is no effect, or
for a part that allows a margin, an effect at the margin. "sensitivity" is "true" with half the effect and every
spread doubled. Every number's source is in SOURCES.

    power_table(spec, sims=1000)   one row per claim part and scenario: P(held), P(contradicted), power, size, fit
    claim_power(table)             per claim: P(every part held), the parts treated as independent
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from rlearly.errors import ConfigError
from rlearly.evaluation.passk import pass_at_k
from rlearly.evaluation.units import seed_spread_test, unit_contrast
from rlearly.results.analysis import CAPABILITY_TOL
from rlearly.results.claims.rules import (CONTRADICTED, FLAT_TOL, HELD, JUMP_SHARE, MEASURABLE, NI_MARGIN,
                                          NO_EFFECT, NOT_MEASURED, PEAK_TOL, all_verdict, at_most_verdict,
                                          beyond_verdict, non_inferior_verdict, sig_verdict, within_verdict)

POWER_MIN, SIZE_MAX = 0.80, 0.05  # fit: held this often when the claim is true, at most this often when false
SCENARIOS = ("true", "false", "sensitivity")

# The world: levels and spreads of the late study (reports/FINDINGS.md, test split unless said). A study of another
# world would need its own; the table names the design, these stay the world's.
RUN_SD = 0.067  # pass@1 between pretraining runs
GAP_SD = 0.014  # a contrast between two methods, from run to run
SEED_SD = 0.008  # pass@1 between RL seeds of one run
DOC_SD = 0.016  # a document's relative NLL difference between two branches
MARGIN_SD = 0.6  # a probe's log-likelihood margin difference between two branches (nats)
MARGIN_LEVEL = 2.0  # a trained branch's mean probe margin (nats)
LEVELS = {"base": (0.107, 0.623), "rl": (0.437, 0.795), "sft": (0.392, 0.841), "sft_gold": (0.428, 0.869),
          "sft_rl": (0.459, 0.791), "sft_gold_rl": (0.489, 0.825), "parallel": (0.427, 0.838)}  # (pass@1, @16)
BASE_CURVE = ((0.1, 0.0, 0.0), (0.2, 0.0, 0.0), (0.3, 0.0, 0.0), (0.45, 0.002, 0.03), (0.65, 0.061, 0.363),
              (1.0, 0.107, 0.623))  # (share of the last checkpoint's tokens, base pass@1, base pass@16)
HARD = {"base": (0.001, 0.003), "rl": (0.004, 0.043)}
LEVEL_K = 16  # the k of every second number above (and of with_p1, paper_at): a cell's problems' spread is fit to it
LOGIT_SLOPE = LEVELS["rl"][0] * (1 - LEVELS["rl"][0])  # the spreads above, measured at RL's level, on the logit scale
SOURCES = {
    "RUN_SD": "FINDINGS §20: three pretraining runs differ by .067 in RL pass@1 at 10M",
    "GAP_SD": "FINDINGS §20: RL − SFT per pretraining run +.051, +.029, +.055 at 10M (sd .014)",
    "SEED_SD": "FINDINGS §20: RL seeds of one run agree to .008 at 10M (dev at 6.5M: .0018, §21)",
    "DOC_SD": "FINDINGS §19: RL − base NLL +0.51% [0.30, 0.73] over 200 documents: per-document sd ≈ 1.6% (of the "
              "difference averaged over checkpoints, as claim 6 computes it)",
    "MARGIN_SD, MARGIN_LEVEL": "assumed: probe margins are new (issue 37), no study has measured them yet",
    "LEVELS": "FINDINGS §19: the late study at 10M, means of three pretraining runs",
    "BASE_CURVE": "FINDINGS §18-§19: the main run's zero-shot base along pretraining (dev; 10M on test)",
    "HARD": "FINDINGS §21: the hard split at 10M (best hard pass@16 .043)",
    "effects": "docs/PAPER.md §1a-§1f (GSM8K), scaled to this world as the module docstring says",
    "claim 8": "the paper gives a ratio of samples, no pass@1 difference: the late study's own +.047 and +.079 "
               "(FINDINGS §20); its peaks: equal when true (the paper's differ by ≤ 2.3 pp), PEAK_TOL apart when false",
    "claim 10": "issue 37's reading of the paper's seed figure: seed sd .079 at the threshold, .004 at the end",
}


def headroom_gain(paper_low: float, paper_high: float, world_low: float) -> float:
    """A gain of the paper (levels in %, low -> high) as the same share of the headroom above this world's level."""
    return (paper_high - paper_low) / (100 - paper_low) * (1 - world_low)


def relative_change(paper_from: float, paper_to: float, world_from: float) -> float:
    """A change of the paper as the same share of the level, applied to this world's level."""
    return (paper_to - paper_from) / paper_from * world_from


@functools.lru_cache(maxsize=None)
def concentration(pass1: float, passk: float, k: int) -> float:
    """The Beta concentration (a + b) with mean `pass1` whose pass@k, 1 − E[(1 − p)^k], is `passk` (clipped into
    what a Beta of that mean can give)."""
    pass1 = min(max(pass1, 1e-3), 0.999)  # a level of 0 (an early base): the least measurable one
    top = 1 - (1 - pass1) ** k  # a concentration -> infinity: every problem at pass1
    passk = min(max(passk, pass1 * 1.01), top * 0.999)

    def gap(log_c):
        a, b = pass1 * math.exp(log_c), (1 - pass1) * math.exp(log_c)
        return 1 - math.exp(special.betaln(a, b + k) - special.betaln(a, b)) - passk
    return math.exp(optimize.brentq(gap, math.log(1e-3), math.log(1e6)))


def base_at(share: float) -> tuple[float, float]:
    """This world's base (pass@1, pass@16) at a share of the last checkpoint's tokens (BASE_CURVE, interpolated)."""
    x, p1, pk = zip(*BASE_CURVE)
    return float(np.interp(share, x, p1)), float(np.interp(share, x, pk))


# docs/PAPER.md §1a, GSM8K: tokens (B) -> pass@1, pass@32 of the base and of RL (44B is the last checkpoint)
PAPER_TOKENS = (2, 4, 6, 10, 12, 14, 20, 28, 44)
PAPER_CURVES = {"base": ((1.5, 2.4, 2.2, 4.1, 2.9, 3.8, 7.3, 10.4, 14.0), (14.3, 25.0, 32.7, 42.4, 41.2, 45.5, 55.5,
                                                                           60.3, 68.8)),
                "rl": ((2.8, 15.8, 20.2, 28.7, 36.7, 38.9, 47.7, 52.4, 56.2), (19.9, 34.4, 45.5, 59.2, 63.6, 69.1, 73.8,
                                                                            78.9, 80.8))}


def paper_at(method: str, share: float) -> tuple[float, float]:
    """The paper's (pass@1, pass@k) of `method` (base or rl) at a share of its last checkpoint's tokens, each curve
    scaled to end at this world's level (LEVELS): the paper's trajectory in this world's units. Before the paper's
    first checkpoint (2B), its first value."""
    x = np.asarray(PAPER_TOKENS) / PAPER_TOKENS[-1]
    return tuple(float(np.interp(share, x, curve) / curve[-1] * LEVELS[method][j])
                 for j, curve in enumerate(PAPER_CURVES[method]))


def late_gain_curve(shares) -> np.ndarray:
    """This world's late study's RL gain as a share of its last (FINDINGS §19: 0 to 3M, +.006 at 4.5M, +.207 at 6.5M,
    +.330 at 10M): a jump in the second half of pretraining."""
    return np.interp(shares, (0.3, 0.45, 0.65, 1.0), (0.0, 0.018, 0.63, 1.0), left=0.0)


# ---------------------------------------------------------------- a study's design

@dataclasses.dataclass(frozen=True)
class Design:
    """What a study spec gives the claims: units per cell, problems, samples, items."""
    name: str
    problems: int
    n: int
    k_max: int
    shares: tuple  # the main run's checkpoints as shares of the last one's tokens
    units: dict  # (method, checkpoint index) -> ((pretrain_seed, seed), ...) of the main config
    hard_problems: int
    hard_runs: dict  # role -> pretraining runs (targeted_mix, wider_model) evaluated on hard
    rollout_arms: bool  # rollouts_few, _many and _same_tokens all present
    plateau_arm: bool  # rollouts_few_plateau present
    readiness_runs: int  # pretraining runs (or arms) evaluated for readiness
    documents: int
    probes: int

    def key(self) -> str:
        d = dataclasses.asdict(self) | {"units": {f"{m}@{i}": list(us) for (m, i), us in self.units.items()}}
        blob = json.dumps(d, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


SIDE_ROLES = ("targeted_mix", "wider_model", "rollouts_few", "rollouts_many", "rollouts_same_tokens",
              "rollouts_few_plateau", "hard")


def design_of(spec) -> Design:
    """The design of a study spec, read from its plan (nothing runs)."""
    from rlearly.data.general_world import GeneralWorld
    from rlearly.study import plan

    if spec.base:
        raise ConfigError(f"study {spec.name} branches a checkpoint suite: the power check simulates studies of this "
                          "world's pretraining runs (their variance components), not a suite's")

    side = {a.name for a in spec.all_arms() if a.role in SIDE_ROLES}
    branches = [n for n in plan(spec, Path("/design")) if n.kind == "branch" and n.arm not in side]
    ck = lambda n: int(n.key.split(" ckpt-")[1].split()[0])  # noqa: E731
    tokens = sorted({ck(n) for n in branches})
    units: dict = {}
    for n in branches:
        seed = int(n.path.name.split("-")[0].rsplit("s", 1)[1])
        units.setdefault((n.key.split()[1], tokens.index(ck(n))), set()).add((n.pretrain_seed, seed))
    for i in range(len(tokens)):
        units[("base", i)] = {(p, p) for (m, j), us in list(units.items()) if j == i for p, _ in us}
    roles = {a.role: a for a in spec.all_arms() if a.role}
    world = spec.base_config().world
    return Design(spec.name, min(spec.eval.max_problems, world.n_test), spec.eval.n, max(spec.eval.ks),
                  tuple(t / tokens[-1] for t in tokens), {k: tuple(sorted(v)) for k, v in units.items()},
                  min(roles["hard"].eval.max_problems, world.n_hard) if "hard" in roles else 0,
                  {r: len(roles[r].seeds_pretrain()) for r in ("targeted_mix", "wider_model") if r in roles},
                  {"rollouts_few", "rollouts_many", "rollouts_same_tokens"} <= set(roles),
                  {"rollouts_many", "rollouts_few_plateau"} <= set(roles),
                  sum(len(a.seeds_pretrain()) for a in spec.all_arms() if a.eval.readiness),
                  world.n_probe_heldout_docs, len(GeneralWorld(world).probes("test")))


# ---------------------------------------------------------------- one simulated study

class Sim:
    """One simulated study: problems shared by every cell, pretraining runs shared by every method."""

    def __init__(self, rng: np.random.Generator, problems: int, n: int, spread: float = 1.0):
        self.rng, self.n, self.spread = rng, n, spread
        self.q = stats.norm.cdf(rng.standard_normal(problems))  # each problem's quantile of difficulty
        self.runs: dict = {}

    def _run(self, run) -> float:
        if run not in self.runs:
            self.runs[run] = self.rng.normal(0, RUN_SD * self.spread)
        return self.runs[run]

    def cell(self, p1: float, pk: float, units, k: int = 1, seed_sd: float = SEED_SD, gap_sd: float = 0.0):
        """(units, problems) pass@k values of a cell of mean pass@1 `p1` and pass@16 `pk`."""
        return pass_at_k(self.n, self.counts(p1, pk, units, seed_sd, gap_sd), k)

    def counts(self, p1: float, pk: float, units, seed_sd: float = SEED_SD, gap_sd: float = 0.0) -> np.ndarray:
        """(units, problems) correct counts of n samples of a cell of mean pass@1 `p1` and pass@16 `pk`. Shifts (sd
        in pass@1 at RL's level, LEVELS["rl"]) act on the logit of the mean, so a cell near 0 moves in proportion."""
        p1 = min(max(p1, 1e-3), 0.999)
        conc = concentration(round(p1, 4), round(pk, 4), LEVEL_K)
        gaps = {run: self.rng.normal(0, gap_sd * self.spread) for run, _ in units}
        out = []
        for run, _ in units:
            shift = (self._run(run) + gaps[run] + self.rng.normal(0, seed_sd * self.spread)) / LOGIT_SLOPE
            m = float(special.expit(special.logit(p1) + shift))
            rates = stats.beta.ppf(self.q, m * conc, (1 - m) * conc)
            out.append(self.rng.binomial(self.n, rates))
        return np.stack(out)

    def contrast(self, a: tuple, b: tuple, units_a, units_b, k=1):
        """Cells a and b, each (pass@1, pass@16), compared as the claims compare them: (diff, low, high); for a
        tuple of ks, one such triple per k from the same samples."""
        cb = self.counts(*b, units_b)
        ca = self.counts(*a, units_a, gap_sd=GAP_SD)
        out = [unit_contrast(pass_at_k(self.n, ca, j), pass_at_k(self.n, cb, j), units_a, units_b)[:3]
               for j in (k if isinstance(k, tuple) else (k,))]
        return out if isinstance(k, tuple) else out[0]

    def items(self, units_a, units_b, count: int, diff: float, sd: float) -> tuple[float, float, float]:
        """Per-item values of two sides (documents' relative NLL, probe margins) whose means differ by `diff`."""
        base = self.rng.normal(0, sd, count)
        gaps = {u[0]: self.rng.normal(0, GAP_SD / 0.1 * sd * self.spread) for u in units_a}
        a = np.stack([base + diff + gaps[u[0]] + self.rng.normal(0, sd * self.spread, count) for u in units_a])
        b = np.stack([base + self.rng.normal(0, sd * self.spread, count) for _ in units_b])
        return unit_contrast(a, b, units_a, units_b)[:3]


def with_p1(level: tuple, p1: float) -> tuple:
    """A cell like `level` (pass@1, pass@k_max) moved to pass@1 `p1`, its problems' spread kept."""
    conc = concentration(level[0], level[1], 16)
    p1 = min(max(p1, 1e-3), 0.999)
    a, b = p1 * conc, (1 - p1) * conc
    return p1, 1 - math.exp(special.betaln(a, b + 16) - special.betaln(a, b))


# ---------------------------------------------------------------- the parts

def parts_of(d: Design) -> list[tuple]:
    """(claim, part, needs, simulate) per claim part: `needs` says why the design cannot test it ("" when it can),
    simulate(sim, scenario, effect) -> verdict, `effect` 1 (or 0.5 in the sensitivity scenario)."""
    last = len(d.shares) - 1
    u = lambda m, i: d.units.get((m, i), ())  # noqa: E731
    km = d.k_max
    base = [base_at(s) for s in d.shares]  # this world's own base along pretraining
    paper = [(paper_at("base", s), paper_at("rl", s)) for s in d.shares]  # the paper's trajectory, scaled
    measurable = [i for i, (b, _) in enumerate(paper) if b[1] >= MEASURABLE]
    t0 = measurable[0] if measurable else None

    def need(*cells) -> str:
        missing = [f"{m} at checkpoint {i}" for m, i in cells if not u(m, i)]
        return f"needs {', '.join(missing)}" if missing else ""

    parts = []

    def flat(sim, scenario, effect):  # claims 1 and 2: the paper's gain where its base is first measurable
        b, rl = paper[t0]
        gain = FLAT_TOL if scenario == "false" else effect * (rl[0] - b[0])
        return within_verdict(*sim.contrast(with_p1(b, b[0] + gain), b, u("rl", t0), u("base", t0))[1:], FLAT_TOL)
    parts.append((1, "no gain where the base is first measurable", "no checkpoint's base reaches pass@k_max "
                  f"{MEASURABLE} on the paper's trajectory" if t0 is None else need(("rl", t0), ("base", t0)), flat))

    def curve(sim, scenario, effect, which):
        rows = []
        for i, (b, rl) in enumerate(paper):
            if scenario == "false":  # no gain at all; or this world's own late jump on its own base
                b = b if which == "threshold" else base[i]
                gain = 0.0 if which == "threshold" else (LEVELS["rl"][0] - base[last][0]) * late_gain_curve(
                    [d.shares[i]])[0]
            else:
                gain = effect * (rl[0] - b[0])
            rows.append(sim.contrast(with_p1(b, b[0] + gain), b, u("rl", i), u("base", i)))
        up = [r[1] > 0 for r in rows]
        tail = next((i for i in range(len(up)) if all(up[i:])), None)
        if which == "threshold" or not tail:  # none, or from the first checkpoint on: no threshold in the study
            return HELD if tail else NO_EFFECT
        first = next(i for i, r in enumerate(rows) if r[1] > 0 and r[0] >= JUMP_SHARE * rows[-1][0])
        return HELD if d.shares[first] <= 0.5 else CONTRADICTED
    cells = need(*[c for i in range(len(d.shares)) for c in (("rl", i), ("base", i))])
    parts.append((1, "a threshold", cells, lambda s, sc, e: curve(s, sc, e, "threshold")))
    parts.append((1, "a large jump early", cells, lambda s, sc, e: curve(s, sc, e, "jump")))

    parts.append((2, "readiness predicts the gain beyond tokens", "not simulated: the spread of readiness between "
                  "pretraining runs at one checkpoint is not measured yet" if d.readiness_runs >= 2 else
                  "not testable at this design: needs ≥ 2 pretraining runs (or arms) evaluated for readiness at the "
                  "same checkpoint", None))

    def below(sim, scenario, effect):  # flat where readiness is first measurable, if a later checkpoint gains
        b, rl = paper[last]
        if not sim.contrast(with_p1(b, b[0] + effect * (rl[0] - b[0])), b, u("rl", last), u("base", last))[1] > 0:
            return NO_EFFECT  # the rule's gate: a significant gain at a higher readiness
        return flat(sim, scenario, effect)
    parts.append((2, "no gain below a small solve rate", parts[0][2], below))

    def expands(sim, scenario, effect):  # pass@k_max up where RL's pass@1 gain is significant (the rule's own test)
        vs = []
        for i, (b, rl) in enumerate(paper):
            a = (b[0] + effect * (rl[0] - b[0]), b[1] + (0.0 if scenario == "false" else effect * (rl[1] - b[1])))
            one, big = sim.contrast(a, b, u("rl", i), u("base", i), (1, km))
            if one[1] > 0:
                vs.append(sig_verdict(*big[1:]))
        return all_verdict(vs) if vs else NO_EFFECT
    parts.append((3, "pass@k_max up wherever pass@1 is", need(*[("rl", i) for i in range(len(d.shares))]), expands))

    sft = LEVELS["sft"]

    def sharpens(sim, scenario, effect, k):  # SFT→RL − SFT: pass@1 +16.4 pp, pass@32 −7.5 pp at 44B
        p1 = sft[0] + (0.0 if scenario == "false" else effect * headroom_gain(42.4, 58.8, sft[0]))
        pk = sft[1] + (0.0 if scenario == "false" else effect * relative_change(87.6, 80.1, sft[1]))
        low, high = sim.contrast((p1, pk), sft, u("sft_rl", last), u("sft", last), k)[1:]
        return sig_verdict(low, high) if k == 1 else sig_verdict(-high, -low)
    need4 = need(("sft_rl", last), ("sft", last))
    parts.append((4, "pass@1 up", need4, lambda s, sc, e: sharpens(s, sc, e, 1)))
    parts.append((4, "pass@k_max down", need4, lambda s, sc, e: sharpens(s, sc, e, km)))

    sft_at = sorted(i for (m, i) in d.units if m == "sft")
    early = next((i for i in sft_at if i in measurable and i != last), None)

    def rl_vs_sft(sim, scenario, effect, which):
        if which == "early":  # the paper's RL − SFT at 4B: −0.7 pp (not ahead); false: ahead by the margin
            b = with_p1(sft, sft[0] * d.shares[early])
            gap = FLAT_TOL if scenario == "false" else 0.0
            return at_most_verdict(*sim.contrast(with_p1(b, b[0] + gap), b, u("rl", early), u("sft", early))[1:], FLAT_TOL)
        gap = 0.0 if scenario == "false" else effect * headroom_gain(42.4, 56.2, sft[0])  # +13.8 pp at 44B
        return sig_verdict(*sim.contrast(with_p1(sft, sft[0] + gap), sft, u("rl", last), u("sft", last))[1:])
    parts.append((5, "RL not ahead at the earliest", "needs an SFT checkpoint before the last whose base is "
                  "measurable" if early is None else need(("rl", early)), lambda s, sc, e: rl_vs_sft(s, sc, e, "early")))
    parts.append((5, "RL ahead at the last", need(("rl", last), ("sft", last)),
                  lambda s, sc, e: rl_vs_sft(s, sc, e, "late")))
    gold_at = sorted(i for (m, i) in d.units if m == "sft_gold")

    def gold_wins(sim, scenario, effect):  # SFT-Gold − RL pass@32 +7 pp at 44B
        rl = LEVELS["rl"]
        pk = rl[1] + (0.0 if scenario == "false" else effect * headroom_gain(80.8, 87.8, rl[1]))
        return all_verdict([sig_verdict(*sim.contrast((rl[0], pk), rl, u("sft_gold", i), u("rl", i), km)[1:]) for i in gold_at])
    parts.append((5, "SFT-Gold wins on pass@k_max", "" if gold_at else "needs SFT-Gold branches", gold_wins))

    def gold_rl_best(sim, scenario, effect):  # SFT-Gold→RL − SFT→RL pass@1 +1.5 pp at 44B
        b = LEVELS["sft_rl"]
        gap = 0.0 if scenario == "false" else effect * headroom_gain(58.8, 60.3, b[0])
        return sig_verdict(*sim.contrast(with_p1(b, b[0] + gap), b, u("sft_gold_rl", last), u("sft_rl", last))[1:])
    parts.append((5, "SFT-Gold→RL has the best pass@1", need(("sft_gold_rl", last), ("sft_rl", last)), gold_rl_best))

    sft_units = u("sft", last) or u("sft_gold", last)
    erosion = -relative_change(47.6, 41.2, 1.0)  # SFT→RL's 6-task average −13.4% at 44B, as relative NLL

    def capability(sim, scenario, effect, which):
        if which == "keep":
            diff = CAPABILITY_TOL if scenario == "false" else 0.0
            return at_most_verdict(*sim.items(u("rl", last), u("base", last), d.documents, diff, DOC_SD)[1:], CAPABILITY_TOL)
        if which == "erode":
            diff = CAPABILITY_TOL if scenario == "false" else effect * erosion
            return beyond_verdict(*sim.items(sft_units, u("rl", last), d.documents, diff, DOC_SD)[1:], CAPABILITY_TOL)
        diff = 0.0 if scenario == "false" else -effect * erosion * MARGIN_LEVEL
        low, high = sim.items(sft_units, u("rl", last), d.probes, diff, MARGIN_SD)[1:]
        return sig_verdict(-high, -low)
    parts.append((6, "RL keeps capability", need(("rl", last)), lambda s, sc, e: capability(s, sc, e, "keep")))
    need6 = "" if sft_units else "needs an SFT-family branch"
    parts.append((6, "SFT erodes it", need6, lambda s, sc, e: capability(s, sc, e, "erode")))
    parts.append((6, "SFT lowers the probes' margins", need6, lambda s, sc, e: capability(s, sc, e, "margin")))

    par_at = sorted(i for (m, i) in d.units if m == "parallel")

    def parallel(sim, scenario, effect, which):
        rl, vs = LEVELS["rl"], []
        if which == "cap":  # one test over every parallel checkpoint's documents, as the claim pools them
            diff = CAPABILITY_TOL if scenario == "false" else 0.0
            return at_most_verdict(*sim.items(u("parallel", last), u("rl", last), d.documents * len(par_at), diff,
                                      DOC_SD)[1:], CAPABILITY_TOL)
        for i in par_at:
            if which == "win":  # against the best other at this checkpoint, picked from the same samples as the
                others = [m for m in ("rl", "sft", "sft_rl") if u(m, i)]  # claim picks it; the paper's smallest
                top = max(LEVELS[m][1] for m in others)  # lead over the best is +3.9 pp of pass@32 (44B, over RL)
                pk = top + (-NI_MARGIN if scenario == "false" else effect * headroom_gain(80.6, 84.5, top))
                got = {m: sim.cell(*LEVELS[m], u(m, i), km) for m in others}
                best = max(got, key=lambda m: got[m].mean())
                par = sim.cell(LEVELS["parallel"][0], pk, u("parallel", i), km, gap_sd=GAP_SD)
                vs.append(non_inferior_verdict(*unit_contrast(par, got[best], u("parallel", i), u(best, i))[1:3], NI_MARGIN))
            elif which == "between":  # 47.9 between SFT 37.7 and RL 54.7 at 44B: the same place between this world's
                place = 0.0 if scenario == "false" else (47.9 - 37.7) / (54.7 - 37.7)
                mid = with_p1(sft, sft[0] + place * (rl[0] - sft[0]))
                a = sig_verdict(*sim.contrast(mid, sft, u("parallel", i), u("sft", i) or u("rl", i))[1:])
                b = sig_verdict(*sim.contrast(rl, mid, u("rl", i), u("parallel", i))[1:])
                vs.append(HELD if a == b == HELD else CONTRADICTED if CONTRADICTED in (a, b) else NO_EFFECT)
        return all_verdict(vs)
    need7 = "" if par_at else "needs parallel branches"
    parts.append((7, "≥ the best on pass@k_max", need7, lambda s, sc, e: parallel(s, sc, e, "win")))
    parts.append((7, "pass@1 between SFT and RL", need7, lambda s, sc, e: parallel(s, sc, e, "between")))
    parts.append((7, "keeps capability", need7, lambda s, sc, e: parallel(s, sc, e, "cap")))

    def rollouts(sim, scenario, effect, gain):  # one seed per arm at the last checkpoint
        rl = LEVELS["rl"]
        return sig_verdict(*sim.contrast(with_p1(rl, rl[0] + (0.0 if scenario == "false" else effect * gain)), rl,
                                 ((0, 0),), ((0, 1),))[1:])
    need8 = "" if d.rollout_arms else "needs arms with roles rollouts_few, rollouts_many and rollouts_same_tokens"
    parts.append((8, "many rollouts better per prompt", need8, lambda s, sc, e: rollouts(s, sc, e, 0.047)))
    parts.append((8, "few rollouts better per token", need8, lambda s, sc, e: rollouts(s, sc, e, 0.079)))

    def peaks(sim, scenario, effect):  # few at its plateau − many; "true": equal peaks, "false": apart by the margin
        rl = LEVELS["rl"]
        gap = PEAK_TOL if scenario == "false" else 0.0
        return within_verdict(*sim.contrast(with_p1(rl, rl[0] + gap), rl, ((0, 0),), ((0, 1),))[1:], PEAK_TOL)
    parts.append((8, "both reach about the same peak", "" if d.plateau_arm else
                  "needs arms with roles rollouts_many and rollouts_few_plateau", peaks))
    parts.append((8, "few rollouts better per FLOP on hard prompts", "needs Easy/Hard training splits chosen by the "
                  "base's successes out of 64 samples (not built)", None))

    def composition(sim, scenario, effect):  # the targeted mix's hard-split RL gain − the wider model's
        runs = {r: [((r, i), 0) for i in range(d.hard_runs[r])] for r in ("targeted_mix", "wider_model")}
        b, gained = HARD["base"], HARD["rl"]
        extra = 0.0 if scenario == "false" else effect * headroom_gain(12.0, 21.5, gained[0])  # 21.5% vs 12% RL
        gains = {}
        for r, us in runs.items():
            top = with_p1(gained, gained[0] + (extra if r == "targeted_mix" else 0.0))
            gains[r] = sim.cell(*top, us, gap_sd=GAP_SD) - sim.cell(*b, us)
        return sig_verdict(*unit_contrast(gains["targeted_mix"], gains["wider_model"], runs["targeted_mix"],
                                  runs["wider_model"])[1:3])
    parts.append((9, "the targeted mix gains more than the wider model", "" if len(d.hard_runs) == 2 and
                  d.hard_problems else "needs arms with roles targeted_mix and wider_model evaluated on hard",
                  composition))

    multi = sorted(i for (m, i), us in d.units.items() if m == "rl" and
                   sum(p == min(q for q, _ in us) for p, _ in us) >= 3)

    def spread(sim, scenario, effect):  # at the first multi-seed checkpoint with a significant gain, as the claim
        run = min(p for p, _ in u("rl", multi[0]))
        for i in multi[:-1]:
            b, rl = paper[i]
            level = with_p1(b, b[0] + effect * (rl[0] - b[0]))
            at = seed_cell(sim, level, u("rl", i), spread_sds(scenario, effect)[0])
            if unit_contrast(at, sim.cell(*b, u("base", i)), u("rl", i), u("base", i))[1] > 0:
                mine = [j for j, x in enumerate(u("rl", i)) if x[0] == run]
                return spread_verdict(sim, at[mine], tuple(x for x in u("rl", multi[-1]) if x[0] == run), scenario,
                                      effect)
        return NOT_MEASURED  # no multi-seed checkpoint before the last with a significant gain
    parts.append((10, "larger seed spread at the threshold", "" if len(multi) >= 2 else
                  "needs ≥ 3 RL seeds of one run at ≥ 2 checkpoints", spread))
    return parts


def spread_sds(scenario: str, effect: float) -> tuple[float, float]:
    """Claim 10's seed spreads (pass@1 scale) at the threshold and at the end: the paper's reading, or equal."""
    return (SEED_SD, SEED_SD) if scenario == "false" else (0.079 * effect, 0.004)


def seed_cell(sim, level: tuple, units, sd: float) -> np.ndarray:
    """A cell whose seeds spread by `sd` on the pass@1 scale at its own level (Sim.cell's shifts are logits)."""
    return sim.cell(*level, units, seed_sd=sd * LOGIT_SLOPE / max(level[0] * (1 - level[0]), 1e-3))


def spread_verdict(sim, at_threshold, units_end, scenario: str, effect: float) -> str:
    """Claim 10's part on one simulated study: the RL seeds' values at the threshold (an array, or their units:
    then drawn at half RL's last level) against RL's seeds at the end, through the claim's own test."""
    if not isinstance(at_threshold, np.ndarray):
        level = with_p1(LEVELS["rl"], LEVELS["rl"][0] / 2)
        at_threshold = seed_cell(sim, level, at_threshold, spread_sds(scenario, effect)[0])
    end = seed_cell(sim, LEVELS["rl"], units_end, spread_sds(scenario, effect)[1])
    t = seed_spread_test(at_threshold, end, n=sim.n)
    return HELD if t["held"] else CONTRADICTED if t["reversed"] else NO_EFFECT


def seed_power(d: Design, counts=range(2, 9), sims: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Claim 10's power and size at each number of RL seeds a side (the design's problems and samples): what the
    spread test asks of a design. Rows (seeds, scenario, held)."""
    rows = []
    for s in counts:
        units = [(0, i) for i in range(s)]
        for j, scenario in enumerate(SCENARIOS):
            rng = np.random.default_rng([seed, 10, s, j])
            got = [spread_verdict(Sim(rng, d.problems, d.n, 2.0 if scenario == "sensitivity" else 1.0),
                                  units, units, "false" if scenario == "false" else "true",
                                  0.5 if scenario == "sensitivity" else 1.0) for _ in range(sims)]
            rows.append(dict(seeds=s, scenario=scenario, held=got.count(HELD) / sims))
    return pd.DataFrame(rows)


def seeds_needed(table: pd.DataFrame, scenario: str = "true") -> int | None:
    """The fewest seeds at which claim 10's test is fit under `scenario` (size from "false"); None if none is."""
    w = table.pivot(index="seeds", columns="scenario", values="held")
    ok = w[(w[scenario] >= POWER_MIN) & (w["false"] <= SIZE_MAX)]
    return int(ok.index.min()) if len(ok) else None


def simulate_parts(parts: list[tuple], d: Design, sims: int = 1000, seed: int = 0, log=None) -> pd.DataFrame:
    """Each part of `parts` (parts_of's shape) simulated `sims` times per scenario at design `d`: one row per (claim,
    part, scenario) with the shares held and contradicted; `power` (held when true), `size` (held when false) and
    `fit` on every row of the part; `needs` where the design cannot test it. `log(line)` hears of each part."""
    rows, start = [], time.monotonic()
    for i, (claim, part, needs, simulate) in enumerate(parts):
        if log:
            log(f"[{i + 1}/{len(parts)}] claim {claim}: {part}" + (f" (not testable: {needs})" if needs else "") +
                f"  {time.monotonic() - start:.0f}s")
        for j, scenario in enumerate(SCENARIOS):
            row = dict(claim=claim, part=part, scenario=scenario, needs=needs, sims=0, held=math.nan,
                       contradicted=math.nan)
            if not needs and simulate is not None:
                rng = np.random.default_rng([seed, i, j])
                got = []
                for _ in range(sims):
                    problems = d.hard_problems if claim == 9 else d.problems
                    sim = Sim(rng, problems, d.n, 2.0 if scenario == "sensitivity" else 1.0)
                    got.append(simulate(sim, "false" if scenario == "false" else "true",
                                        0.5 if scenario == "sensitivity" else 1.0))
                row |= dict(sims=sims, held=got.count(HELD) / sims, contradicted=got.count(CONTRADICTED) / sims)
            rows.append(row)
    df = pd.DataFrame(rows)
    by = ["claim", "part"]
    power = df[df["scenario"] == "true"].set_index(by)["held"].rename("power")
    size = df[df["scenario"] == "false"].set_index(by)["held"].rename("size")
    df = df.join(power, on=by).join(size, on=by)
    return df.assign(fit=(df["power"] >= POWER_MIN) & (df["size"] <= SIZE_MAX), design=d.name, design_key=d.key())


def power_table(spec, sims: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Every claim part of rlearly's rules simulated at the design of study `spec` (simulate_parts)."""
    d = design_of(spec)
    return simulate_parts(parts_of(d), d, sims, seed)


def claim_power(table: pd.DataFrame) -> pd.DataFrame:
    """Per claim: P(every part held) when true and when false (parts treated as independent), `fit` when every part
    is, and the parts this design cannot test."""
    out = []
    for claim, g in table[table["scenario"] == "true"].groupby("claim"):
        ok = bool((g["needs"] == "").all())
        out.append(dict(claim=claim, power=float(np.prod(g["power"])) if ok else math.nan,
                        size=float(np.prod(g["size"])) if ok else math.nan, fit=ok and bool(g["fit"].all()),
                        untestable="; ".join(f"{r.part}: {r.needs}" for r in g.itertuples() if r.needs)))
    return pd.DataFrame(out)


# ---------------------------------------------------------------- the cached table of a study

POWER_VERSION = 2  # bumped whenever the simulation itself changes (a cached table of another version is stale)
FOLDER = Path("studies") / "power"  # committed beside the specs: a fresh clone knows each design's power


def cache_key(d: Design, sims: int, seed: int) -> str:
    """What a cached table depends on: the design, the world's numbers, the rules' tolerances, the simulation's
    version, the number of studies simulated and the seed."""
    world = dict(RUN_SD=RUN_SD, GAP_SD=GAP_SD, SEED_SD=SEED_SD, DOC_SD=DOC_SD, MARGIN_SD=MARGIN_SD, LEVELS=LEVELS,
                 BASE_CURVE=BASE_CURVE, HARD=HARD, MARGIN_LEVEL=MARGIN_LEVEL)
    rules = dict(FLAT_TOL=FLAT_TOL, MEASURABLE=MEASURABLE, NI_MARGIN=NI_MARGIN, JUMP_SHARE=JUMP_SHARE,
                 CAPABILITY_TOL=CAPABILITY_TOL, PEAK_TOL=PEAK_TOL)
    blob = json.dumps([d.key(), world, rules, POWER_VERSION, sims, seed], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def store(spec, sims: int = 1000, seed: int = 0, folder: str | Path | None = None, log=None) -> Path:
    """Simulate the spec's design and write `<folder>/<study>.csv` with `<study>.json` (its key, design, sims, seed,
    commit); returns the csv."""
    from rlearly.files import git_commit, write_atomic

    d = design_of(spec)
    folder = Path(folder or FOLDER)
    folder.mkdir(parents=True, exist_ok=True)
    table = simulate_parts(parts_of(d), d, sims, seed, log)
    out = folder / f"{spec.name}.csv"
    write_atomic(out, table.to_csv(index=False))
    meta = dict(key=cache_key(d, sims, seed), design=dataclasses.asdict(d) | {"units": {
        f"{m}@{i}": [list(x) for x in us] for (m, i), us in d.units.items()}}, sims=sims, seed=seed,
        version=POWER_VERSION, commit=git_commit(), sources=SOURCES,
        claim10_seeds=seed_power(d, sims=sims, seed=seed).to_dict("records"))
    write_atomic(out.with_suffix(".json"), json.dumps(meta, indent=1, default=str) + "\n")
    return out


def cached(spec, folder: str | Path | None = None, sims: int = 1000, seed: int = 0) -> pd.DataFrame | None:
    """The stored table of the spec's design, or None when there is none or it was made for another design, world,
    rules or simulation (then `rlearly study power SPEC` makes it)."""
    folder = Path(folder or FOLDER)
    f, meta = folder / f"{spec.name}.csv", folder / f"{spec.name}.json"
    if not f.is_file() or not meta.is_file():
        return None
    info = json.loads(meta.read_text())
    if info.get("key") != cache_key(design_of(spec), int(info.get("sims", sims)), int(info.get("seed", seed))):
        return None
    return pd.read_csv(f, keep_default_na=False, na_values=[""]).fillna({"needs": ""})


def status_lines(spec, folder: str | Path | None = None) -> list[str]:
    """What `rlearly study status` prints of the claims' power at the spec's design."""
    table = cached(spec, folder)
    if table is None:
        return [f"claims' power at this design: not computed for it; run `rlearly study power <spec>` "
                f"({FOLDER}/{spec.name}.csv)"]
    lines = [f"claims' power at this design ({int(table['sims'].max())} simulated studies a scenario; fit: held "
             f"≥ {POWER_MIN:.0%} when the paper's claim is true, ≤ {SIZE_MAX:.0%} when false):"]
    for r in claim_power(table).itertuples():
        if r.untestable:
            lines.append(f"  claim {r.claim}: not testable at this design ({r.untestable})")
        else:
            lines.append(f"  claim {r.claim}: power {r.power:.2f}, size {r.size:.3f}" + (" (fit)" if r.fit else
                                                                                       " (not fit)"))
    seeds = json.loads((Path(folder or FOLDER) / f"{spec.name}.json").read_text()).get("claim10_seeds")
    if seeds:
        t = pd.DataFrame(seeds)
        need = {sc: seeds_needed(t, sc) for sc in ("true", "sensitivity")}
        lines.append("  claim 10's spread test is fit from " + ", ".join(
            f"{n if n else 'more than ' + str(t['seeds'].max())} RL seeds a side ({sc})" for sc, n in need.items()))
    return lines
