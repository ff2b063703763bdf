"""Data-parallel training through torchrun: 2 processes (gloo, CPU) reproduce 1 process up to fp order.

The torchrun runs compare final weights with the one-process run by `drift` = |w_2proc - w_1proc| /
|w_1proc - w_start| over all tensors: how far the runs disagree relative to how far training moved the
weights. It is not 0 because floating-point sums run in another order (each rank sums its rows, then the
ranks' sums are added; rollouts are sampled in smaller batches), and Adam amplifies those ~1e-7 relative
differences where a gradient is near 0 (m/sqrt(v) is ill-conditioned there), as does PPO's clip where a
ratio sits at its boundary. Measured here: 2e-7 (pretraining), 4e-6 (SFT), 1e-5 to 3e-5 (GRPO after SFT).
A split batch averaged as a mean of per-rank means instead of by global token counts gives 4e-2 on SFT,
so TOLERANCE = 1e-3 separates order effects from a wrong reduction.
"""
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from rlearly.config import load_config
from rlearly.errors import ConfigError
from rlearly.files import MetricsLog, read_metrics
from rlearly.lm.checkpoint import load_checkpoint
from rlearly.lm.losses import AGG_MODES, aggregate
from rlearly.lm.model import LlamaLM
from rlearly.tasks import SyntheticTask
from rlearly.train import branch, pretrain
from rlearly.train.dist import DataParallel, data_parallel, loss_share

TOLERANCE = 1e-3

# the torchrun tests: `-m "not dist"` deselects them; they skip themselves where gloo is missing
needs_gloo = pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                                reason="torch.distributed with gloo is not available")


@pytest.mark.parametrize("agg", AGG_MODES)
def test_loss_shares_of_a_split_batch_add_up_to_the_whole_batch_loss(agg):
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    parts = [slice(0, 1), slice(1, 3)]  # rank 0 holds row 0 (3 tokens), rank 1 rows 1-2 (2 tokens)
    whole = aggregate(x, mask, agg, max_len=3)
    total = sum(loss_share(agg, len(x[p]), 3, float(mask[p].sum()), 5.0) * aggregate(x[p], mask[p], agg, max_len=3)
                for p in parts)
    assert float(total) == pytest.approx(float(whole), rel=1e-6)
    if agg == "token-mean":
        # (1+2+3 + 4 + 7) / 5 = 3.4 = 3/5 * 2 + 2/5 * 5.5, not the mean of the ranks' means (2 + 5.5) / 2 = 3.75
        assert float(whole) == pytest.approx(3.4) and float(total) == pytest.approx(3/5 * 2 + 2/5 * 5.5)


def test_shards_cover_every_item_once():
    for size in (1, 2, 3, 4):
        for n in range(size, 10):
            parts = [DataParallel(rank, size).shard(n) for rank in range(size)]
            assert [i for p in parts for i in range(n)[p]] == list(range(n))
            assert max(p.stop - p.start for p in parts) - min(p.stop - p.start for p in parts) <= 1


def test_one_process_calls_nothing_distributed(monkeypatch, tmp_path):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    dp = data_parallel()
    assert dp == DataParallel(0, 1) and dp.main and not dp.active
    assert dp.shard(5) == slice(0, 5) and dp.all_sum(2, torch.tensor(3.0)) == [2.0, 3.0]
    assert dp.reduce_stats({"loss": 1.5}, 10) == {"loss": 1.5}
    assert isinstance(dp.metrics_log(tmp_path / "m.jsonl"), MetricsLog)
    with pytest.raises(Exception, match="smaller than the 2 data-parallel processes"):
        DataParallel(0, 2).require(1, "rl.prompts_per_step")


def test_other_commands_refuse_to_run_under_torchrun():
    r = subprocess.run([sys.executable, "-m", "rlearly.cli", "eval", "some/ckpt"], capture_output=True, text=True,
                       env={**os.environ, "WORLD_SIZE": "2"})
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "`rlearly eval` runs in one process; torchrun runs `rlearly pretrain` and `rlearly branch`" in r.stderr


def _torchrun(*args) -> None:
    """`torchrun --standalone --nproc_per_node 2 ARGS`, one thread per process."""
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args],
                       env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]


def drift(start: LlamaLM, one: LlamaLM, two: LlamaLM) -> float:
    """|two - one| / |one - start| over every tensor (see the module docstring)."""
    diff = moved = 0.0
    for (k, w0), (_, a), (_, b) in zip(start.state_dict().items(), one.state_dict().items(),
                                       two.state_dict().items()):
        diff += float((a - b).double().square().sum())
        moved += float((a - w0).double().square().sum())
    return (diff / moved) ** 0.5


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.dist
@needs_gloo
def test_torchrun_pretraining_matches_one_process(tiny_pretrain_run, tmp_path):
    cfg, one = tiny_pretrain_run
    out = tmp_path / "two"
    _torchrun("-m", "rlearly.cli", "pretrain", "--preset", "tiny", "--out", str(out), "--no-progress")
    # rank 0 alone wrote: the same files as one process (one metrics log, no temp directories left)
    assert _files(out) == _files(one) and not any(p.name.startswith(".") for p in out.rglob("*"))
    assert [p.name for p in pretrain.list_checkpoints(out)] == ["ckpt-0000008192", "ckpt-0000016384"]
    rows_one, rows_two = read_metrics(one / "metrics.jsonl"), read_metrics(out / "metrics.jsonl")
    assert [(r["step"], r["tokens"]) for r in rows_two] == [(r["step"], r["tokens"]) for r in rows_one] \
        == [(8, 8192), (16, 16384)]
    for a, b in zip(rows_one, rows_two):  # the loss of the global batch, gathered from both ranks
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4)
    a, tok, meta = load_checkpoint(pretrain.list_checkpoints(one)[-1])
    b, _, meta_two = load_checkpoint(pretrain.list_checkpoints(out)[-1])
    assert (meta_two["step"], meta_two["tokens"]) == (meta["step"], meta["tokens"]) == (16, 16384)
    torch.manual_seed(cfg.seed)  # the initial weights, as pretrain.run makes them
    start = LlamaLM(cfg.model, tok.vocab_size)
    assert drift(start, a, b) < TOLERANCE


PRETRAIN_WORKER = """
import sys
from rlearly.config import load_config
from rlearly.errors import ConfigError
from rlearly.train import pretrain

out, stop, *overrides = sys.argv[1:]
pretrain.run(load_config(overrides=overrides, preset="tiny"), out, show_progress=False, stop_after=int(stop))
"""


@pytest.mark.dist
@needs_gloo
def test_torchrun_fsdp_pretraining_resumes_and_matches_one_process(tiny_pretrain_run, tmp_path):
    # runtime.shard=fsdp: each rank holds half of every weight, gradient and AdamW moment. Killed at step 10
    # (its state saved at step 8) and resumed: the saved state holds whole tensors (gathered from the shards)
    # and is cut into shards again on load. Its checkpoints are the files one process writes.
    cfg, one = tiny_pretrain_run
    (tmp_path / "worker.py").write_text(PRETRAIN_WORKER)
    out = tmp_path / "fsdp"
    _torchrun(str(tmp_path / "worker.py"), str(out), "10", "runtime.shard=fsdp")
    assert not (out / "DONE").exists() and [p.name for p in pretrain.list_checkpoints(out)] == ["ckpt-0000008192"]
    _torchrun(str(tmp_path / "worker.py"), str(out), "100", "runtime.shard=fsdp")
    assert _files(out) == _files(one) and not any(p.name.startswith(".") for p in out.rglob("*"))
    for a, b in zip(read_metrics(one / "metrics.jsonl"), read_metrics(out / "metrics.jsonl"), strict=True):
        assert (b["step"], b["tokens"]) == (a["step"], a["tokens"])
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4)  # the global norm, from the shards
        assert b["heldout_math"] == pytest.approx(a["heldout_math"], rel=1e-5)  # on the gathered copy
    last_one, last = pretrain.list_checkpoints(one)[-1], pretrain.list_checkpoints(out)[-1]
    shapes = lambda p: {k: tuple(v.shape) for k, v in load_file(p / "trainer" / "optimizer.safetensors").items()}  # noqa: E731
    assert shapes(last) == shapes(last_one)  # whole moments, not one rank's shard
    a, tok, _ = load_checkpoint(last_one)
    b, _, meta = load_checkpoint(last)
    assert meta["step"] == 16 and meta["runtime"]["device"] == "cpu"
    torch.manual_seed(cfg.seed)
    assert drift(LlamaLM(cfg.model, tok.vocab_size), a, b) < TOLERANCE


WORKER = """
import sys
from rlearly.config import load_config
from rlearly.errors import ConfigError
from rlearly.tasks import SyntheticTask
from rlearly.train import branch

SyntheticTask.reward = lambda self, text, problem: float(len(text) % 2)  # as in the test
ckpt, out, *overrides = sys.argv[1:]
branch.run(load_config(f"{ckpt}/config.yaml", overrides), ckpt, out, "sft_rl", show_progress=False)
"""


@pytest.mark.dist
@needs_gloo
def test_torchrun_sft_then_grpo_resumes_a_one_process_run_and_matches_it(tiny_ckpt, tmp_path, monkeypatch):
    # the tiny model never solves a problem (all GRPO advantages 0): reward the parity of the length instead.
    # Two mini-batches of 2 prompts out of 4: some hold only one rank's prompts (the other adds no gradient)
    monkeypatch.setattr(SyntheticTask, "reward", lambda self, text, problem: float(len(text) % 2))
    overrides = ["rl.lr=1e-2", "sft.lr=1e-2", "rl.mini_batches=2", "rl.kl_coef=0.01"]
    cfg = load_config(tiny_ckpt / "config.yaml", overrides)
    one = branch.run(cfg, tiny_ckpt, tmp_path / "one", "sft_rl", show_progress=False)
    two = tmp_path / "two"
    branch.run(cfg, tiny_ckpt, two, "sft_rl", show_progress=False, stop_after=3)  # one process, killed after
    assert not (two / "sft" / "DONE").exists()  # SFT step 3, its state saved at step 2
    (tmp_path / "worker.py").write_text(WORKER)
    # both ranks load that state; each also splits its part of every batch in 2 micro-batches (an execution
    # setting, outside the config hash): ranks and micro-batches weighted together still take one process's steps
    _torchrun(str(tmp_path / "worker.py"), str(tiny_ckpt), str(two), *overrides, "runtime.micro_batches=2")

    assert _files(two) == _files(one) and not any(p.name.startswith(".") for p in two.rglob("*"))
    for sub, steps in (("sft", cfg.sft.steps), (".", cfg.rl.steps)):
        rows_one, rows_two = read_metrics(one / sub / "metrics.jsonl"), read_metrics(two / sub / "metrics.jsonl")
        assert [r["step"] for r in rows_two] == list(range(1, steps + 1))
        for a, b in zip(rows_one, rows_two):  # the whole batch's stats, gathered from both ranks
            assert b.keys() == a.keys()
            for k in {"sft_loss", "sft_tokens", "rl_loss", "rl_entropy", "rl_pg_clip_frac"} & a.keys():
                assert b[k] == pytest.approx(a[k], rel=1e-4, abs=1e-6), (sub, k)
            for k in {"reward_mean", "response_len", "truncated_frac", "frac_zero_std"} & a.keys():
                assert b[k] == pytest.approx(a[k], rel=1e-9), (sub, k)  # the very same rollouts
    start, _, _ = load_checkpoint(tiny_ckpt)
    for sub in ("sft/final", "final"):
        a, _, meta = load_checkpoint(one / sub)
        b, _, meta_two = load_checkpoint(two / sub)
        assert meta_two["step"] == meta["step"]
        assert drift(start, a, b) < TOLERANCE, sub


def test_a_sharded_branch_is_refused_under_torchrun(tiny_ckpt, tmp_path, monkeypatch):
    # branches sample rank-locally with the whole model: FSDP2 there is refused at once, before any collective
    monkeypatch.setattr(branch, "data_parallel", lambda: DataParallel(0, 2))
    cfg = load_config(tiny_ckpt / "config.yaml", ["runtime.shard=fsdp"])
    with pytest.raises(ConfigError, match="runtime.shard=fsdp shards pretraining only"):
        branch.run(cfg, tiny_ckpt, tmp_path / "b", "sft", show_progress=False)
    assert not (tmp_path / "b").exists()
