"""The runtime on a real GPU (make gpu-check; skipped where torch sees no CUDA device).

What they hold: every stage (pretraining, every recipe, evaluation) runs with runtime.device=cuda, its tensors on
the GPU, and writes fp32 CPU checkpoints that record the device; a few pretraining steps on the GPU give the
CPU's losses to float tolerance; bf16 autocast runs and stays near fp32.
"""
import math

import pytest
import torch

from rlearly.config import load_config
from rlearly.evaluation import evaluate
from rlearly.files import read_metrics
from rlearly.lm.checkpoint import load_checkpoint, read_meta
from rlearly.tasks import SyntheticTask
from rlearly.train import branch, pretrain

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (make gpu-check)")]
SHORT = ["pretrain.tokens=8192", "pretrain.checkpoints=[8192]", "pretrain.eval_every=1"]


def _pretrain(tmp_path, name, *over):
    run = pretrain.run(load_config(preset="tiny", overrides=SHORT + list(over)), tmp_path / name, show_progress=False)
    return run, pretrain.list_checkpoints(run)[-1]


def test_every_stage_runs_on_the_gpu(tmp_path, monkeypatch):
    monkeypatch.setattr(SyntheticTask, "reward", lambda self, text, problem: float(len(text) % 2))
    _, ckpt = _pretrain(tmp_path, "pre", "runtime.device=cuda")
    meta = read_meta(ckpt)
    assert meta["runtime"]["device"] == "cuda:0" and meta["runtime"]["device_name"] != "cpu"
    model, _, _ = load_checkpoint(ckpt)
    assert all(p.device.type == "cpu" and p.dtype == torch.float32 for p in model.parameters())
    cfg = load_config(ckpt / "config.yaml", ["rl.steps=2", "sft.steps=2", "branch.eval_every=2"])
    for method in ("sft", "sft_gold", "rl", "parallel", "sft_rl"):
        out = branch.run(cfg, ckpt, tmp_path / method, method, show_progress=False)
        assert (out / "DONE").exists() and read_meta(out / "final")["runtime"]["device"] == "cuda:0"
    res = evaluate.evaluate_passk(tmp_path / "rl" / "final", "synthetic", "dev", 4, [1, 4], 0, tmp_path / "samples",
                                  max_problems=8, progress=False, device="cuda")
    assert 0.0 <= res["passk"][-1]["pass_at_k"] <= 1.0


def test_the_gpu_takes_the_cpus_steps(tmp_path):
    """The same seed and batches on both devices: losses agree to float tolerance over the first steps."""
    cpu, _ = _pretrain(tmp_path, "cpu", "runtime.device=cpu")
    gpu, _ = _pretrain(tmp_path, "gpu", "runtime.device=cuda")
    a, b = read_metrics(cpu / "metrics.jsonl")[:4], read_metrics(gpu / "metrics.jsonl")[:4]
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b):
        assert rb["loss"] == pytest.approx(ra["loss"], rel=1e-3)


def test_bf16_autocast_runs_and_stays_near_fp32(tmp_path):
    fp32, _ = _pretrain(tmp_path, "fp32", "runtime.device=cuda")
    bf16, _ = _pretrain(tmp_path, "bf16", "runtime.device=cuda", "runtime.dtype=bf16")
    a, b = read_metrics(fp32 / "metrics.jsonl")[-1], read_metrics(bf16 / "metrics.jsonl")[-1]
    assert math.isfinite(b["loss"]) and b["loss"] == pytest.approx(a["loss"], rel=0.05)


@pytest.mark.parametrize("family", ["olmo2", "gpt_neox"])
def test_another_family_pretrains_and_branches_on_the_gpu_as_on_the_cpu(tmp_path, family):
    """A family other than Llama (issue 39) on the GPU: pretraining steps give the CPU's losses, and RL runs."""
    over = [f"model.family={family}"]
    losses = {}
    for dev in ("cpu", "cuda"):
        run, ckpt = _pretrain(tmp_path, f"{family}-{dev}", f"runtime.device={dev}", *over)
        losses[dev] = [r["loss"] for r in read_metrics(run / "metrics.jsonl") if "loss" in r]
    assert all(math.isclose(a, b, rel_tol=1e-3) for a, b in zip(losses["cpu"], losses["cuda"])), losses
    cfg = load_config(ckpt / "config.yaml", ["rl.steps=2", "branch.eval_every=0"])
    out = branch.run(cfg, ckpt, tmp_path / f"{family}-rl", "rl", show_progress=False)
    assert (out / "DONE").exists() and load_checkpoint(out / "final")[0].cfg.family == family
