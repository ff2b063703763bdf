"""The synthetic world: math splits, solutions, answer extraction, pretraining mix, general facts, probes."""
import re
import time
from collections import defaultdict

import numpy as np
import pytest

from rlearly.config import WorldConfig, load_config
from rlearly.data.general_world import DAYS, NUMBER_WORDS, GeneralWorld
from rlearly.data.math_world import (Chain, Event, MathWorld, Spec, _merged_expr, extract_answer,
                                     extract_answer_flexible, problem_key, reward, teacher_solutions)
from rlearly.data.world import World
from rlearly.errors import DataError

STEP = re.compile(r"(\d+) ([-+*/]) (\d+) = (\d+)")
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}


@pytest.fixture(scope="module")
def world():
    # the full generator: up to three people and two-digit values (the default study uses a simpler dial)
    return World(WorldConfig(max_people=3, max_value=99))


@pytest.fixture(scope="module")
def small():
    return WorldConfig(n_train=200, n_test=100, n_hard=50)


def check_steps(text: str, max_value: int) -> list[int]:
    """Re-evaluate every `a op b = c` in text; return the results in order."""
    results = []
    for a, op, b, c in STEP.findall(text):
        value = OPS[op](int(a), int(b))
        assert value == int(c), text
        assert 0 <= value <= max_value and 0 <= int(a) <= max_value and 0 <= int(b) <= max_value
        results.append(int(c))
    return results


# ---------------------------------------------------------------- splits

def test_splits_deterministic_and_seeded(small):
    a, b = MathWorld(small), MathWorld(small)
    for name in ("train", "test", "hard"):
        assert [(p.id, p.question, p.answer, p.key) for p in a.split(name)] == \
               [(p.id, p.question, p.answer, p.key) for p in b.split(name)]
    other = MathWorld(WorldConfig(seed=small.seed + 1, n_train=200, n_test=100, n_hard=50))
    assert [p.key for p in other.split("test")] != [p.key for p in a.split("test")]
    assert a.split("test") is a.split("test")  # cached


def test_split_sizes_ids_ranges_and_disjoint(world):
    cfg = world.cfg
    t0 = time.perf_counter()
    fresh = MathWorld(cfg)
    splits = {n: fresh.split(n) for n in ("train", "dev", "test", "hard")}
    assert time.perf_counter() - t0 < 5.0  # ~0.4 s here; generous for a loaded machine
    assert {n: len(s) for n, s in splits.items()} == {"train": 2000, "dev": 300, "test": 500, "hard": 300}
    assert splits["test"][17].id == "test-00017" and splits["test"][17].split == "test"
    all_keys = [p.key for s in splits.values() for p in s]
    assert len(set(all_keys)) == len(all_keys) == 3100
    for name, (lo, hi) in {"train": (3, 5), "dev": (3, 5), "test": (3, 5), "hard": (6, 7)}.items():
        assert {p.n_ops for p in splits[name]} == set(range(lo, hi + 1))
    for p in splits["train"] + splits["hard"]:
        assert all(2 <= int(x) <= cfg.max_value for x in re.findall(r"\d+", p.question))
        assert 2 <= p.answer <= cfg.max_value


def test_unknown_split_names_known_ones(world):
    with pytest.raises(DataError, match="train, dev, test, hard"):
        world.math.split("valid")


def test_key_ignores_names_and_objects():
    ev = (Event("+", 5, 0), Event("-", 3, 1))
    a = Spec("marbles", (Chain("Ava", "f", 7, ev), Chain("Ben", "m", 4, ())), "+")
    b = Spec("apples", (Chain("Leo", "m", 4, ()), Chain("Zoe", "f", 7, (Event("+", 5, 2), Event("-", 3, 0)))), "+")
    assert problem_key(a) == problem_key(b) == "S:4|7+5-3"
    diff = Spec("marbles", a.chains, "-")
    assert problem_key(diff) == "D:7+5-3|4"


def test_pretraining_never_shows_test_or_hard(world):
    m = world.math
    reserved = {p.key for p in m.split("dev") + m.split("test") + m.split("hard")}
    rng = np.random.default_rng(5)
    drawn = [m.sample_pretrain_problem(rng, hard=i % 4 == 0) for i in range(2000)]
    assert not reserved & {p.key for p in drawn}
    assert {p.n_ops for p in drawn if p.n_ops >= 6} == {6, 7}
    train = {p.key for p in m.split("train")}
    assert train & {p.key for p in drawn}  # train problems may appear, as GSM8K train did in the paper


# ---------------------------------------------------------------- solutions

def test_every_solution_is_correct(world):
    m, cap = world.math, world.cfg.max_solutions
    for p in m.split("train")[:300] + m.split("hard")[:60]:
        sols = m.solutions(p)
        assert 1 <= len(sols) <= cap and len(set(sols)) == len(sols)
        for s in sols:
            results = check_steps(s, world.cfg.max_value)
            assert len(results) == p.n_ops  # one explicit equation per operation
            assert results[-1] == p.answer
            assert extract_answer(s) == p.answer and s.endswith(f"The answer is \\boxed{{{p.answer}}}.")
            assert reward(m.prompt(p) + s, p) == 1.0


def test_solution_counts(world):
    m = world.math
    by_ops = defaultdict(list)
    for p in m.split("train"):
        by_ops[p.n_ops].append(len(m.solutions(p)))
    assert set(by_ops) == {3, 4, 5}
    # two people with an event each and a combine already have 2 step orders x 2-3 phrasings per step x
    # operand orders: every train problem reaches the cap (measured: 24 everywhere)
    assert min(n for v in by_ops.values() for n in v) == world.cfg.max_solutions


def test_two_people_have_several_step_orders(world):
    m = world.math
    p = next(q for q in m.split("train")
             if q.spec.structure in ("sum", "diff") and all(c.events for c in q.spec.chains))
    orders = {tuple(check_steps(s, 99)) for s in m.solutions(p)}
    assert len(orders) >= 2, p.question  # independent steps told in different orders


def test_commutative_operand_orders():
    spec = Spec("marbles", (Chain("Ava", "f", 7, (Event("+", 5, 0),)),), "")
    m = MathWorld(WorldConfig())
    p = m.make_problem(spec, "test", "test-99999")
    sols = m.solutions(p)
    assert any("7 + 5 = 12" in s for s in sols) and any("5 + 7 = 12" in s for s in sols)
    assert sols[0] == "Ava has 7 + 5 = 12 marbles. So Ava has 12 marbles. The answer is \\boxed{12}."
    assert len(sols) == 6  # 3 phrasings x 2 operand orders
    minus = m.make_problem(Spec("coins", (Chain("Ben", "m", 9, (Event("-", 4, 1),)),), ""), "test", "x")
    assert not any("4 - 9" in s for s in m.solutions(minus)) and len(m.solutions(minus)) == 3


def test_merged_expression_brackets_only_where_left_to_right_needs_it():
    assert _merged_expr(11, [("-", 2), ("-", 6), ("*", 5)]) == "(11 - 2 - 6) * 5"  # (3) * 5 = 15
    assert _merged_expr(4, [("*", 2), ("+", 3), ("/", 11)]) == "(4 * 2 + 3) / 11"
    assert _merged_expr(4, [("*", 6), ("/", 3), ("+", 1)]) == "4 * 6 / 3 + 1"
    assert eval("(11 - 2 - 6) * 5") == 15 and eval("(4 * 2 + 3) / 11") == 1


TEACHER_EQ = re.compile(r"([-+*/() \d]+) = (\d+)")


def test_teacher_solutions_are_correct_and_fold_steps(world):
    """sft.demo_merge's demonstrations: every equation is right, the last is the answer, and with merge = 1 a
    person's events make one equation (fewer equations than operations); with merge = 0 one per operation."""
    m, cap = world.math, world.cfg.max_solutions
    folded = 0
    for p in m.split("train")[:200]:
        for merge in (0.0, 0.5, 1.0):
            sols = teacher_solutions(p.spec, cap, merge)
            assert 1 <= len(sols) <= cap and len(set(sols)) == len(sols)
            for s in sols:
                eqs = TEACHER_EQ.findall(s.replace("The answer is", ""))
                assert all(eval(lhs) == int(rhs) for lhs, rhs in eqs), s
                assert int(eqs[-1][1]) == p.answer and reward(m.prompt(p) + s, p) == 1.0
                n_events = sum(len(c.events) for c in p.spec.chains)
                if merge == 0.0:
                    assert len(eqs) == p.n_ops
                if merge == 1.0:  # a run of one person's events in the drawn order is one equation
                    assert p.n_ops - n_events + len(p.spec.chains) <= len(eqs) <= p.n_ops
                    folded += len(eqs) < p.n_ops
    assert folded > 100
    p = m.split("train")[0]
    assert teacher_solutions(p.spec, cap, 0.5) == teacher_solutions(p.spec, cap, 0.5)  # seeded by the problem


def test_one_demo_and_prompt(world):
    m = world.math
    p = m.split("train")[3]
    assert m.prompt(p) == p.question + "\n"
    demo = m.one_demo(p)
    assert demo in m.solutions(p) and demo == MathWorld(world.cfg).one_demo(p)
    demos = [m.one_demo(q) for q in m.split("train")[:200]]
    firsts = [m.solutions(q)[0] for q in m.split("train")[:200]]
    assert sum(d != f for d, f in zip(demos, firsts)) > 100  # not always the canonical solution


# ---------------------------------------------------------------- answers

@pytest.mark.parametrize("text,expected", [
    ("So 9. The answer is \\boxed{9}.", 9),
    ("\\boxed{3} then \\boxed{12}", 12),  # the last box wins
    ("\\boxed{12} then \\boxed{x}", None),  # ... even when it is not an integer
    ("The answer is 9.", None),
    ("\\boxed{ 7 }", 7),
    ("\\boxed{-4}", -4),
    ("\\boxed{3.5}", None),
    ("\\boxed{}", None),
    ("\\boxed{9", None),
])
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_flexible_extraction_and_reward(world):
    assert extract_answer_flexible("7 + 5 = 12. #### 12") == 12
    assert extract_answer_flexible("12 then \\boxed{3}") == 3
    assert extract_answer_flexible("no numbers") is None
    p = world.math.split("test")[0]
    assert reward(f"\\boxed{{{p.answer}}}", p, "answer") == 1.0
    assert reward(f"\\boxed{{{p.answer + 1}}}", p, "answer") == 0.0
    assert reward(f"{p.answer}", p, "answer") == 0.0  # unboxed answers earn nothing
    assert reward(f"\\boxed{{{p.answer}}}", p) == 0.0  # "steps" (default): a bare right answer is not a solution
    assert reward(world.math.one_demo(p), p) == 1.0


# ---------------------------------------------------------------- pretraining mix

def test_pretraining_mix_fractions(world):
    rng = np.random.default_rng(0)
    docs = [world.pretrain_document(rng) for _ in range(4000)]
    math_docs = [d for d in docs if "\n" in d]  # only math documents have a question line
    assert abs(len(math_docs) / 4000 - world.cfg.math_fraction) < 0.03  # 4 sigma
    boxed = [d for d in math_docs if "\\boxed{" in d]
    assert abs(len(boxed) / len(math_docs) - world.cfg.format_fraction) < 0.035  # 4 sigma
    for d in math_docs[:300]:
        question, solution = d.split("\n")
        assert question.endswith("?")
        check_steps(solution, world.cfg.max_value)
    endings = {re.sub(r"\d+", "N", d.split(". ")[-1])[:8] for d in math_docs}
    assert len(endings) >= 4  # several closing styles


def test_hard_fraction_dial():
    w = World(WorldConfig(math_fraction=1.0, hard_fraction=1.0, n_train=50, n_test=20, n_hard=20))
    rng = np.random.default_rng(1)
    docs = [w.pretrain_document(rng) for _ in range(200)]
    assert all(len(STEP.findall(d.split("\n")[1])) >= 4 for d in docs)


def test_small_and_tiny_configs():
    w = World(WorldConfig(max_value=20, n_train=100, n_test=40, n_hard=20))
    for p in w.math.split("hard"):
        for s in w.math.solutions(p)[:3]:
            assert max(check_steps(s, 20)) <= 20
    tiny = World(load_config(preset="tiny").world)
    assert len(tiny.math.split("train")) == 64 and len(tiny.general.people) == 12


def test_tokenizer_corpus_covers_evaluation_text(world):
    texts = world.tokenizer_corpus(200, seed=3)
    assert texts == world.tokenizer_corpus(200, seed=3)
    joined = "\n".join(texts)
    assert "\\boxed{" in joined
    for pr in world.general.probes():
        assert all(pr.context + o in joined for o in pr.options)


# ---------------------------------------------------------------- general world

def test_facts_consistent_across_documents(world):
    g = world.general
    people = {p.name: p for p in g.people}
    patterns = [("job", r"(\w+) (?:works as a|is a|has worked as a) (\w+)"), ("city", r"(\w+) lives in (\w+)"),
                ("pet", r"(\w+) has a pet (\w+)"), ("color", r"(\w+)'s favourite colour is (\w+)"),
                ("city", r"visits (\w+) in (\w+)")]
    rng = np.random.default_rng(11)
    seen = 0
    for doc in [g.document(rng) for _ in range(600)] + g.heldout_documents(100):
        for attr, pat in patterns:
            for name, value in re.findall(pat, doc):
                if name in people:
                    assert getattr(people[name], attr) == value, doc
                    seen += 1
    assert seen > 300


def test_general_documents_and_heldout(world):
    g = world.general
    assert len(g.heldout_documents()) == world.cfg.n_probe_heldout_docs
    assert g.heldout_documents(5) == g.heldout_documents(5)
    assert GeneralWorld(world.cfg).people == g.people
    assert GeneralWorld(WorldConfig(seed=99)).people != g.people
    rng = np.random.default_rng(2)
    docs = [g.document(rng) for _ in range(300)]
    assert sum("The next day," in d for d in docs) > 30 and sum(" counts " in d for d in docs) > 30
    for d in docs:  # pronouns agree with the person the document is about
        name = re.match(r"(?:On \w+, )?(\w+)", d).group(1)
        person = next(p for p in g.people if p.name == name)
        wrong = {"f": r"\b(?:He|he|His|his)\b", "m": r"\b(?:She|she|Her|her)\b"}[person.gender]
        assert not re.search(wrong, d.split(" often visits ")[0]), d


def test_probes(world):
    g = world.general
    probes = g.probes()
    assert probes == g.probes() and len({p.id for p in probes}) == len(probes)
    kinds = defaultdict(list)
    for p in probes:
        kinds[p.kind].append(p)
        assert len(p.options) == 4 and len(set(p.options)) == 4 and 0 <= p.answer < 4
        assert all(o.startswith(" ") for o in p.options)
    assert len(kinds["fact"]) == 4 * world.cfg.n_people
    assert len(kinds["pronoun"]) >= 20 and len(kinds["sequence"]) >= 20
    people = {p.name: p for p in g.people}
    for p in kinds["fact"]:
        attr = p.id.split("-")[1]
        name = re.match(r"(\w+)", p.context).group(1)
        assert p.options[p.answer] == " " + getattr(people[name], attr)
    for p in kinds["pronoun"]:
        assert p.options[p.answer] == {"f": " She", "m": " He"}[people[re.match(r"(\w+)", p.context).group(1)].gender]
    assert 0.3 < np.mean([p.answer == 0 for p in kinds["pronoun"]]) < 0.7
    for p in kinds["sequence"]:
        last = re.findall(r"\w+", p.context)
        right = p.options[p.answer].strip()
        if p.id.startswith("sequence-day"):
            assert DAYS.index(right) == (DAYS.index(last[1]) + 1) % 7
        else:
            assert NUMBER_WORDS.index(right) == NUMBER_WORDS.index(last[-1]) + 1


def test_drill_documents_are_correct_arithmetic_in_range():
    import re

    from rlearly.data.world import World
    cfg = WorldConfig(max_value=40, drill_fraction=1.0, math_fraction=1.0)
    w = World(cfg)
    rng = np.random.default_rng(3)
    facts = [m for _ in range(50) for m in re.findall(r"(\d+) ([-+*/]) (\d+) = (\d+)\.", w.pretrain_document(rng))]
    assert len(facts) == 50 * 8
    ops = {"+": int.__add__, "-": int.__sub__, "*": int.__mul__, "/": int.__floordiv__}
    for a, op, b, c in facts:
        a, b, c = int(a), int(b), int(c)
        assert ops[op](a, b) == c and 2 <= c <= 40
        if op == "/":
            assert a % b == 0
    assert {op for _, op, _, _ in facts} == set("+-*/")


def test_max_people_one_gives_single_person_chains():
    w = MathWorld(WorldConfig(min_people=1, max_people=1, min_ops=1, max_ops=3, n_train=200, n_dev=20,
                              n_test=50, n_hard=20))
    for split in ("train", "dev", "test", "hard"):
        assert all(p.key.startswith("C:") for p in w.split(split))  # C = one person's chain


def test_popularity_skews_who_documents_are_about():
    """world.people_zipf: person i is the subject of a share ∝ (i+1)^-s; s = 0 leaves the documents as they were
    (the same random draws), so an old world's pretraining data is unchanged."""
    import hashlib

    flat, skew = GeneralWorld(WorldConfig(n_people=100)), GeneralWorld(WorldConfig(n_people=100, people_zipf=1.0))
    assert skew.people == flat.people
    rng0 = np.random.default_rng(5)
    docs = "\n".join(flat.document(rng0) for _ in range(200))
    assert hashlib.sha256(docs.encode()).hexdigest()[:16] == "f5e26fcb25b151f8"  # as before people_zipf existed
    rng = np.random.default_rng(3)
    counts = defaultdict(int)
    for _ in range(4000):
        counts[skew._subject(rng).name] += 1
    w = 1.0 / np.arange(1, 101)
    top, tenth = skew.people[0].name, skew.people[9].name
    assert abs(counts[top] / 4000 - w[0] / w.sum()) < 0.03  # 0.193
    assert counts[top] > 5 * counts[tenth] and len(counts) > 60
    with pytest.raises(Exception, match="people_zipf"):
        WorldConfig(people_zipf=-1)


def test_dev_probes_ask_the_same_facts_in_other_words(world):
    """The dev probes (for choices about the world) test the facts the reported probes test, in another
    template's words and with other draws, so tuning on them never reads the reported ones."""
    g = world.general
    test, dev = g.probes(), g.probes("dev")
    assert len(dev) == len(test) and not {p.id for p in dev} & {p.id for p in test}
    facts = lambda probes: {p.context for p in probes if p.kind == "fact"}  # noqa: E731
    assert not facts(dev) & facts(test)
    people = {p.name: p for p in g.people}
    for p in dev:
        if p.kind == "fact":
            attr, name = p.id.split("-")[2], p.context.split(" is a")[0].split(" grew")[0].split("'s pet")[0]
            name = name.split(" loves")[0]
            assert p.options[p.answer] == " " + getattr(people[name], attr)
    with pytest.raises(ValueError, match="test or dev"):
        g.probes("hard")
