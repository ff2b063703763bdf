"""The power check (rlearly.results.power): its pieces by hand, a rule that cannot hold and one that cannot fail both
flagged unfit, the design read from a spec's plan, and the cached table behind `rlearly study status`."""
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import special

from rlearly.evaluation.passk import spread_difference
from rlearly.evaluation.units import seed_spread_test, unit_contrast
from rlearly.results import power
from rlearly.results.claims import CONTRADICTED, HELD, NO_EFFECT, rules
from rlearly.study import load_study

STUDIES = Path(__file__).resolve().parents[1] / "studies"


def test_concentration_gives_the_asked_pass_at_k():
    """A Beta with mean 0.437 and the concentration found has pass@16 = 1 − E[(1 − p)^16] = 0.795 (RL's levels)."""
    c = power.concentration(0.437, 0.795, 16)
    a, b = 0.437 * c, 0.563 * c
    assert 1 - math.exp(special.betaln(a, b + 16) - special.betaln(a, b)) == pytest.approx(0.795, abs=1e-6)
    top = 1 - 0.563 ** 16  # the most pass@16 a mean of 0.437 allows (every problem at the mean)
    assert power.concentration(0.437, 0.999, 16) == power.concentration(0.437, top * 0.999, 16)  # clipped to it


def test_effects_are_the_papers_scaled_to_this_world():
    """A gain keeps its share of the headroom: the paper's RL +42.2 pp over a base of 14% (49% of the headroom) on a
    base of 0.107 is +0.438; a loss keeps its share of the level; the paper's curves end at this world's levels."""
    assert power.headroom_gain(14.0, 56.2, 0.107) == pytest.approx(42.2 / 86 * 0.893)
    assert power.relative_change(87.6, 80.1, 0.841) == pytest.approx(-7.5 / 87.6 * 0.841)
    assert power.paper_at("rl", 1.0) == pytest.approx(power.LEVELS["rl"])
    assert power.paper_at("base", 2 / 44) == pytest.approx((1.5 / 14 * 0.107, 14.3 / 68.8 * 0.623))


def _design(**kw):
    base = dict(name="made-up", problems=200, n=8, k_max=8, shares=(0.5, 1.0), units={}, hard_problems=0,
                hard_runs={}, rollout_arms=False, plateau_arm=False, readiness_runs=1, documents=50, probes=50)
    return power.Design(**(base | kw))


def test_a_rule_that_cannot_hold_and_one_that_cannot_fail_are_both_unfit():
    """Made-up parts: one always held (size 1), one never held (power 0), and a fair one-sided test of a real gap
    (power high, size about 2.5%): only the last is fit."""
    units = ((0, 0),)

    def fair(sim, scenario, effect):  # nothing varies but the problems and samples, which the interval covers
        gap = 0.0 if scenario == "false" else 0.08 * effect
        a = sim.cell(0.3 + gap, 0.6, units, seed_sd=0.0)
        b = sim.cell(0.3, 0.6, ((0, 1),), seed_sd=0.0)
        return rules.sig_verdict(*unit_contrast(a, b, units, ((0, 1),))[1:3])
    parts = [(1, "always", "", lambda s, sc, e: HELD), (2, "never", "", lambda s, sc, e: NO_EFFECT),
             (3, "fair", "", fair), (4, "untestable", "needs a second run", None)]
    table = power.simulate_parts(parts, _design(), sims=200)
    fit = table[table["scenario"] == "true"].set_index("part")
    assert fit.loc["always", "size"] == 1.0 and not fit.loc["always", "fit"]
    assert fit.loc["never", "power"] == 0.0 and not fit.loc["never", "fit"]
    assert fit.loc["fair", "power"] >= 0.9 and fit.loc["fair", "size"] <= 0.06 and fit.loc["fair", "fit"]
    assert not fit.loc["untestable", "fit"] and fit.loc["untestable", "sims"] == 0
    claims = power.claim_power(table).set_index("claim")
    assert claims.loc[4, "untestable"] == "untestable: needs a second run" and math.isnan(claims.loc[4, "power"])


def test_claim10s_old_rule_could_never_hold_at_three_seeds_and_the_new_one_can():
    """At three RL seeds a side, the old bootstrap over seeds never held, whatever the spread (power 0: unfit); the
    F-test holds most of the time under the paper's spread and about 5% under equal spreads."""
    d = _design(problems=300, n=16, k_max=16)
    seeds_a, seeds_b = tuple((0, s) for s in range(3)), tuple((0, s) for s in range(3))

    def rule(old):
        def simulate(sim, scenario, effect):
            sd_a, sd_b = (0.008, 0.008) if scenario == "false" else (0.079 * effect, 0.004)
            a = sim.cell(0.2, 0.45, seeds_a, seed_sd=sd_a)
            b = sim.cell(0.437, 0.795, seeds_b, seed_sd=sd_b)
            if old:
                low = spread_difference((a * 16).round(), (b * 16).round(), 16, n_boot=200)[2]
                return HELD if low > 0 else NO_EFFECT
            t = seed_spread_test(a, b)
            return HELD if t["held"] else CONTRADICTED if t["reversed"] else NO_EFFECT
        return simulate
    table = power.simulate_parts([(10, "old", "", rule(True)), (10, "new", "", rule(False))], d, sims=150)
    t = table[table["scenario"] == "true"].set_index("part")
    assert t.loc["old", "power"] == 0.0 and not t.loc["old", "fit"]
    assert t.loc["new", "power"] >= 0.7 and t.loc["new", "size"] <= 0.1


def test_the_seeds_claim10_asks_for():
    t = pd.DataFrame([dict(seeds=s, scenario=sc, held=h) for s, hs in ((2, (0.3, 0.04, 0.1)), (3, (0.85, 0.05, 0.5)),
                                                                       (4, (0.95, 0.05, 0.82)))
                      for sc, h in zip(("true", "false", "sensitivity"), hs)])
    assert power.seeds_needed(t) == 3 and power.seeds_needed(t, "sensitivity") == 4
    assert power.seeds_needed(t.assign(held=0.5)) is None
    d = _design(problems=300, n=16, k_max=16)
    got = power.seed_power(d, counts=(2, 3), sims=100).set_index(["seeds", "scenario"])["held"]
    assert got[(3, "true")] > got[(2, "true")] and got[(3, "false")] <= 0.1


def test_the_design_is_read_from_the_specs_plan():
    d = power.design_of(load_study(STUDIES / "late.yaml"))
    assert d.problems == 500 and d.n == 16 and d.k_max == 16 and len(d.shares) == 6 and d.shares[-1] == 1.0
    assert d.units[("rl", 5)] == ((0, 0), (0, 1), (0, 2), (1, 0), (2, 0))  # run 0's three seeds, runs 1 and 2
    assert d.units[("sft", 5)] == ((0, 0), (1, 0), (2, 0)) and d.units[("base", 5)] == ((0, 0), (1, 1), (2, 2))
    assert d.hard_runs == {"targeted_mix": 3, "wider_model": 3} and d.rollout_arms and d.plateau_arm
    assert d.readiness_runs == 1
    assert d.documents == 200 and d.probes > 100
    assert power.design_of(load_study(STUDIES / "default.yaml")).key() != d.key()


def test_the_cached_table_is_what_status_prints_and_goes_stale(tmp_path, monkeypatch, capsys):
    spec = load_study(STUDIES / "tiny.yaml")
    assert power.cached(spec, tmp_path) is None
    assert "not computed" in power.status_lines(spec, tmp_path)[0]
    out = power.store(spec, sims=20, folder=tmp_path)
    table = power.cached(spec, tmp_path, sims=20)
    assert out.is_file() and table is not None and set(table["scenario"]) == {"true", "false", "sensitivity"}
    lines = power.status_lines(spec, tmp_path)
    assert lines[0].startswith("claims' power at this design (20 simulated studies") and len(lines) == 12
    assert lines[-1].startswith("  claim 10's spread test is fit from")
    monkeypatch.setattr(power, "RUN_SD", 0.1)  # another world's spread: the stored table no longer applies
    assert power.cached(spec, tmp_path) is None
    assert np.isfinite(table[table["needs"] == ""]["held"]).all()
