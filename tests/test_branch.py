"""Every post-training recipe on the tiny preset: lineage, parameters move, losses finite, exact resume."""
import json
import math

import pytest
import torch

from rlearly.checkpoint import load_checkpoint, read_meta
from rlearly.config import load_config
from rlearly.errors import ConfigError
from rlearly.tasks import SyntheticTask, get_task
from rlearly.train import branch
from rlearly.train.common import read_metrics
from rlearly.train.mix import ParallelRecipe, interleave_schedule
from rlearly.train.rl import RLRecipe
from rlearly.train.sft import SFTRecipe, collate


def test_collate_masks_only_response_targets():
    x, y, mask = collate([([1, 5, 6], [7, 8, 2]), ([1, 9], [2])], pad_id=0)
    # row 0: seq 1 5 6 7 8 2 -> targets 5 6 7 8 2, response targets are 7 8 2 (positions 2..4)
    assert x.tolist() == [[1, 5, 6, 7, 8], [1, 9, 2, 0, 0]]
    assert y.tolist() == [[5, 6, 7, 8, 2], [9, 2, 0, 0, 0]]
    assert mask.tolist() == [[0, 0, 1, 1, 1], [0, 1, 0, 0, 0]]


def test_interleave_schedule_alternates_blocks():
    assert interleave_schedule(3, 5, 2) == [("sft", 0), ("sft", 1), ("rl", 0), ("rl", 1), ("sft", 2),
                                            ("rl", 2), ("rl", 3), ("rl", 4)]


@pytest.mark.parametrize("method", ["sft", "sft_gold", "rl", "parallel", "combined", "interleaved", "sft_rl"])
def test_every_recipe_moves_every_parameter(method, tiny_ckpt, tmp_path, monkeypatch):
    # the tiny model never solves a problem, so every GRPO group would have zero reward variance and zero
    # gradient; a reward on the parity of the completion length gives mixed groups and exercises the update
    monkeypatch.setattr(SyntheticTask, "reward", lambda self, text, problem: float(len(text) % 2))
    cfg = load_config(tiny_ckpt / "config.yaml", ["rl.lr=1e-2", "sft.lr=1e-2"])
    out = branch.run(cfg, tiny_ckpt, tmp_path / method, method, show_progress=False)
    assert (out / "DONE").exists()
    start, _, _ = load_checkpoint(tiny_ckpt)
    final, _, meta = load_checkpoint(out / "final")
    for (name, a), (_, b) in zip(start.named_parameters(), final.named_parameters()):
        assert not torch.equal(a, b), f"{method} left {name} unchanged"
    assert meta["method"] == method and meta["config_hash"] == cfg.hash()
    expected_parent = out / "sft" / "final" if method == "sft_rl" else tiny_ckpt
    assert meta["parent"] == str(expected_parent)
    assert meta["parent_id"] == read_meta(expected_parent)["files"]["model.safetensors"]["sha256"][:16]
    rows = read_metrics(out / "metrics.jsonl")
    n_steps = cfg.rl.steps if method == "sft_rl" else branch.total_steps(method, cfg)
    assert [r["step"] for r in rows] == list(range(1, n_steps + 1))
    losses = [v for r in rows for k, v in r.items() if k.endswith("loss")]
    assert losses and all(math.isfinite(v) for v in losses)
    assert "val_pass@1" in rows[-1] and 0.0 <= rows[-1]["val_pass@1"] <= 1.0
    if method in ("rl", "parallel", "combined", "sft_rl"):
        assert all(0.0 <= r["reward_mean"] <= 1.0 and 0.0 <= r["frac_zero_std"] <= 1.0 for r in rows)


def test_sft_gold_trains_on_all_demos_and_sft_on_one(tiny_ckpt):
    cfg = load_config(tiny_ckpt / "config.yaml")
    model, tok, _ = load_checkpoint(tiny_ckpt)
    task = get_task("synthetic", world=cfg.world)
    problems = task.problems("train")
    one = SFTRecipe(cfg, model, tok, task, all_demos=False)
    gold = SFTRecipe(cfg, model, tok, task, all_demos=True)
    assert len(one.examples) == len(problems)
    assert len(gold.examples) == sum(len(p.solutions) for p in problems) > 3 * len(problems)


def test_parallel_is_the_average_of_two_steps_from_one_snapshot(tiny_ckpt):
    cfg = load_config(tiny_ckpt / "config.yaml", ["rl.lr=1e-2", "sft.lr=3e-3"])
    task = get_task("synthetic", world=cfg.world)
    model, tok, _ = load_checkpoint(tiny_ckpt)
    par = ParallelRecipe(cfg, model, tok, task)
    par.step(0)
    # the same two steps taken separately from the same start, each with a fresh optimizer
    m_rl, _, _ = load_checkpoint(tiny_ckpt)
    RLRecipe(cfg, m_rl, tok, task).step(0)
    m_sft, _, _ = load_checkpoint(tiny_ckpt)
    SFTRecipe(cfg, m_sft, tok, task, all_demos=False).step(0)
    for p, a, b in zip(model.parameters(), m_rl.parameters(), m_sft.parameters()):
        assert torch.allclose(p, 0.5 * (a + b), atol=1e-6)
    # two optimizers, each with its own Adam moments: the RL and SFT gradients differ, so do the moments
    rl_state = par.rl.opt.state[next(iter(model.parameters()))]
    sft_state = par.sft.opt.state[next(iter(model.parameters()))]
    assert par.rl.opt is not par.sft.opt
    assert not torch.equal(rl_state["exp_avg"], sft_state["exp_avg"])


def test_killed_rl_branch_resumes_to_identical_weights(tiny_ckpt, tmp_path):
    cfg = load_config(tiny_ckpt / "config.yaml", ["rl.steps=4", "branch.save_every=2", "rl.lr=1e-2"])
    full = branch.run(cfg, tiny_ckpt, tmp_path / "full", "rl", show_progress=False)
    part = tmp_path / "part"
    branch.run(cfg, tiny_ckpt, part, "rl", show_progress=False, stop_after=3)  # dies after step 3
    assert not (part / "DONE").exists() and (part / "state").exists()
    branch.run(cfg, tiny_ckpt, part, "rl", show_progress=False)
    a, _, _ = load_checkpoint(full / "final")
    b, _, _ = load_checkpoint(part / "final")
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), k
    assert [r["step"] for r in read_metrics(part / "metrics.jsonl")] == [1, 2, 3, 4]
    assert json.loads((part / "meta.json").read_text())["steps"] == 4


def test_unknown_method_is_refused(tiny_ckpt, tmp_path):
    with pytest.raises(ConfigError, match="unknown method 'dpo'; known: sft, sft_gold, rl"):
        branch.run(load_config(preset="tiny"), tiny_ckpt, tmp_path / "x", "dpo")


def test_cli_branch_runs_and_refuses_bad_input(tiny_ckpt, tmp_path):
    import subprocess
    import sys

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "rlearly.cli", "branch", *args], capture_output=True, text=True)

    out = tmp_path / "b"
    r = cli(str(tiny_ckpt), "--method", "sft", "--out", str(out), "--no-progress", "sft.steps=2", "branch.eval_every=0")
    assert r.returncode == 0, r.stderr
    assert f"done: {out}" in r.stdout and (out / "final" / "meta.json").exists()
    bad = cli(str(tiny_ckpt), "--method", "ppo")
    assert bad.returncode == 2 and "unknown method 'ppo'" in bad.stderr and bad.stderr.count("\n") == 1
    missing = cli(str(tmp_path / "nope"), "--method", "rl")
    assert missing.returncode == 2 and "checkpoint not found" in missing.stderr
    typo = cli(str(tiny_ckpt), "--method", "rl", "rl.stepz=3")
    assert typo.returncode == 2 and "unknown config key 'rl.stepz'" in typo.stderr
