"""Task registry (rlearly.tasks): synthetic wraps math_world; GSM8K and MATH from local fixture files."""
import dataclasses
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlearly import hub
from rlearly import tasks as T
from rlearly.config import WorldConfig
from rlearly.data import math_world as mw
from rlearly.errors import ConfigError, DataError, RlearlyError
from rlearly.evaluation.evaluate import fewshot_prefix

SMALL_WORLD = WorldConfig(n_train=12, n_test=6, n_hard=4)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


GSM_ROWS = [
    {"question": "Ava has 3 boxes of 412 pens. How many pens?",
     "answer": "She has 3 * 412 = <<3*412=1236>>1236 pens.\nSo 1,236 in all.\n#### 1,236"},
    {"question": "Tom has 5 apples and eats 2. How many are left?", "answer": "5 - 2 = <<5-2=3>>3\n#### 3"},
    {"question": "Half of 7?", "answer": "7 / 2 = 3.5\n#### 3.50"},
]


# ---------------------------------------------------------------- registry

def test_unknown_task_lists_known_ones():
    with pytest.raises(RlearlyError, match="unknown task 'gsm9k'; known tasks: gsm8k, gsm_symbolic, math, openmath, synthetic"):
        T.get_task("gsm9k")
    with pytest.raises(ConfigError, match="task 'gsm8k'.*unexpected"):
        T.get_task("gsm8k", filez={})


# ---------------------------------------------------------------- synthetic

def test_synthetic_prompts_rewards_and_shots_match_math_world():
    task = T.get_task("synthetic", world=SMALL_WORLD)
    world = mw.MathWorld(SMALL_WORLD)
    for split in ("train", "dev", "test", "hard"):
        probs, ref = task.problems(split), world.split(split)
        assert [p.id for p in probs] == [p.id for p in ref]
        for tp, p in zip(probs, ref):
            assert task.prompt(tp) == world.prompt(p)
            assert tp.answer == p.answer and tp.solutions == tuple(world.solutions(p))
            assert tp.demo == world.one_demo(p)
    p, tp = world.split("test")[0], task.problems("test")[0]
    shots = task.exemplars(2)
    assert task.prompt(tp, shots) == fewshot_prefix(world, 2) + world.prompt(p)
    for text in [world.one_demo(p), f"So it is \\boxed{{{p.answer + 1}}}.", "no box", "\\boxed{x}",
                 f"\\boxed{{{p.answer}}} then \\boxed{{{p.answer + 2}}}"]:
        assert task.reward(text, tp) == mw.reward(text, p)
        assert task.extract(text) == mw.extract_answer(text)
    assert task.reward(world.one_demo(p), tp) == 1.0
    with pytest.raises(DataError, match="no split 'valid'"):
        task.problems("valid")


def test_no_recipe_trains_on_a_held_out_split():
    task = T.get_task("synthetic", world=SMALL_WORLD)
    assert len(task.training_problems("train")) == SMALL_WORLD.n_train
    for split in ("dev", "test", "hard"):
        with pytest.raises(ConfigError, match=f"split '{split}' is held out"):
            task.training_problems(split)
    assert T.get_task("gsm8k").heldout == ("dev", "test")  # dev: a file task's validation split


def test_task_ids_fingerprint_the_problems_and_the_scoring():
    a = T.get_task("synthetic", world=SMALL_WORLD)
    assert a.task_id("test") == T.get_task("synthetic", world=SMALL_WORLD).task_id("test")  # stable
    assert a.task_id("test").startswith("synthetic-") and a.task_id("test") != a.task_id("hard")
    other_world = dataclasses.replace(SMALL_WORLD, seed=SMALL_WORLD.seed + 1)
    answer_scored = dataclasses.replace(SMALL_WORLD, scoring="answer")
    assert T.get_task("synthetic", world=other_world).task_id("test") != a.task_id("test")
    assert T.get_task("synthetic", world=answer_scored).task_id("test") != a.task_id("test")
    mix = dataclasses.replace(SMALL_WORLD, math_fraction=0.9)  # the pretraining mix: same problems, same id
    assert T.get_task("synthetic", world=mix).task_id("test") == a.task_id("test")


# ---------------------------------------------------------------- gsm8k

def test_gsm8k_reads_rows_and_renders_one_line_demos(tmp_path):
    task = T.get_task("gsm8k", files={"test": str(write_jsonl(tmp_path / "gsm.jsonl", GSM_ROWS))})
    probs = task.problems("test")
    assert [p.id for p in probs] == ["test-00000", "test-00001", "test-00002"]
    assert [p.answer for p in probs] == ["1236", "3", "3.5"]
    assert probs[0].demo == "She has 3 * 412 = 1236 pens. So 1,236 in all. The answer is \\boxed{1236}."
    assert task.prompt(probs[1]) == GSM_ROWS[1]["question"] + "\n"
    assert task.prompt(probs[1], [probs[0]]) == (GSM_ROWS[0]["question"] + "\n" + probs[0].demo + "\n\n"
                                                 + GSM_ROWS[1]["question"] + "\n")
    for p in probs:  # every demo earns its own reward
        assert task.reward(p.demo, p) == 1.0
    # the same rows from parquet
    pq.write_table(pa.Table.from_pylist(GSM_ROWS), tmp_path / "gsm.parquet")
    again = T.GSM8KTask(files={"test": str(tmp_path / "gsm.parquet")}).problems("test")
    assert again == probs


@pytest.mark.parametrize("completion, expected", [
    ("#### 1,234", "1234"),
    ("so the total is\n#### 1,234.", "1234"),
    ("The answer is \\boxed{1,234}.", "1234"),
    ("\\boxed{12} wait, no: #### 13", "13"),  # the last marker wins
    ("#### 12 hmm \\boxed{14.0}", "14"),  # trailing .0 normalised
    ("#### $18", "18"),
    ("#### 42 apples", "42"),
    ("#### -3", "-3"),
    ("#### 2.50", "2.5"),
    ("#### 1,2", None),  # not a thousands separator
    ("\\boxed{x+1}", None),
    ("the answer is 1234", None),  # neither marker
    ("", None),
])
def test_gsm8k_extraction(completion, expected):
    assert T.GSM8KTask().extract(completion) == expected


def test_gsm8k_reward_rejects_wrong_answers(tmp_path):
    task = T.GSM8KTask(files={"test": str(write_jsonl(tmp_path / "g.jsonl", GSM_ROWS))})
    p0, _, p2 = task.problems("test")
    assert task.reward("#### 1,236", p0) == 1.0 and task.reward("\\boxed{1236.00}", p0) == 1.0
    assert task.reward("#### 1,235", p0) == 0.0 and task.reward("#### 12,36", p0) == 0.0
    assert task.reward("\\boxed{1236} no wait #### 1200", p0) == 0.0
    assert task.reward("#### 3.5", p2) == 1.0 and task.reward("#### 7/2", p2) == 0.0  # plain numbers only
    assert task.reward("#### 3", p2) == 0.0


@pytest.mark.parametrize("row, field", [
    ({"answer": "#### 3"}, "question"),
    ({"question": "   ", "answer": "#### 3"}, "question"),
    ({"question": "Q?"}, "answer"),
    ({"question": "Q?", "answer": "it is 3"}, "answer"),
    ({"question": "Q?", "answer": "#### three"}, "answer"),
    ({"question": "Q?", "answer": "#### 3\nmore text after"}, "answer"),
])
def test_gsm8k_malformed_rows_name_file_row_and_field(tmp_path, row, field):
    path = write_jsonl(tmp_path / "bad.jsonl", [GSM_ROWS[0], row])
    with pytest.raises(DataError, match=rf"bad\.jsonl: row 2: field '{field}'"):
        T.GSM8KTask(files={"test": str(path)}).problems("test")


def test_gsm8k_unreadable_sources(tmp_path):
    (tmp_path / "broken.jsonl").write_text(json.dumps(GSM_ROWS[0]) + "\n{not json\n")
    with pytest.raises(DataError, match=r"broken\.jsonl: row 2 \(line 2\) is not valid JSON"):
        T.GSM8KTask(files={"test": str(tmp_path / "broken.jsonl")}).problems("test")
    with pytest.raises(DataError, match="not found"):
        T.GSM8KTask(files={"test": str(tmp_path / "absent.jsonl")}).problems("test")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 garbage")
    with pytest.raises(DataError, match=r"bad\.parquet"):
        T.GSM8KTask(files={"test": str(tmp_path / "bad.parquet")}).problems("test")


def test_gsm8k_hub_path_goes_through_load_dataset(monkeypatch):
    import datasets
    calls = []

    def fake_load_dataset(path, name=None, split=None):
        calls.append((path, name, split))
        return GSM_ROWS[:2]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setattr(hub, "unreachable", lambda timeout=0: "")  # as if the hub answered
    probs = T.get_task("gsm8k").problems("train")
    assert calls == [("openai/gsm8k", "main", "train")] and [p.answer for p in probs] == ["1236", "3"]

    def offline(*a, **k):
        raise ConnectionError("no network\nsecond line")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match=r"could not load 'openai/gsm8k' split 'test'.*no network\); pass a local"):
        T.get_task("gsm8k").problems("test")


def test_a_hub_id_fails_at_once_when_the_hub_cannot_be_reached(monkeypatch):
    """No retries: an endpoint that does not resolve (or does not answer) fails in under 2 s, naming the id
    and the way out; HF_HUB_OFFLINE=1 skips the check so `datasets` can read its cache."""
    import time

    monkeypatch.setenv("HF_ENDPOINT", "https://hub.invalid")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    t = time.perf_counter()
    with pytest.raises(DataError, match=r"dataset 'openai/gsm8k' is a hub id, and the hub cannot be reached "
                                        r"\(hub.invalid: .*\); pass a local .jsonl/.parquet file, or set HF_HUB_OFFLINE=1"):
        T.get_task("gsm8k").problems("test")
    assert time.perf_counter() - t < 2.0
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.offline()


# ---------------------------------------------------------------- math

MATH_ROWS = [
    {"problem": "What is $\\frac{2}{4}$ in lowest terms?",
     "solution": "We divide by 2:\n$\\frac{2}{4} = \\boxed{\\frac{1}{2}}$."},
    {"problem": "Compute $1+1$.", "solution": "First \\boxed{3}? No: $1+1=\\boxed{2}$."},  # last box wins
    {"problem": "OMI style", "generated_solution": "It is 5.", "expected_answer": "5"},
    {"problem": "Only an answer", "expected_answer": 12},
    {"problem": "Interval?", "solution": "So $x \\in \\boxed{\\left[ 1, \\dfrac{3}{2} \\right)}$"},
]


def math_task(tmp_path):
    return T.get_task("math", files={"test": str(write_jsonl(tmp_path / "math.jsonl", MATH_ROWS))},
                      use_math_verify=False)


def test_math_reference_answers_and_demos(tmp_path):
    task = math_task(tmp_path)
    probs = task.problems("test")
    assert [p.answer for p in probs] == ["\\frac{1}{2}", "2", "5", "12", "\\left[ 1, \\dfrac{3}{2} \\right)"]
    assert probs[0].demo == "We divide by 2: $\\frac{2}{4} = \\boxed{\\frac{1}{2}}$."
    assert probs[2].demo == "It is 5. The answer is \\boxed{5}."  # no box in the solution: one is appended
    assert probs[3].solutions == () and probs[3].demo is None
    with pytest.raises(DataError, match="no demonstration"):
        task.prompt(probs[0], [probs[3]])
    for p in (probs[0], probs[1], probs[2], probs[4]):
        assert task.reward(p.demo, p) == 1.0


def test_math_extraction_last_box_and_nested_braces():
    task = T.MathTask(use_math_verify=False)
    assert task.extract("\\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert task.extract("\\boxed{1} then \\boxed{\\sqrt{\\frac{1}{2}}} end") == "\\sqrt{\\frac{1}{2}}"
    assert task.extract("\\boxed{2} and an unclosed \\boxed{\\frac{1}{3}") == "2"
    assert task.extract("\\boxed{}") is None and task.extract("no box") is None
    assert task.extract("\\fbox{7}") == "7"


@pytest.mark.parametrize("pred, gold", [
    ("0.5", "\\frac{1}{2}"), ("\\dfrac{1}{2}", "\\frac12"), ("1/2", "\\tfrac{1}{2}"), ("-0.5", "-\\frac{1}{2}"),
    ("\\frac{-1}{2}", "-\\frac{1}{2}"), ("3.0", "3"), ("10.", "10"), ("1,000", "1000"), ("1{,}000", "1000"),
    ("90^\\circ", "90"), ("90^{\\circ}", "90"), ("5\\text{ cm}", "5"), ("5 \\text{ cm}^2", "5"),
    ("\\text{(B)}", "(B)"), ("\\left( 1, 2 \\right)", "(1,2)"), ("(0.5, 3)", "(\\frac{1}{2},3)"),
    ("\\sqrt2", "\\sqrt{2}"), ("$x^2 + 1$", "x^2+1"), ("50\\%", "50"), ("\\frac{2}{4}", "\\frac{1}{2}"),
])
def test_math_equivalent_answers_accepted(pred, gold):
    assert T.math_equal(pred, gold)
    assert T.MathTask(use_math_verify=False).is_correct(pred, T.TaskProblem("p", "q", gold))


@pytest.mark.parametrize("pred, gold", [
    ("0.333", "\\frac{1}{3}"), ("-2", "2"), ("12", "1,2"), ("[1,2]", "(1,2)"), ("(1,2)", "(2,1)"),
    ("\\sqrt{2}", "2"), ("x-1", "x+1"), ("\\frac{1}{2}", "\\frac{1}{3}"), ("5", "50"), ("", "0"),
    ("\\frac{1}{0}", "0"), ("1/2", "2"), ("(1,2,3)", "(1,2)"), ("\\infty", "-\\infty"), ("0.5", "5"),
])
def test_math_wrong_answers_rejected(pred, gold):
    assert not T.math_equal(pred, gold)
    assert T.MathTask(use_math_verify=False).reward(f"\\boxed{{{pred}}}", T.TaskProblem("p", "q", gold)) == 0.0


@pytest.mark.parametrize("row, field", [
    ({"problem": "", "solution": "\\boxed{1}"}, "problem"),
    ({"solution": "\\boxed{1}"}, "problem"),
    ({"problem": "P"}, "solution"),
    ({"problem": "P", "solution": "no boxed answer here"}, "solution"),
])
def test_math_malformed_rows_name_file_row_and_field(tmp_path, row, field):
    path = write_jsonl(tmp_path / "m.jsonl", [MATH_ROWS[0], MATH_ROWS[1], row])
    with pytest.raises(DataError, match=rf"m\.jsonl: row 3: field '{field}'"):
        T.MathTask(files={"test": str(path)}).problems("test")


def test_repeated_ids_are_an_error(tmp_path):
    rows = [{**MATH_ROWS[0], "id": "x"}, {**MATH_ROWS[1], "id": "x"}]
    with pytest.raises(DataError, match="row 2: field 'id' repeats 'x'"):
        T.MathTask(files={"test": str(write_jsonl(tmp_path / "m.jsonl", rows))}).problems("test")


def test_cli_eval_of_a_hub_task_offline_is_one_line_in_under_two_seconds(tmp_path):
    """`rlearly eval CKPT --task gsm8k` with no file and no hub: one error line, exit 2, before torch loads."""
    import os
    import subprocess
    import sys
    import time

    env = {**os.environ, "HF_ENDPOINT": "https://hub.invalid"}
    env.pop("HF_HUB_OFFLINE", None)
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "rlearly.cli", "eval", str(tmp_path), "--task", "gsm8k", "--split",
                        "test"], capture_output=True, text=True, env=env)
    assert time.perf_counter() - t < 2.0
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert r.stderr.startswith("rlearly: error: dataset 'openai/gsm8k' is a hub id, and the hub cannot be reached")


def test_the_task_registry_has_no_import_cycle():
    """rlearly.tasks imports no task that needs the hub or an extra; those register when first asked for by name,
    each task module imports cleanly on its own, and rlearly.data imports no task (tasks read data, not back)."""
    import subprocess
    import sys

    code = ("import sys, rlearly.tasks as T; assert 'rlearly.tasks.openmath' not in sys.modules; "
            "assert 'openmath' in T.known_tasks(); T.get_task('openmath', files=[]); "
            "assert 'rlearly.tasks.openmath' in sys.modules")
    data_only = ("import sys, rlearly.data.gym, rlearly.data.mixture, rlearly.data.corpora, rlearly.data.world; "
                 "assert not [m for m in sys.modules if m.startswith('rlearly.tasks')]")
    for c in (code, data_only, "import rlearly.tasks.openmath", "import rlearly.tasks.gsm_symbolic",
              "import rlearly.tasks.math", "import rlearly.tasks.gsm8k", "import rlearly.tasks.synthetic"):
        r = subprocess.run([sys.executable, "-c", c], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
