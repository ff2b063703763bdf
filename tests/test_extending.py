"""docs/EXTENDING.md, done: a made-up unit of each kind (task, claim, sampling engine, device) added exactly as the
doc says, with one registering line, and used end to end. (The recipe's test is in test_branch.py.)"""
import json
import sys
import types

import pytest
import torch

from rlearly.config import RuntimeConfig, load_config
from rlearly.evaluation import evaluate
from rlearly.evaluation.store import SampleStore
from rlearly.files import read_metrics
from rlearly.lm import runtime
from rlearly.lm.checkpoint import read_meta
from rlearly.results.tables import load_tables
from rlearly.tasks import SyntheticTask
from rlearly.train import branch


@pytest.fixture
def addition():
    """The doc's AdditionTask, registered with its one line, and removed again after the test."""
    from rlearly.tasks.answers import last_boxed
    from rlearly.tasks.base import _TASKS, Task, TaskProblem, register_task

    @register_task
    class AdditionTask(Task):
        name = "addition"
        splits = ("train", "dev", "test")

        def _load(self, split):
            off = {"train": 0, "dev": 100, "test": 200}[split]
            return [TaskProblem(f"{split}-{i}", f"What is {i + off} + 3?", i + off + 3,
                                (f"{i + off} + 3 = {i + off + 3}. \\boxed{{{i + off + 3}}}",)) for i in range(20)]

        def extract(self, completion):
            return last_boxed(completion)

        def is_correct(self, extracted, problem):
            return extracted == str(problem.answer)

    yield AdditionTask
    del _TASKS["addition"]


def test_a_made_up_task_trains_and_is_evaluated(addition, tiny_ckpt, tmp_path):
    from rlearly.tasks import get_task, known_tasks

    task = get_task("addition")
    p = task.problems("test")[0]
    assert "addition" in known_tasks() and p.question == "What is 200 + 3?"
    assert task.reward("200 + 3 = 203. \\boxed{203}", p) == 1.0 and task.reward("\\boxed{204}", p) == 0.0
    assert task.prompt(p) == "What is 200 + 3?\n"
    cfg = load_config(tiny_ckpt / "config.yaml", ["task.name=addition", "sft.steps=2", "branch.eval_every=2",
                                                  "branch.eval_problems=4", "branch.eval_n=2"])
    out = branch.run(cfg, tiny_ckpt, tmp_path / "sft", "sft", show_progress=False)
    rows = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2] and all(r["sft_loss"] > 0 for r in rows)
    assert 0.0 <= rows[-1]["val_pass@1"] <= 1.0  # validated on the task's own dev split
    res = evaluate.evaluate_passk(out / "final", "addition", "test", n=2, ks=[1, 2], store_root=tmp_path / "s",
                                  max_problems=5, progress=False)
    assert res["task"] == "addition" and res["task_id"].startswith("addition-") and res["n_problems"] == 5
    stored = SampleStore(tmp_path / "s").load(res["task_id"], res["checkpoint_id"], "test")
    assert len(stored) == 10 and set(stored["correct"]) <= {True, False}
    with pytest.raises(Exception, match="held out"):  # the base class refuses to train on a held-out split
        branch.run(load_config(tiny_ckpt / "config.yaml", ["task.name=addition", "rl.split=test"]), tiny_ckpt,
                   tmp_path / "bad", "rl", show_progress=False)
    assert not (tmp_path / "bad").exists()  # refused before any file was written
    assert addition.result_name("test") == "addition-test"


def test_a_made_up_claim_is_judged_on_a_study(tmp_path):
    """The doc's claim 11, registered by its decorator, judged with the others on a made-up study where RL gains
    (held) and on one where it does not (no significant effect)."""
    from test_claims import MadeUp, T, c

    from rlearly.results import claims
    from rlearly.results.claims.rules import CLAIMS, Rule, _sig, register

    @register(11, "RL raises pass@1 at the last checkpoint", "+40 pp at 20B tokens",
              (Rule("gain", "Δpass@1 RL − base at the last checkpoint", "Δ ≤ 0", "0", "paired bootstrap"),),
              methods=("rl", "base"))
    def _claim11(s, parts):
        d = s.contrast("rl", "base", k=1).iloc[-1]
        _sig(parts["gain"], d["low"], d["high"])
        parts["gain"].value = f"{d['diff']:+.3f}"
        return {"gain": float(d["diff"])}

    try:
        for name, rl in (("gains", c((30, 6), (10, 0))), ("flat", c((10, 2), (30, 0)))):
            m = MadeUp(tmp_path / name)
            m.ev("base", T[-1], c((10, 2), (30, 0)))
            m.ev("rl", T[-1], rl)
            cls = claims.claims(m.write())
            mine = next(x for x in cls if x.id == 11)
            assert len(cls) == 11 and mine.verdict == {"gains": claims.HELD, "flat": claims.NO_EFFECT}[name]
            # pass@1 by hand: base 10 problems at 2/8 -> 0.0625; RL 30 at 6/8 -> 0.5625 (gains) or as base (flat)
            assert claims.claims_results(cls)["claim11.gain"] == pytest.approx({"gains": 0.5, "flat": 0.0}[name])
            assert f"claim 11: {mine.verdict}" in claims.claims_text(cls, load_tables(m.root))
    finally:
        CLAIMS.pop(11)


@pytest.fixture
def echo_engine(monkeypatch):
    """A made-up sampling engine (a module of the doc's interface) that samples through rlearly's own sampler and
    counts its calls, registered with its one line."""
    from rlearly import sampling
    from rlearly.sampling import torch_engine

    calls = {"generate": 0, "rollouts": 0, "check": 0}
    mod = types.ModuleType("made_up_engine")

    def check():
        calls["check"] += 1

    def generate(model, prompts, **kw):
        calls["generate"] += 1
        return torch_engine.generate(model, prompts, **kw)

    class Sampler(torch_engine.RolloutSampler):
        def generate(self, prompts, **kw):
            calls["rollouts"] += 1
            return super().generate(prompts, **kw)

    mod.check, mod.load, mod.generate = check, torch_engine.load, generate
    mod.rollout_sampler = lambda model, tok, rl: Sampler(model)
    monkeypatch.setitem(sys.modules, "made_up_engine", mod)
    sampling.register_engine(sampling.Engine("echo", "made_up_engine", "rlearly's sampler, counted"))
    yield calls
    del sampling.ENGINES["echo"]


def test_a_made_up_sampling_engine_serves_evaluation_and_rl(echo_engine, tiny_ckpt, tmp_path, monkeypatch):
    from rlearly.cli import main

    res = evaluate.evaluate_passk(tiny_ckpt, "synthetic", "test", n=2, ks=[1], store_root=tmp_path / "s",
                                  max_problems=3, progress=False, backend="echo")
    assert echo_engine["generate"] >= 1
    stored = SampleStore(tmp_path / "s").load(res["task_id"], res["checkpoint_id"], "test")
    assert len(stored) == 6 and set(stored["backend"]) == {"echo"}  # stored apart from the torch engine's
    monkeypatch.setattr(SyntheticTask, "reward", lambda self, text, problem: float(len(text) % 2))  # mixed groups
    cfg = load_config(tiny_ckpt / "config.yaml", ["rl.backend=echo", "rl.steps=2", "branch.eval_every=0"])
    out = branch.run(cfg, tiny_ckpt, tmp_path / "rl", "rl", show_progress=False)
    assert echo_engine["check"] == 1 and echo_engine["rollouts"] == 2  # checked first, then one batch a step
    assert len(read_metrics(out / "metrics.jsonl")) == 2
    assert main(["eval", str(tiny_ckpt), "--backend", "nope", "--n", "1", "--k", "1", "--store", str(tmp_path)]) == 2


def test_a_made_up_device_runs_a_branch(tiny_ckpt, tmp_path):
    """A device kind registered with its one line: runtime.device names it (with an index, or bare), stages run
    there (here it is the CPU under another name) and artifacts record its name."""
    dev = runtime.register_device(runtime.Device("fakeacc", lambda: True, lambda i: torch.device("cpu"),
                                                 count=lambda: 2, label=lambda d: "Fake Accelerator 9000"))
    try:
        rt = runtime.resolve(RuntimeConfig(device="fakeacc:1"))
        assert rt.device == torch.device("cpu") and rt.describe()["device_name"] == "Fake Accelerator 9000"
        with pytest.raises(Exception, match="this machine has 2 fakeacc device"):
            runtime.resolve(RuntimeConfig(device="fakeacc:2"))
        cfg = load_config(tiny_ckpt / "config.yaml", ["runtime.device=fakeacc", "sft.steps=1", "branch.eval_every=0"])
        assert cfg.hash() == load_config(tiny_ckpt / "config.yaml", ["sft.steps=1", "branch.eval_every=0"]).hash()
        out = branch.run(cfg, tiny_ckpt, tmp_path / "sft", "sft", show_progress=False)
        assert json.loads((out / "meta.json").read_text())["runtime"]["device_name"] == "Fake Accelerator 9000"
        assert read_meta(out / "final")["runtime"]["device_name"] == "Fake Accelerator 9000"
    finally:
        del runtime.DEVICES[dev.name]
