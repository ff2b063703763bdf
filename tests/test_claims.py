"""The claims' verdict rules on made-up studies: one built so every part holds, one built to contradict every
rule, one where nothing is scored, and the rules' own edge cases (a rule that cannot fail is not a test)."""
import math

import numpy as np
import pandas as pd
import pytest

from rlearly.evaluation import passk as pk
from rlearly.evaluation.store import SampleStore
from rlearly.results import analysis, claims
from rlearly.results.claims import rules

N, TASK = 8, "synthetic-made-up"
T = (1000, 2000, 3000, 4000)


def c(*groups):
    """c((8, 2), (32, 0)) -> 8 problems with 2 of N correct, then 32 with 0 (40 problems in all)."""
    out = np.concatenate([np.full(size, v) for size, v in groups])
    assert len(out) == 40, len(out)
    return out


class MadeUp:
    """A study's tables and sample store from per-problem correct counts, written the way study.write_tables
    and evaluate write them, so the claims read them through the same code as a real study's."""

    def __init__(self, root):
        self.root, self.evals, self.items, self.branch, self.arms = root, {}, {}, [], {}

    def ev(self, method, t, counts, seed=0, split="test", arm="main", fmt=0.5, pretrain_seed=0):
        self.evals[arm, method, t, seed, split, pretrain_seed] = (np.asarray(counts), fmt)

    def docs(self, method, t, values, seed=0, metric="doc_nll"):
        self.items[method, t, seed, metric] = np.asarray(values)

    def probes(self, method, t, right: int, seed=0):
        """200 cloze probes, the first `right` of them answered correctly."""
        self.docs(method, t, (np.arange(200) < right).astype(float), seed, "probe_correct")

    def write(self):
        store, passk_rows, item_rows = SampleStore(self.root / "samples"), [], []
        for (arm, method, t, seed, split, ps), (cs, fmt) in self.evals.items():
            cid = f"{arm}-{method}-{t}-{seed}" + (f"-p{ps}" if ps else "")
            store.add([dict(task=TASK + split, checkpoint_id=cid, split=split, problem_id=f"p{i:02d}", sample_index=j,
                            seed=0, completion="x", tokens=1, correct=bool(j < ci), logprob=-1.0, finished=True,
                            temperature=0.6, top_p=0.95, prompt_mode="zero-shot") for i, ci in enumerate(cs)
                       for j in range(N)])
            for k in (1, 2, 4, 8):
                lo, hi = pk.bootstrap_ci(cs, N, k)
                passk_rows.append(dict(arm=arm, checkpoint_id=cid, method=method, parent_tokens=t, seed=seed,
                                       pretrain_seed=ps, split=split, task_id=TASK + split, prompt_mode="zero-shot", n=N,
                                       format_rate=fmt, k=k, pass_at_k=float(np.mean(pk.pass_at_k(N, cs, k))),
                                       ci_low=lo, ci_high=hi))
        for (method, t, seed, metric), vs in self.items.items():
            item_rows += [dict(arm="main", checkpoint_id=f"main-{method}-{t}-{seed}", method=method, parent_tokens=t,
                               seed=seed, metric=metric, item=i, value=v) for i, v in enumerate(vs)]
        folder = self.root / "tables"
        folder.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(passk_rows).to_csv(folder / "passk.csv", index=False)
        pd.DataFrame(item_rows).to_csv(folder / "general_items.csv", index=False)
        pd.DataFrame(columns=["arm", "method", "parent_tokens", "seed", "metric", "value"]).to_csv(
            folder / "general.csv", index=False)
        pd.DataFrame(self.branch or [dict(arm="main", method="rl", parent_tokens=T[0], seed=0, step=1)]).to_csv(
            folder / "branch_metrics.csv", index=False)
        pd.DataFrame([dict(arm="main", step=1, tokens=t, loss=1.0) for t in T]).to_csv(
            folder / "pretrain_metrics.csv", index=False)
        pd.DataFrame([dict(arm=a, label=a, role=r) for a, r in {"main": None, **self.arms}.items()]).to_csv(
            folder / "arms.csv", index=False)
        pd.DataFrame([dict(arm="main", split=s, adversary="random_chain", k=k, pass_at_k=0.001 * k)
                      for s in ("test", "train", "hard") for k in (1, 2, 4, 8)]).to_csv(folder / "floor.csv", index=False)
        return self.root

    def budget(self, arm, group, steps, tokens_per_rollout):
        self.branch += [dict(arm=arm, method="rl", parent_tokens=T[-1], seed=0, step=s, prompts_per_step=4,
                             group_size=group, response_len=tokens_per_rollout, **{"val_pass@1": 0.1 * s}) for s in steps]


DOCS = 3.0 + np.random.default_rng(0).normal(0, 0.3, 60)


def noise(seed):
    return np.random.default_rng(seed).normal(0, 0.001, 60)


def held_study(root):
    """Every part of every claim holds by construction (the comments give the intended contrast)."""
    m = MadeUp(root)
    base = {1000: c((2, 1), (38, 0)), 2000: c((8, 2), (32, 0)), 3000: c((12, 2), (28, 0)), 4000: c((16, 2), (24, 0))}
    rl = {1000: base[1000], 2000: c((8, 4), (8, 1), (24, 0)), 3000: c((12, 5), (10, 1), (18, 0)),
          4000: c((16, 6), (12, 1), (12, 0))}  # flat at 1k, then gains in pass@1 and pass@8 that grow
    train = {1000: c((2, 1), (38, 0)), 2000: c((5, 1), (35, 0)), 3000: c((10, 1), (30, 0)), 4000: c((20, 1), (20, 0))}
    for t in T:
        m.ev("base", t, base[t])
        m.ev("base", t, train[t], split="train")
        m.ev("rl", t, rl[t])
        m.ev("sft", t, c((20, 4), (20, 1)) if t < 4000 else c((10, 4), (20, 1), (10, 0)))  # RL passes SFT at 4k
        m.docs("base", t, DOCS + noise(t))
        m.docs("rl", t, DOCS + noise(t + 1))  # RL keeps held-out NLL
        m.docs("sft", t, DOCS + 0.1 + noise(t + 2))  # SFT erodes it
        m.probes("base", t, 160)
        m.probes("rl", t, 160)
        m.probes("sft", t, 120)  # and its probe accuracy: 0.80 -> 0.60
    for t in (1000, 2000):
        m.ev("sft_gold", t, c((40, 3)))  # pass@8 1.0 against RL's 0.05 and 0.4
        m.docs("sft_gold", t, DOCS + 0.1 + noise(t + 3))
        m.probes("sft_gold", t, 110)
    m.ev("sft_gold_rl", 2000, c((40, 6)))  # the best pass@1 there
    m.ev("sft_rl", 4000, c((20, 8), (5, 1), (15, 0)))  # against SFT: pass@1 up, pass@8 down
    m.ev("parallel", 4000, c((16, 4), (24, 1)))  # pass@8 1.0 > SFT's 0.75; pass@1 0.28 between SFT 0.19 and RL 0.34
    m.docs("parallel", 4000, DOCS + noise(9))
    # five RL seeds at 2k with gains of 2..6 (a spread at the threshold) and at 4k all alike
    for seed, g in zip(range(1, 5), (2, 3, 4, 4)):
        m.ev("rl", 2000, c((8, 2 + g), (8, 1), (24, 0)), seed=seed)
        m.ev("rl", 4000, rl[4000], seed=seed)
    # rollout budget: G=8 beats G=2 at equal prompts; G=2 beats G=8 stopped at G=2's tokens
    m.arms |= {"few": "rollouts_few", "many": "rollouts_many", "short": "rollouts_same_tokens",
               "plateau": "rollouts_few_plateau"}
    m.ev("rl", 4000, c((20, 3), (20, 0)), arm="few")
    m.ev("rl", 4000, c((20, 6), (20, 2)), arm="many")
    m.ev("rl", 4000, c((20, 6), (20, 2)), arm="plateau")  # trained to its plateau, few reaches many's peak
    m.ev("rl", 4000, c((20, 1), (20, 0)), arm="short")
    m.budget("few", 2, (1, 2, 3, 4), 10.0)
    m.budget("many", 8, (1, 2, 3, 4), 10.0)
    m.budget("short", 8, (1,), 10.0)
    # two more pretraining arms at the same checkpoints, less ready and gaining less: readiness predicts the
    # gain with tokens held fixed (claim 2)
    for arm, less in (("r1", 1), ("r2", 2)):
        for t in T[1:]:
            m.ev("base", t, base[t], arm=arm)
            ready = int(train[t].sum()) - less  # problems with a correct sample on the train split
            m.ev("base", t, c((ready, 1), (40 - ready, 0)), split="train", arm=arm)
            m.ev("rl", t, np.maximum(rl[t] - less * (rl[t] > base[t]), base[t]), arm=arm)
    # composition vs scale on the hard split: the targeted mix gains +4 per problem, the wider model +1
    m.arms |= {"mix": "targeted_mix", "wide": "wider_model"}
    for arm, g in (("main", 1), ("mix", 4), ("wide", 1)):
        m.ev("base", 4000, c((20, 1), (20, 0)), split="hard", arm=arm)
        m.ev("rl", 4000, c((20, 1 + g), (20, 0)), split="hard", arm=arm)
    return m.write()


def contradicting_study(root):
    """Every rule's claim turned the other way (or to nothing), as a study that refutes the paper would be."""
    m = MadeUp(root)
    base = {t: c((16, 2), (24, 0)) for t in T}
    rl = {1000: c((16, 6), (24, 0)), 2000: c((16, 5), (24, 0)), 3000: c((16, 3), (24, 0)), 4000: c((16, 1), (24, 0))}
    train = {1000: c((20, 1), (20, 0)), 2000: c((10, 1), (30, 0)), 3000: c((5, 1), (35, 0)), 4000: c((1, 1), (39, 0))}
    for t in T:  # RL sharpens (pass@1 up where pass@8 stays) early and hurts late; readiness anti-correlated
        m.ev("base", t, base[t])
        m.ev("base", t, train[t], split="train")
        m.ev("rl", t, rl[t])
        m.ev("sft", t, c((30, 6), (5, 1), (5, 0)) if t > 1000 else c((16, 2), (24, 0)))  # RL ahead only at 1k
        m.docs("base", t, DOCS + noise(t))
        m.docs("rl", t, DOCS + 0.2 + noise(t + 1))  # RL erodes held-out NLL by ~7%
        m.docs("sft", t, DOCS + noise(t + 2))  # ... and SFT does not
        m.probes("base", t, 160)
        m.probes("rl", t, 120)
        m.probes("sft", t, 160)  # SFT answers more probes than RL
    for t in (1000, 2000):
        m.ev("sft_gold", t, c((10, 1), (30, 0)))  # SFT-Gold behind RL on pass@8
        m.docs("sft_gold", t, DOCS + noise(t + 3))
        m.probes("sft_gold", t, 170)
    m.ev("sft_gold_rl", 2000, c((10, 1), (30, 0)))  # the worst pass@1
    m.ev("sft_rl", 4000, c((30, 3), (10, 1)))  # against SFT: pass@1 down and pass@8 up (it expands)
    m.ev("parallel", 4000, c((5, 1), (35, 0)))  # loses on pass@8, below both on pass@1
    m.docs("parallel", 4000, DOCS + 0.4 + noise(9))  # and erodes capability against RL
    for seed in range(1, 5):  # seeds alike at the first multi-seed checkpoint, spread at the last
        m.ev("rl", 1000, rl[1000], seed=seed)
        m.ev("rl", 4000, np.minimum(rl[4000] + seed * (rl[4000] > 0), N), seed=seed)
    m.arms |= {"few": "rollouts_few", "many": "rollouts_many", "short": "rollouts_same_tokens",
               "plateau": "rollouts_few_plateau"}
    m.ev("rl", 4000, c((20, 6), (20, 2)), arm="few")  # few rollouts better per prompt
    m.ev("rl", 4000, c((20, 2), (20, 0)), arm="many")
    m.ev("rl", 4000, c((20, 8), (20, 4)), arm="plateau")  # and its plateau far above many's
    m.ev("rl", 4000, c((20, 7), (20, 3)), arm="short")  # and many better per token
    m.budget("few", 2, (1, 2, 3, 4), 10.0)
    m.budget("many", 8, (1, 2, 3, 4), 10.0)
    m.budget("short", 8, (1,), 10.0)
    for arm, more in (("r1", 1), ("r2", 2)):  # arms more ready at the same checkpoints but gaining less
        for t in T:
            ready = int(train[t].sum()) + more
            m.ev("base", t, base[t], arm=arm)
            m.ev("base", t, c((ready, 1), (40 - ready, 0)), split="train", arm=arm)
            m.ev("rl", t, np.maximum(rl[t] - more * (rl[t] > 0), 0), arm=arm)
    m.arms |= {"mix": "targeted_mix", "wide": "wider_model"}
    for arm, g in (("main", 1), ("mix", 1), ("wide", 4)):  # the wider model gains more
        m.ev("base", 4000, c((20, 1), (20, 0)), split="hard", arm=arm)
        m.ev("rl", 4000, c((20, 1 + g), (20, 0)), split="hard", arm=arm)
    return m.write()


@pytest.fixture(scope="module")
def held(tmp_path_factory):
    return {cl.id: cl for cl in claims.claims(held_study(tmp_path_factory.mktemp("held")))}


@pytest.fixture(scope="module")
def refuted(tmp_path_factory):
    return {cl.id: cl for cl in claims.claims(contradicting_study(tmp_path_factory.mktemp("refuted")))}


def parts(cl):
    return {p.rule.part: p.verdict for p in cl.parts}


def untestable(cl) -> set:
    """The parts the world cannot test at any design (their why says so): never held, never failed."""
    return {p.rule.part for p in cl.parts if p.why.startswith("not testable")}


def test_every_claim_holds_on_the_study_built_for_it(held):
    for i, cl in held.items():
        if untestable(cl):  # claim 8's Easy/Hard part: the world builds no such training split
            assert cl.verdict == claims.PARTLY, (i, parts(cl), cl.why)
            assert {n for n, v in parts(cl).items() if v != claims.HELD} == untestable(cl), (i, parts(cl))
        else:
            assert cl.verdict == claims.HELD, (i, parts(cl), cl.why)
    assert untestable(held[8]) == {"few rollouts better per FLOP on hard prompts"}
    assert held[1].stats["threshold_tokens"] == 2000 and held[1].stats["dpass1_first"] == 0.0
    # claim 2 within checkpoints: 3 pretraining arms at 3 checkpoints, all 9 pairs concordant, exact p = 1 / 3!^3
    assert held[2].stats["concordance"] == 9 and held[2].stats["concordance_p"] == pytest.approx(1 / 216)
    assert held[2].stats["spearman_tokens_alone"] == pytest.approx(1.0)  # what tokens alone would have "shown"
    assert held[4].stats["dpass1"] == pytest.approx((160 + 5) / 320 - (40 + 20) / 320)
    assert held[4].stats["dpasskmax"] == pytest.approx(25 / 40 - 30 / 40)
    assert held[6].stats["dnll_rel_minus_rl.sft"] == pytest.approx(0.1 / DOCS.mean(), rel=0.02)
    assert held[6].stats["dprobe_correct_minus_rl.sft"] == pytest.approx(-0.2)  # made-up studies: accuracy items
    assert held[6].stats["dprobe_correct.rl"] == 0.0
    assert all("guessing floor" not in cl.floor and cl.floor != "not computed" for cl in held.values())
    assert held[9].floor.startswith("hard: pass@1 0.001")


def test_every_rule_fails_on_the_study_built_to_contradict_it(refuted):
    """A rule that cannot fail is not a test: no claim is held, and each part is contradicted or shows no
    effect (never 'held', never silently 'not measured')."""
    for i, cl in refuted.items():
        assert cl.verdict in (claims.CONTRADICTED, claims.NO_EFFECT), (i, parts(cl), cl.why)
        for name, v in parts(cl).items():
            assert v in (claims.CONTRADICTED, claims.NO_EFFECT) or name in untestable(cl), (i, name, v, cl.why)
    assert parts(refuted[1])["no gain where the base is first measurable"] == claims.CONTRADICTED  # RL +0.5 at 1k
    assert parts(refuted[3])["pass@k_max up wherever pass@1 is"] in (claims.CONTRADICTED, claims.NO_EFFECT)
    assert parts(refuted[6])["RL keeps capability"] == claims.CONTRADICTED
    assert parts(refuted[6])["SFT lowers the probes' margins"] == claims.CONTRADICTED
    assert parts(refuted[9])["the targeted mix gains more than the wider model"] == claims.CONTRADICTED


def test_a_branch_that_never_scores_an_answer_measures_nothing(tmp_path):
    """Claim 1's 'flat at the first checkpoint' passes trivially when nothing is boxed (CI [0, 0]): then it is
    not measured, and the claim cannot be held."""
    m = MadeUp(tmp_path)
    for t, g in zip(T, (0, 2, 3, 4)):
        b = c((16, 2), (24, 0))
        m.ev("base", t, b, fmt=0.0 if t == 1000 else 0.5)
        m.ev("rl", t, b if t == 1000 else np.minimum(b + g * (b > 0), N), fmt=0.01 if t == 1000 else 0.5)
    cl = {x.id: x for x in claims.claims(m.write())}[1]
    assert parts(cl)["no gain where the base is first measurable"] == claims.NOT_MEASURED and "scored answer" in cl.why
    assert parts(cl)["a threshold"] == claims.HELD and cl.verdict == claims.PARTLY


def test_claim_verdicts_need_every_part_measured_and_held():
    P = lambda v: claims.Part(claims.Rule("p", "", "", "", ""), v)  # noqa: E731
    assert claims.claim_verdict([P(claims.HELD), P(claims.HELD)]) == claims.HELD
    assert claims.claim_verdict([P(claims.HELD), P(claims.NOT_MEASURED)]) == claims.PARTLY
    assert claims.claim_verdict([P(claims.HELD), P(claims.CONTRADICTED)]) == claims.PARTLY
    assert claims.claim_verdict([P(claims.NO_EFFECT), P(claims.CONTRADICTED)]) == claims.CONTRADICTED
    assert claims.claim_verdict([P(claims.NO_EFFECT), P(claims.NOT_MEASURED)]) == claims.NO_EFFECT
    assert claims.claim_verdict([P(claims.NOT_MEASURED)]) == claims.NOT_MEASURED


def test_part_helpers_by_hand():
    P = lambda: claims.Part(claims.Rule("p", "", "", "", ""))  # noqa: E731
    for low, high, want in ((0.01, 0.2, claims.HELD), (-0.2, -0.01, claims.CONTRADICTED), (-0.1, 0.1, claims.NO_EFFECT),
                            (math.nan, 0.1, claims.NOT_MEASURED)):  # a missing CI is not 'not significant'
        p = P()
        rules._sig(p, low, high)
        assert p.verdict == want
    for low, high, want in ((-0.01, 0.015, claims.HELD), (0.03, 0.1, claims.CONTRADICTED), (-0.01, 0.05, claims.NO_EFFECT)):
        p = P()
        rules._within(p, low, high, 0.02)
        assert p.verdict == want, (low, high)
    for low, high, want in ((-0.5, 0.009, claims.HELD), (0.011, 0.03, claims.CONTRADICTED), (0.0, 0.02, claims.NO_EFFECT)):
        p = P()
        rules._at_most(p, low, high, 0.01)
        assert p.verdict == want, (low, high)
    for low, high, want in ((0.011, 0.05, claims.HELD), (-0.1, 0.01, claims.CONTRADICTED), (0.0, 0.05, claims.NO_EFFECT)):
        assert rules.beyond_verdict(low, high, 0.01) == want, (low, high)
    for low, high, want in ((-0.019, 0.1, claims.HELD), (-0.1, -0.021, claims.CONTRADICTED), (-0.05, 0.0, claims.NO_EFFECT)):
        assert rules.non_inferior_verdict(low, high, 0.02) == want, (low, high)
    assert rules.all_verdict([claims.HELD, claims.NO_EFFECT]) == claims.NO_EFFECT
    assert rules.all_verdict([claims.HELD, claims.CONTRADICTED]) == claims.CONTRADICTED
    assert rules.all_verdict([]) == claims.NOT_MEASURED


def test_the_power_check_decides_with_the_claims_own_verdict_functions():
    from rlearly.results import power

    for name in ("sig_verdict", "within_verdict", "at_most_verdict", "beyond_verdict", "non_inferior_verdict",
                 "all_verdict"):
        assert getattr(power, name) is getattr(rules, name), name


def test_one_seed_intervals_say_so_and_several_seeds_are_resampled(tmp_path):
    root = held_study(tmp_path)
    passk = pd.read_csv(root / "tables" / "passk.csv")
    d = analysis.contrast(root, passk, "rl", "base", [1])
    assert d.set_index("parent_tokens")["covers"].to_dict() == {
        1000: "problems (one unit a side)", 2000: "seeds (5 vs 1) and problems", 3000: "problems (one unit a side)",
        4000: "seeds (5 vs 1) and problems"}
    one = d.set_index("parent_tokens").loc[2000]
    # the two-stage interval is wider than the problems-only interval of seed 0 alone
    only0 = analysis.contrast(root, passk[passk["seed"] == 0], "rl", "base", [1]).set_index("parent_tokens").loc[2000]
    assert one["high"] - one["low"] > only0["high"] - only0["low"]


def test_rule_table_gives_every_part_its_statistic_null_tolerance_and_interval():
    rules = claims.rules_frame()
    assert len(rules) == sum(len(u.rules) for u in claims.CLAIMS.values()) >= 17
    assert not (rules == "").any().any()
    assert sorted(claims.CLAIMS) == list(range(1, 11))


def test_a_claim_that_lacks_its_runs_is_not_measured_and_says_what_it_needs(tmp_path):
    m = MadeUp(tmp_path)
    for t in T:
        m.ev("base", t, c((16, 2), (24, 0)))
        m.ev("rl", t, c((16, 4), (24, 0)))
    cl = {x.id: x for x in claims.claims(m.write())}
    assert cl[9].verdict == claims.NOT_MEASURED and "role targeted_mix, wider_model" in cl[9].why
    assert cl[4].verdict == claims.NOT_MEASURED and "methods sft, sft_rl" in cl[4].why
    assert cl[5].verdict == claims.NOT_MEASURED
    res = claims.claims_results(list(cl.values()))
    assert res["claims_not_measured"] >= 5 and all(v is None or math.isfinite(v) for v in res.values())


def test_contrasts_read_their_intervals_from_the_stored_samples(tmp_path):
    root = held_study(tmp_path)
    passk = pd.read_csv(root / "tables" / "passk.csv")
    d = analysis.contrast(root, passk, "sft_rl", "sft", [1, 8]).set_index("k")
    assert d.loc[8, "low"] <= d.loc[8, "diff"] <= d.loc[8, "high"] < 0  # SFT→RL loses pass@8 significantly
    assert d.loc[8, "diff"] == pytest.approx(25 / 40 - 30 / 40)
    # without the samples the differences still come from the tables, with no interval (and no verdict)
    d2 = analysis.contrast(root / "elsewhere", passk, "sft_rl", "sft", [1, 8]).set_index("k")
    assert d2["diff"].tolist() == d["diff"].tolist() and d2["low"].isna().all()


def test_the_summary_says_what_the_intervals_resample(tmp_path):
    root = held_study(tmp_path)
    tables = analysis.load_tables(root)
    note = claims.intervals_note(tables)
    assert "rl at 2k (5 seeds)" in note and "one seed: the interval covers problems only" in note
    cl = {x.id: x for x in claims.claims(root, tables)}
    assert "(seeds (5 vs 1) and problems)" in cl[1].measured  # the multi-seed checkpoints say so
    one = MadeUp(tmp_path / "one")
    one.ev("base", 1000, c((16, 2), (24, 0)))
    one.ev("rl", 1000, c((16, 4), (24, 0)))
    assert claims.intervals_note(analysis.load_tables(one.write())).startswith("One seed everywhere")


def test_contrasts_over_pretraining_runs_pair_each_branch_with_its_own_base(tmp_path):
    """Three pretraining runs, each with its base and its RL branch at one checkpoint: the contrast resamples
    the runs (paired: RL of run p against the base of run p) and the problems. Run-to-run variance that is
    shared by base and RL cancels in the pairing, so the paired interval is narrower than an unpaired one
    (the same counts with the bases' runs shuffled), and both say what they cover."""
    def study(root, base_order):
        m = MadeUp(root)
        levels = {0: 1, 1: 3, 2: 5}  # runs differ a lot; RL adds +1 correct on 30 of 40 problems in every run
        for p in range(3):
            m.ev("base", 1000, c((30, levels[base_order[p]]), (10, 0)), seed=p, pretrain_seed=p)
            m.ev("rl", 1000, c((30, levels[p] + 1), (10, 0)), seed=0, pretrain_seed=p)
        return m.write()

    root = study(tmp_path / "paired", [0, 1, 2])
    tables = analysis.load_tables(root)
    d = analysis.contrast(root, tables["passk"], "rl", "base", [1]).iloc[0]
    assert d["diff"] == pytest.approx(30 / 40 / N)
    assert d["covers"] == "pretraining runs (3, paired; seeds averaged within a run) and problems"
    assert 0 < d["low"] <= d["diff"] <= d["high"]
    shuffled = study(tmp_path / "shuffled", [2, 0, 1])  # base of run p is now another run's: pairing misleads
    u = analysis.contrast(shuffled, analysis.load_tables(shuffled)["passk"], "rl", "base", [1]).iloc[0]
    assert u["diff"] == pytest.approx(d["diff"]) and u["high"] - u["low"] > 3 * (d["high"] - d["low"])
    note = claims.intervals_note(tables)
    assert "rl at 1k (3 units from 3 pretraining runs)" in note and "One pretraining run" not in note


def test_claim9_resamples_each_arms_pretraining_runs(tmp_path):
    """With three pretraining runs an arm, claim 9's interval resamples the runs, then the problems: a gap that
    one run shows but the others reverse is no longer significant."""
    def study(root, wide_gains):
        m = MadeUp(root)
        m.arms |= {"mix": "targeted_mix", "wide": "wider_model"}
        for p, gw in enumerate(wide_gains):
            for arm, g in (("mix", 3), ("wide", gw)):
                m.ev("base", 4000, c((20, 1), (20, 0)), split="hard", arm=arm, pretrain_seed=p, seed=p)
                m.ev("rl", 4000, c((20, 1 + g), (20, 0)), split="hard", arm=arm, pretrain_seed=p)
        for t in T:  # the main arm (claim 9 needs rl and base there)
            m.ev("base", t, c((16, 2), (24, 0)))
            m.ev("rl", t, c((16, 3), (24, 0)))
        return m.write()

    steady = {x.id: x for x in claims.claims(study(tmp_path / "steady", (1, 1, 1)))}[9]
    assert steady.verdict == claims.HELD and "pretraining runs (3 vs 3, unpaired) and problems" in steady.measured
    assert steady.stats["targeted_minus_wider"] == pytest.approx(20 * 2 / 40 / N)
    mixed = {x.id: x for x in claims.claims(study(tmp_path / "mixed", (0, 6, 0)))}[9]  # one run reverses the gap
    assert mixed.verdict == claims.NO_EFFECT, mixed.measured
