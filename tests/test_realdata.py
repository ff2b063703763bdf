"""Real data on local fixture files: OpenMathInstruct-2 with the paper's splits (rlearly.tasks.openmath), the
one-demo / all-demo views, weighted pretraining mixtures (rlearly.data.corpora) and reasoning-gym's
GSM-symbolic task and corpus (rlearly.tasks.gsm_symbolic, rlearly.data.gym; skipped when the [data] extra is absent)."""
import importlib.util
import json
import re

import numpy as np
import pytest

from rlearly import hub
from rlearly import tasks as T
from rlearly.config import load_config
from rlearly.data import corpora
from rlearly.data.mixture import Mixture
from rlearly.data.world import World
from rlearly.errors import ConfigError, DataError, RlearlyError
from rlearly.tasks import openmath

HAVE_GYM = importlib.util.find_spec("reasoning_gym") is not None
needs_gym = pytest.mark.skipif(not HAVE_GYM, reason="reasoning-gym is not installed (pip install 'rlearly[data]')")


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def omi_rows(n_gsm=30, n_math=12):
    """OMI-2-like rows: GSM-source problems with 1-3 solutions each (rows of one problem not adjacent),
    MATH-source problems, and one GSM problem repeated under augmented_gsm8k (deduplicated with it)."""
    rows = []
    for rep in range(3):
        for i in range(n_gsm):
            if rep < 1 + i % 3:
                src = "gsm8k" if i % 2 else "augmented_gsm8k"
                rows.append({"problem": f"Ann has {i} pens and buys {i + 1} more. How many pens?",
                             "generated_solution": f"Solution {rep}:\n{i} + {i + 1} = {2 * i + 1}.\n"
                                                   f"So the answer is \\boxed{{{2 * i + 1}}}.",
                             "expected_answer": str(2 * i + 1), "problem_source": src})
    for i in range(n_math):
        rows.append({"problem": f"Compute $\\frac{{{i}}}{{2}}$.", "generated_solution": f"It is $\\frac{{{i}}}{{2}}$.",
                     "expected_answer": f"\\frac{{{i}}}{{2}}", "problem_source": "augmented_math" if i % 2 else "math"})
    rows.append(dict(rows[0], problem_source="augmented_gsm8k", generated_solution="Again: \\boxed{1}"))
    return rows


# ---------------------------------------------------------------- OpenMathInstruct-2

def test_openmath_gsm_subset_dedup_validation_and_views(tmp_path):
    f = write_jsonl(tmp_path / "omi.jsonl", omi_rows())
    task = T.get_task("openmath", files={"train": str(f)}, n_validation=5)
    train, val = task.problems("train"), task.problems("validation")
    # 30 GSM problems (MATH rows dropped, the repeated problem merged), 5 held out, the rest in order
    assert len(train) == 25 and len(val) == 5
    assert not {p.id for p in train} & {p.id for p in val}
    everything = sorted(train + val, key=lambda p: int(re.search(r"has (\d+)", p.question).group(1)))
    assert [int(re.search(r"has (\d+)", p.question).group(1)) for p in everything] == list(range(30))
    first = everything[0]  # problem 0: one row, plus the repeated row under augmented_gsm8k
    assert len(first.solutions) == 2 and first.solutions[1] == "Again: \\boxed{1}"
    three = everything[2]  # problem 2: three solutions, rows far apart, kept in row order
    assert [s.split(":")[0] for s in three.solutions] == ["Solution 0", "Solution 1", "Solution 2"]
    assert three.demo == "Solution 0: 2 + 3 = 5. So the answer is \\boxed{5}."  # one line, first kept
    assert three.answer == "5" and task.reward(three.demo, three) == 1.0 and task.reward("\\boxed{6}", three) == 0.0
    # one-demo view: one pair per problem; all-demo view: every solution (SFT-Gold)
    one, every = T.demonstrations(train, "one"), T.demonstrations(train, "all")
    assert len(one) == 25 and len(every) == sum(len(p.solutions) for p in train) > 25
    with pytest.raises(ConfigError, match="view 'some' is unknown; known: one, all"):
        T.demonstrations(train, "some")
    # the held-out draw is a fixed function of the seed (42, as in the paper)
    again = T.get_task("openmath", files=[str(f)], n_validation=5).problems("validation")
    other = T.get_task("openmath", files=str(f), n_validation=5, seed=1).problems("validation")
    assert [p.id for p in again] == [p.id for p in val] != [p.id for p in other]


def test_openmath_all_subset_holds_out_per_family_and_takes_the_instruction(tmp_path):
    f = write_jsonl(tmp_path / "omi.jsonl", omi_rows())
    task = openmath.OpenMathTask(str(f), subset="all", n_validation=3, instruction=openmath.PAPER_INSTRUCTION)
    val = task.problems("validation")
    sources = [p.raw["source"] for p in val]
    assert sum(s in openmath.GSM_SOURCES for s in sources) == 3
    assert sum(s in openmath.MATH_SOURCES for s in sources) == 3
    assert len(task.problems("train")) == 30 + 12 - 6
    p = val[0]
    assert task.prompt(p) == p.raw["problem"] + " " + openmath.PAPER_INSTRUCTION + "\n"
    math_p = next(q for q in task.problems("train") if q.raw["source"] in openmath.MATH_SOURCES)
    assert math_p.demo.endswith(f"The answer is \\boxed{{{math_p.answer}}}.")  # no box in the text: one added
    assert task.reward("\\boxed{" + math_p.answer.replace("\\frac", "\\dfrac") + "}", math_p) == 1.0


def test_openmath_bad_input_is_named(tmp_path):
    rows = omi_rows(n_gsm=4, n_math=0)
    f = write_jsonl(tmp_path / "omi.jsonl", rows)
    with pytest.raises(DataError, match="only 4 problems, need more than n_validation=1000"):
        T.get_task("openmath", files=[str(f)]).problems("train")
    bad = write_jsonl(tmp_path / "bad.jsonl", rows[:2] + [{"problem": "x", "problem_source": "gsm8k"}])
    with pytest.raises(DataError, match=r"bad.jsonl: row 3: field 'generated_solution' is missing or empty"):
        T.get_task("openmath", files=[str(bad)], n_validation=1).problems("train")
    with pytest.raises(DataError, match="no split 'test'; known: train, validation"):
        T.get_task("openmath", files=[str(f)], n_validation=1).problems("test")
    with pytest.raises(DataError, match="subset 'mathy' is unknown; known: gsm, all"):
        T.get_task("openmath", files=[str(f)], subset="mathy")


# ---------------------------------------------------------------- pretraining corpora

def test_weighted_mixture_file_draws_by_weight(tmp_path):
    web = write_jsonl(tmp_path / "web.jsonl", [{"text": f"web page {i}."} for i in range(50)])
    wiki = write_jsonl(tmp_path / "wiki.jsonl", [{"body": f"wiki article {i}."} for i in range(10)])
    mix = tmp_path / "mix.yaml"
    mix.write_text(f"sources:\n  - {{path: {web}, weight: 3}}\n"
                   f"  - {{path: {wiki}, weight: 1, text_field: body, max_docs: 4}}\n")
    cfg = load_config(preset="tiny", overrides=[f"data.corpus={mix}"])
    m = Mixture(cfg, World(cfg.world))
    rng = np.random.default_rng(0)
    docs = [m.document(rng) for _ in range(800)]
    share = np.mean([d.startswith("web") for d in docs])
    assert 0.7 < share < 0.8  # weight 3 : 1
    assert {d for d in docs if d.startswith("wiki")} == {f"wiki article {i}." for i in range(4)}  # max_docs
    rng2 = np.random.default_rng(0)
    assert [m.document(rng2) for _ in range(800)] == docs  # a pure function of the RNG


@pytest.mark.parametrize("text,needle", [
    ("sources: []", "'sources' must be a non-empty list"),
    ("sources: [{path: a.jsonl, wieght: 2}]", "unknown config key 'sources[0].wieght'"),
    ("sources: [{path: a.jsonl, weight: 0}]", "weight=0.0 must be > 0"),
    ("sources: [{weight: 1}]", "sources[0] must be a mapping with a 'path'"),
    ("corpora: [a.jsonl]", "unknown corpus mixture key 'corpora'"),
])
def test_malformed_mixture_files_are_named(tmp_path, text, needle):
    f = tmp_path / "mix.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(needle)):
        corpora.open_corpus(str(f))


def test_paper_corpus_file_is_dolmino_by_the_blogs_shares():
    from pathlib import Path

    from rlearly import study
    repo = Path(__file__).resolve().parents[1]
    sources = corpora.load_mixture(repo / "studies" / "corpora" / "dolmino.yaml")
    share = {s.data_dir.split("/")[-1]: s.weight for s in sources}
    assert {s.path for s in sources} == {"allenai/dolmino-mix-1124"} and all(s.max_docs > 0 for s in sources)
    assert (share["wiki"], share["dclm"] + share["flan"], share["math"], share["stackexchange"], share["pes2o"]) == \
        (0.07, 0.60, 0.20, 0.02, 0.05)
    assert study.load_study(repo / "studies" / "paper-1b.yaml").base_config().data.corpus == \
        "studies/corpora/dolmino.yaml"


def test_unreachable_hub_corpus_is_one_data_error(monkeypatch):
    import datasets

    def offline(*a, **kw):
        raise ConnectionError("Couldn't reach the Hugging Face Hub\nsecond line")
    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.setattr(hub, "unreachable", lambda timeout=0: "")  # the hub answers; the dataset fails
    with pytest.raises(DataError, match=r"could not load corpus 'org/web': ConnectionError: Couldn't reach the "
                                        r"Hugging Face Hub$"):
        corpora.RealCorpus(corpora.Source("org/web", data_dir="data/wiki", max_docs=10))


# ---------------------------------------------------------------- reasoning-gym

@needs_gym
def test_gsm_symbolic_task_generates_disjoint_splits_with_gsm8k_rewards():
    task = T.get_task("gsm_symbolic", n_train=40, n_test=20, seed=3)
    train, test = task.problems("train"), task.problems("test")
    assert len(train) == 40 and 0 < len(test) <= 20
    assert not {p.question for p in train} & {p.question for p in test}
    for p in train + test:
        assert not p.question.endswith("Do not include units.") and task.prompt(p) == p.question + "\n"
        assert p.demo.endswith(f"The answer is \\boxed{{{p.answer}}}.") and "\n" not in p.demo
        assert task.reward(p.demo, p) == 1.0 and task.reward(f"#### {p.answer}1", p) == 0.0
    again = T.get_task("gsm_symbolic", n_train=40, n_test=20, seed=3)
    assert again.problems("test") == test  # generated the same way every time


@needs_gym
def test_reasoning_gym_corpus_source(tmp_path):
    cfg = load_config(preset="tiny", overrides=["data.corpus=reasoning-gym:gsm_symbolic"])
    m = Mixture(cfg, World(cfg.world))
    doc = m.document(np.random.default_rng(0))
    question, _, solution = doc.partition("\n")
    assert question.endswith("?") or question.endswith(".")
    assert re.search(r"#### -?[\d.]+$", solution)
    mix = tmp_path / "mix.yaml"
    mix.write_text("sources: [{path: 'reasoning-gym:gsm_symbolic', max_docs: 5, seed: 9}]\n")
    assert len(corpora.open_corpus(str(mix)).corpora[0].texts) == 5


def test_missing_reasoning_gym_names_the_data_extra(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "reasoning_gym", None)  # `import reasoning_gym` now fails
    msg = r"^reasoning-gym problems needs the \[data\] extra: pip install 'rlearly\[data\]'$"
    with pytest.raises(RlearlyError, match=msg):
        T.get_task("gsm_symbolic", n_train=4, n_test=2).problems("train")
    with pytest.raises(RlearlyError, match=msg):
        corpora.open_corpus("reasoning-gym:gsm_symbolic")
