"""The verdict rules fixed in issue 37, each on made-up data where the old rule gave the wrong verdict and the new
one gives the right one (tests/test_claims.py's MadeUp writes the tables and sample store a real study would)."""
import numpy as np

from rlearly.results import claims
from rlearly.results.analysis import CAPABILITY_TOL
from rlearly.results.claims import rules
from test_claims import DOCS, MadeUp, N, T, c, noise


def verdicts(root) -> dict:
    return {cl.id: cl for cl in claims.claims(root)}


def parts(cl) -> dict:
    return {p.rule.part: p.verdict for p in cl.parts}


def test_no_gain_is_not_judged_where_both_sides_score_zero(tmp_path):
    """The first checkpoint's base and RL both solve nothing (pass@8 0): the old rule judged 'no gain at the first
    checkpoint' there, and an interval of [0, 0] lies inside ±0.02, so it held. The new one judges the earliest
    checkpoint whose base reaches pass@k_max 0.05, where RL already gains: contradicted."""
    m = MadeUp(tmp_path)
    zero, base = c((40, 0)), c((16, 2), (24, 0))
    m.ev("base", T[0], zero)
    m.ev("rl", T[0], zero)
    for t, g in zip(T[1:], (3, 4, 5)):
        m.ev("base", t, base)
        m.ev("rl", t, np.minimum(base + g * (base > 0), N))
    cl = verdicts(m.write())[1]
    old = claims.Part(claims.Rule("", "", "", "", ""))
    rules._within(old, 0.0, 0.0, claims.FLAT_TOL)
    assert old.verdict == claims.HELD  # what the old rule concluded from two zeros
    assert parts(cl)["no gain where the base is first measurable"] == claims.CONTRADICTED
    assert cl.stats["dpass1_first_measurable"] > 0.1


def test_a_large_jump_is_a_share_of_the_final_gain_not_any_significant_gain(tmp_path):
    """RL gains a significant +0.03 at 2k (half-way) and +0.3 only at 3k and 4k: the old rule placed the
    threshold at 2k, in the first half, and held 'early'; the jump the paper means (a third of the final gain)
    comes at 3k, in the second half: contradicted."""
    m = MadeUp(tmp_path)
    base = c((20, 2), (20, 0))
    rl = {1000: base, 2000: np.where(np.arange(40) < 10, np.minimum(base + 1, N), base),
          3000: np.minimum(base + 5 * (base > 0), N), 4000: np.minimum(base + 6 * (base > 0), N)}
    for t in T:
        m.ev("base", t, base)
        m.ev("rl", t, rl[t])
    cl = verdicts(m.write())[1]
    assert cl.stats["threshold_tokens"] == 2000  # the old rule's position: 2k of 4k, held
    assert cl.stats["jump_tokens"] == 3000 and parts(cl)["a large jump early"] == claims.CONTRADICTED


def test_sft_erodes_capability_only_beyond_the_tolerance_rl_keeps_it_within(tmp_path):
    """RL's NLL is +0.5% over the base's (kept: within the 1% tolerance); SFT's is +0.5% over RL's, significant but
    inside that same tolerance. The old rule judged SFT against RL with no tolerance and held 'SFT erodes it'; the
    new one uses the same 1% on both sides: SFT keeps capability as RL does, the part is contradicted."""
    m = MadeUp(tmp_path)
    for t in T:
        m.ev("base", t, c((20, 2), (20, 0)))
        m.ev("rl", t, c((20, 3), (20, 0)))
        m.ev("sft", t, c((20, 3), (20, 0)))
        m.docs("base", t, DOCS + noise(t))
        m.docs("rl", t, DOCS * 1.005 + noise(t + 1))
        m.docs("sft", t, DOCS * 1.01 + noise(t + 2))
        for method in ("base", "rl", "sft"):
            m.probes(method, t, 160)
    cl = verdicts(m.write())[6]
    erode = next(p for p in cl.parts if p.rule.part == "SFT erodes it")
    low = cl.stats["dnll_rel_minus_rl_low.sft"]
    assert 0 < low < CAPABILITY_TOL  # significant, but within the tolerance
    assert parts(cl)["RL keeps capability"] == claims.HELD and erode.verdict == claims.CONTRADICTED


def test_parallel_at_least_the_best_is_non_inferiority(tmp_path):
    """Parallel's pass@8 equals RL's (the best) to within noise: the old rule asked it to be significantly above
    the best at every checkpoint ('no significant effect'); the paper says '≥': non-inferior within 0.02, held.
    One far below the best is contradicted."""
    def study(root, parallel):
        m = MadeUp(root)
        rl = c((30, 2), (10, 0))
        for t in T:
            m.ev("base", t, c((20, 1), (20, 0)))
            m.ev("rl", t, rl)
            m.ev("sft", t, c((20, 2), (20, 0)))
        m.ev("parallel", T[-1], parallel)
        return verdicts(m.write())[7]
    same = study(tmp_path / "same", c((30, 2), (10, 0)))
    assert parts(same)["≥ the best on pass@k_max"] == claims.HELD
    worse = study(tmp_path / "worse", c((10, 2), (30, 0)))
    assert parts(worse)["≥ the best on pass@k_max"] == claims.CONTRADICTED


def test_readiness_is_judged_with_tokens_held_fixed(tmp_path):
    """Base readiness and RL's gain both rise with tokens, but among pretraining arms at the same checkpoint the
    more ready one gains *less*. The old rule (Spearman over checkpoints) held 'readiness predicts the gain' (tokens
    alone give the same ρ); the new one compares arms at the same tokens: contradicted."""
    from rlearly.evaluation.passk import spearman_permutation

    m = MadeUp(tmp_path)
    base = c((20, 2), (20, 0))
    for arm, ready_extra, gain in (("main", 0, 3), ("a1", 2, 2), ("a2", 4, 1)):
        for i, t in enumerate(T):
            ready = 4 + 6 * i + ready_extra
            m.ev("base", t, base, arm=arm)
            m.ev("base", t, c((ready, 1), (40 - ready, 0)), split="train", arm=arm)
            m.ev("rl", t, np.minimum(base + (i * gain) * (base > 0), N), arm=arm)
    cl = verdicts(m.write())[2]
    rho, p = spearman_permutation([4, 10, 16, 22], [0, 1, 2, 3])  # the main arm, across checkpoints
    assert rho == 1.0 and p < 0.05 and cl.stats["spearman_tokens_alone"] == 1.0  # the old rule's 'held'
    assert parts(cl)["readiness predicts the gain beyond tokens"] == claims.CONTRADICTED


def test_a_judgement_on_the_sealed_split_reads_the_hard_claim_on_sealed_hard(tmp_path):
    """Judged on `sealed`, claim 9 reads `sealed_hard` (made at the level chosen on dev_hard), never the old `hard`:
    here `hard` says the wider model gains more, `sealed_hard` the targeted mix."""
    m = MadeUp(tmp_path)
    m.arms |= {"mix": "targeted_mix", "wide": "wider_model"}
    for t in T:
        m.ev("base", t, c((20, 2), (20, 0)), split="sealed")
        m.ev("rl", t, c((20, 4), (20, 0)), split="sealed")
    for arm, old, new in (("main", 1, 1), ("mix", 1, 4), ("wide", 4, 1)):
        for split, g in (("hard", old), ("sealed_hard", new)):
            m.ev("base", T[-1], c((20, 1), (20, 0)), split=split, arm=arm)
            m.ev("rl", T[-1], c((20, 1 + g), (20, 0)), split=split, arm=arm)
    root = m.write()
    on_test = {cl.id: cl for cl in claims.claims(root)}[9]
    on_sealed = {cl.id: cl for cl in claims.claims(root, split="sealed")}[9]
    assert on_test.verdict == claims.NOT_MEASURED  # judged on test, the main arm has no test evaluations
    assert on_sealed.verdict == claims.HELD and on_sealed.parts[0].value.startswith("sealed_hard-split")
    assert on_sealed.stats["targeted_minus_wider"] > 0
