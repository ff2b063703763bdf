"""Tiny end-to-end pretraining: learns, checkpoints on schedule, resumes exactly after an interruption."""
import json
import subprocess
import sys

import pytest
import torch

from rlearly.config import load_config
from rlearly.files import read_metrics
from rlearly.lm.checkpoint import load_checkpoint
from rlearly.train import pretrain
from rlearly.train.common import cosine_lr


def test_cosine_schedule_values():
    # warmup 10 steps to 1.0, then cosine to 0.1 at step 110
    assert cosine_lr(0, 110, 10, 1.0, 0.1) == pytest.approx(0.1)
    assert cosine_lr(9, 110, 10, 1.0, 0.1) == pytest.approx(1.0)
    assert cosine_lr(60, 110, 10, 1.0, 0.1) == pytest.approx(0.55)  # halfway: 0.1 + 0.9 * 0.5
    assert cosine_lr(110, 110, 10, 1.0, 0.1) == pytest.approx(0.1)


@pytest.fixture
def tiny_run(tiny_pretrain_run):
    return tiny_pretrain_run


def test_tiny_pretraining_learns_and_checkpoints(tiny_run):
    cfg, out = tiny_run
    assert (out / "DONE").exists()
    ckpts = pretrain.list_checkpoints(out)
    assert [p.name for p in ckpts] == ["ckpt-0000008192", "ckpt-0000016384"]
    rows = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [8, 16]
    assert all(r["heldout_math"] < 6.0 and r["heldout_general"] < 6.0 for r in rows)
    assert rows[-1]["loss"] < rows[0]["loss"] < 6.2  # ln(512) = 6.24 at chance
    for key in ("greedy_0shot_answer", "greedy_0shot_graded", "greedy_2shot_answer", "greedy_2shot_graded"):
        assert all(0.0 <= r[key] <= 1.0 for r in rows)  # both rows are checkpoints
    model, tok, meta = load_checkpoint(ckpts[-1])
    assert meta["method"] == "pretrain" and meta["tokens"] == 16384 and meta["step"] == 16
    assert meta["config_hash"] == cfg.hash() and meta["parent"] is None
    run_meta = json.loads((out / "meta.json").read_text())
    assert run_meta["checkpoints"] == [p.name for p in ckpts]


def test_interrupted_run_resumes_to_identical_weights(tiny_run, tmp_path):
    cfg, full = tiny_run
    out = tmp_path / "run"
    pretrain.run(cfg, out, show_progress=False, stop_after=6)  # "killed" after step 6 (state saved at 4)
    assert not (out / "DONE").exists()
    pretrain.run(cfg, out, show_progress=False)
    assert (out / "DONE").exists()
    a, _, _ = load_checkpoint(pretrain.list_checkpoints(full)[-1])
    b, _, _ = load_checkpoint(pretrain.list_checkpoints(out)[-1])
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), k
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == [8, 16]


def test_rerun_of_finished_run_does_nothing(tiny_run):
    cfg, out = tiny_run
    before = (out / "metrics.jsonl").read_text()
    pretrain.run(cfg, out, show_progress=False)
    assert (out / "metrics.jsonl").read_text() == before


def test_other_config_in_same_dir_is_refused(tiny_run, tmp_path):
    cfg, _ = tiny_run
    out = tmp_path / "r"
    out.mkdir()
    (out / "config.yaml").write_text(load_config(preset="tiny", overrides=["seed=5"]).to_yaml())
    from rlearly.errors import ConfigError
    with pytest.raises(ConfigError, match="holds a run of another config"):
        pretrain.run(cfg, out, show_progress=False)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "rlearly.cli", *args], capture_output=True, text=True)


@pytest.mark.parametrize("args,needle", [
    (["config", "pretrain.bogus=1"], "unknown config key 'pretrain.bogus'"),
    (["config", "model.n_layer=abc"], "'model.n_layer' must be an integer"),
    (["info", "/nonexistent/ckpt"], "checkpoint not found: /nonexistent/ckpt"),
    (["pretrain", "--config", "/nonexistent.yaml"], "config file not found"),
])
def test_cli_errors_are_one_line_and_nonzero(args, needle):
    r = _cli(*args)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and needle in r.stderr and "Traceback" not in r.stderr
