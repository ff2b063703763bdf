"""The runtime seam: device and precision resolved once, every stage's tensors on the runtime device, bf16."""
import math

import pytest
import torch
from device_audit import HostAudit

from rlearly.config import RuntimeConfig, load_config
from rlearly.errors import ConfigError
from rlearly.evaluation import evaluate
from rlearly.evaluation.general import general_capability
from rlearly.files import read_metrics
from rlearly.lm.checkpoint import load_checkpoint, read_meta
from rlearly.lm.runtime import place, resolve, to_device
from rlearly.tasks import SyntheticTask
from rlearly.train import branch, pretrain


def test_the_audit_catches_a_host_tensor_meeting_a_device_tensor():
    # a rule that cannot fail is not a test: made-up code with the bug, and the same code with the fix
    with HostAudit() as audit:
        w = torch.randn(4, 4, device="cpu")  # "on the device"
        x = torch.zeros(2, 4)  # no device: on the host, as on a GPU machine
        _ = x @ w
        idx = torch.from_numpy(__import__("numpy").arange(2))
        _ = w[idx]
    assert len(audit.violations) == 2 and "matmul" in audit.violations[0]
    with HostAudit() as audit:
        w = torch.randn(4, 4, device="cpu")
        x = torch.zeros(2, 4).to("cpu")  # moved: fine
        y = (x @ w).sum() * torch.tensor(2.0)  # a 0-dim host scalar mixes freely, as on CUDA
        w[0] = torch.ones(4)  # a copy into a device tensor is a transfer
        _ = to_device({"a": (x, [y])}, torch.device("cpu"))
    assert audit.violations == []


def test_every_stage_builds_its_tensors_on_the_runtime_device(tiny_ckpt, tmp_path, monkeypatch):
    """Pretraining, every recipe and evaluation, run under the audit: no tensor made off the device meets the model."""
    monkeypatch.setattr(SyntheticTask, "reward", lambda self, text, problem: float(len(text) % 2))  # mixed groups
    cfg = load_config(preset="tiny", overrides=["pretrain.tokens=4096", "pretrain.checkpoints=[4096]",
                                                "pretrain.eval_every=2"])
    with HostAudit() as audit:
        pretrain.run(cfg, tmp_path / "pre", show_progress=False)
        bcfg = load_config(tiny_ckpt / "config.yaml", ["rl.steps=2", "sft.steps=2", "branch.eval_every=2",
                                                       "rl.kl_coef=0.01", "branch.interleave_block=1"])
        for method in ("sft", "sft_gold", "rl", "parallel", "combined", "interleaved", "sft_rl"):
            branch.run(bcfg, tiny_ckpt, tmp_path / method, method, show_progress=False)
        evaluate.evaluate_passk(tiny_ckpt, "synthetic", "dev", 2, [1, 2], 0, tmp_path / "samples",
                                max_problems=4, progress=False)
        model, tok, _ = load_checkpoint(tiny_ckpt)
        general_capability(place(model), tok, bcfg.world, n_docs=4)
    assert audit.violations == [], "\n".join(dict.fromkeys(audit.violations))


def test_device_is_where_not_what_and_dtype_is_what():
    base = load_config(preset="tiny")
    assert load_config(preset="tiny", overrides=["runtime.device=cpu"]).hash() == base.hash()
    assert load_config(preset="tiny", overrides=["runtime.device=cuda:1"]).hash() == base.hash()
    assert load_config(preset="tiny", overrides=["runtime.dtype=bf16"]).hash() != base.hash()
    assert resolve().device == torch.device("cuda" if torch.cuda.is_available() else "cpu", 0 if
                                            torch.cuda.is_available() else None)


@pytest.mark.parametrize("device, needle", [("gpu", "unknown device kind 'gpu'; known: auto, cpu, cuda"),
                                            ("cuda:x", "must be one of")])
def test_a_bad_device_is_one_clear_error(device, needle):
    with pytest.raises(ConfigError, match=needle):
        resolve(RuntimeConfig(device=device))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without a GPU")
def test_cuda_without_a_gpu_fails_at_once():
    with pytest.raises(ConfigError, match="sees no GPU"):
        resolve(RuntimeConfig(device="cuda"))


def test_explicit_cpu_reproduces_the_default_bit_for_bit(tmp_path):
    over = ["pretrain.tokens=4096", "pretrain.checkpoints=[4096]"]
    a = pretrain.run(load_config(preset="tiny", overrides=over), tmp_path / "a", show_progress=False)
    b = pretrain.run(load_config(preset="tiny", overrides=over + ["runtime.device=cpu"]), tmp_path / "b",
                     show_progress=False)
    ma, _, meta = load_checkpoint(pretrain.list_checkpoints(a)[-1])
    mb, _, _ = load_checkpoint(pretrain.list_checkpoints(b)[-1])
    assert all(torch.equal(x, y) for x, y in zip(ma.state_dict().values(), mb.state_dict().values()))
    assert meta["runtime"] == {"device": "cpu", "device_name": "cpu", "dtype": "fp32"}


def test_bf16_runs_pretraining_a_branch_and_evaluation_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setattr(SyntheticTask, "reward", lambda self, text, problem: float(len(text) % 2))
    cfg = load_config(preset="tiny", overrides=["pretrain.tokens=4096", "pretrain.checkpoints=[4096]",
                                                "runtime.dtype=bf16", "rl.steps=2", "branch.eval_every=2"])
    run = pretrain.run(cfg, tmp_path / "pre", show_progress=False)
    ckpt = pretrain.list_checkpoints(run)[-1]
    model, _, meta = load_checkpoint(ckpt)
    assert meta["runtime"]["dtype"] == "bf16"
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32
    rows = read_metrics(run / "metrics.jsonl")
    assert rows and all(math.isfinite(r["loss"]) for r in rows)
    out = branch.run(cfg, ckpt, tmp_path / "rl", "rl", show_progress=False)
    rows = read_metrics(out / "metrics.jsonl")
    assert (out / "DONE").exists() and all(math.isfinite(r["rl_loss"]) for r in rows)
    assert read_meta(out / "final")["runtime"]["dtype"] == "bf16"
    res = evaluate.evaluate_passk(out / "final", "synthetic", "dev", 2, [1, 2], 0, tmp_path / "samples",
                                  max_problems=4, progress=False)
    assert 0.0 <= res["passk"][-1]["pass_at_k"] <= 1.0


BF16_STUDY = """
name: tiny-bf16
config: {preset: tiny, runtime.dtype: bf16}
branch:
  checkpoints: [-1]
  methods: [rl, sft, sft_rl, parallel]
  seeds: [0]
  overrides: {branch.eval_every: 0, rl.steps: 2, sft.steps: 2}
eval: {splits: [test], n: 2, ks: [1, 2], max_problems: 4, seed: 0}
"""


def test_bf16_runs_a_tiny_study_end_to_end(tmp_path):
    # a study whose config says bf16: every node runs, its tables fill, and each artifact records the precision
    from rlearly import study
    from rlearly.results import analysis

    (tmp_path / "bf16.yaml").write_text(BF16_STUDY)
    root = tmp_path / "study"
    study.run(study.load_study(tmp_path / "bf16.yaml"), root, log=lambda *a: None)
    passk = analysis.load_tables(root)["passk"]
    assert set(passk["method"]) == {"base", "rl", "sft", "sft_rl", "parallel"}
    assert passk["pass_at_k"].between(0, 1).all()
    finals = [*root.glob("branch/*/*/*/final"), *root.glob("pretrain/*/ckpt-*")]
    assert len(finals) == 6 and {read_meta(f)["runtime"]["dtype"] for f in finals} == {"bf16"}


def test_the_audit_catches_a_recipe_that_leaves_its_batch_on_the_host(tiny_ckpt, tmp_path, monkeypatch):
    from rlearly.train import sft

    monkeypatch.setattr(sft, "to_device", lambda obj, device: obj)  # the bug: SFT batches never moved
    cfg = load_config(tiny_ckpt / "config.yaml", ["sft.steps=1", "branch.eval_every=0"])
    with HostAudit() as audit:
        branch.run(cfg, tiny_ckpt, tmp_path / "sft", "sft", show_progress=False)
    assert any("embedding" in v and "model.py" in v for v in audit.violations)


ADAMW_STEP = torch.optim.AdamW.step


def _step(method, cfg, ckpt, monkeypatch):
    """One step of `method` from `ckpt`: the stats, and the gradient each optimizer stepped on (AdamW's first
    step moves a weight by about lr·sign(g), so tiny gradients are compared before it, not the weights after)."""
    from rlearly.tasks import get_task

    grads, step = [], ADAMW_STEP

    def record(opt, *a, **k):
        grads.append([p.grad.clone() for g in opt.param_groups for p in g["params"] if p.grad is not None])
        return step(opt, *a, **k)
    monkeypatch.setattr(torch.optim.AdamW, "step", record)
    model, tok, _ = load_checkpoint(ckpt)
    recipe = branch.make_recipe(method, cfg, model, tok, get_task("synthetic", world=cfg.world))
    branch._warmup(recipe, cfg, 0)
    return grads, recipe.step(0)


@pytest.mark.parametrize("method", ["sft", "rl"])
def test_logits_in_chunks_give_the_step_of_whole_logits(method, tiny_ckpt, monkeypatch):
    """runtime.logit_chunk: the LM head and log-probs 5 positions at a time (recomputed in backward) give the
    gradient, loss and entropy of the whole (M, V) logits."""
    monkeypatch.setattr(SyntheticTask, "reward", lambda self, text, problem: float(len(text) % 2))
    g1, s1 = _step(method, load_config(tiny_ckpt / "config.yaml"), tiny_ckpt, monkeypatch)
    g5, s5 = _step(method, load_config(tiny_ckpt / "config.yaml", ["runtime.logit_chunk=5"]), tiny_ckpt, monkeypatch)
    for a, b in zip(g1, g5):
        assert any(bool(t.abs().sum() > 0) for t in a)
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-7)
    for key in (["sft_loss"] if method == "sft" else ["rl_loss", "rl_entropy"]):
        assert s5[key] == pytest.approx(s1[key], rel=1e-5, abs=1e-7), key


@pytest.mark.parametrize("method, agg", [("sft", "token-mean"), ("sft", "seq-mean-token-mean"),
                                         ("rl", "token-mean"), ("rl", "seq-mean-token-mean"), ("parallel", "token-mean")])
def test_four_micro_batches_take_the_step_of_one(method, agg, tiny_ckpt, monkeypatch):
    """Gradient accumulation weights each part by its share of the tokens (or rows), as data parallelism weights
    ranks: one step in 4 micro-batches has the gradient of the whole step to float tolerance, and its loss."""
    monkeypatch.setattr(SyntheticTask, "reward", lambda self, text, problem: float(len(text) % 2))
    over = [f"rl.loss_agg={agg}", f"sft.loss_agg={agg}", "rl.mini_batches=1"]
    g1, s1 = _step(method, load_config(tiny_ckpt / "config.yaml", over), tiny_ckpt, monkeypatch)
    g4, s4 = _step(method, load_config(tiny_ckpt / "config.yaml", over + ["runtime.micro_batches=4"]), tiny_ckpt,
                   monkeypatch)
    assert len(g1) == len(g4) == (2 if method == "parallel" else 1)
    for a, b in zip(g1, g4):
        assert len(a) == len(b) and any(bool(t.abs().sum() > 0) for t in a)
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-7)
    key = "sft_loss" if method == "sft" else "rl_loss"
    assert s4[key] == pytest.approx(s1[key], rel=1e-5, abs=1e-7)


def test_four_micro_batches_of_pretraining_take_the_step_of_one(model):
    from rlearly.train.pretrain import train_step

    copy = __import__("copy").deepcopy(model)
    x = torch.randint(0, model.vocab_size, (8, 16), generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, model.vocab_size, (8, 16), generator=torch.Generator().manual_seed(1))
    # SGD: the step is the gradient itself (AdamW's first step is about lr·sign(g), noisy for tiny g)
    l1, g1 = train_step(model, torch.optim.SGD(model.parameters(), 0.1), x, y, 0.1, 1.0)
    l4, g4 = train_step(copy, torch.optim.SGD(copy.parameters(), 0.1), x, y, 0.1, 1.0, micro_batches=4)
    torch.testing.assert_close(l1, l4)
    torch.testing.assert_close(g1, g4)
    for a, b in zip(model.parameters(), copy.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_activation_checkpointing_gives_the_same_gradients(model, monkeypatch):
    """Recomputing each block in the backward pass changes memory, not the gradient (plain and shared-prefix paths)."""
    from rlearly.lm.runtime import Runtime

    x = torch.randint(0, model.vocab_size, (4, 12), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(4, 12)
    prefix, real = x[::2, :5], torch.ones(2, 5, dtype=torch.bool)

    def grads(m):
        m.zero_grad()
        (m(x, x).sum() + m.lm_head(m.masked_hidden(x, mask, prefix=prefix, prefix_real=real, group=2)).square().mean()).backward()
        return [p.grad.clone() for p in m.parameters()]
    plain = grads(model)
    calls, real_checkpoint = [], torch.utils.checkpoint.checkpoint
    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", lambda *a, **k: calls.append(1) or real_checkpoint(*a, **k))
    ckpt = Runtime(torch.device("cpu"), activation_checkpointing=True).place(__import__("copy").deepcopy(model))
    assert ckpt.activation_checkpointing and not model.activation_checkpointing
    for a, b in zip(plain, grads(ckpt)):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert len(calls) == 2 * model.cfg.n_layer  # every block of both paths was recomputed


def test_compiled_pretraining_takes_the_eager_steps(tiny_pretrain_run, tmp_path):
    # runtime.compile: the step's forward and backward through torch.compile (inductor; this machine compiles the
    # tiny model in ~30 s), the same losses to float tolerance; an execution option, so the run keeps its name
    cfg, eager = tiny_pretrain_run
    compiled = load_config(preset="tiny", overrides=["runtime.compile=true", "runtime.threads=1"])
    assert compiled.hash() == cfg.hash()
    out = pretrain.run(compiled, tmp_path / "compiled", show_progress=False)
    for a, b in zip(read_metrics(eager / "metrics.jsonl"), read_metrics(out / "metrics.jsonl"), strict=True):
        assert b["step"] == a["step"] and b["loss"] == pytest.approx(a["loss"], rel=1e-4)
    assert load_config(out / "config.yaml").runtime.compile


def test_compiled_loss_blocks_give_the_eager_logprobs_and_gradients(model, tok):
    """runtime.compile in a branch: each block's shared-prompt forward through torch.compile (dynamic shapes) gives
    GRPO's log-probs and their gradients as the eager blocks do, on two batches of different packed lengths."""
    import copy

    from rlearly.train.branch import compile_blocks

    compiled = copy.deepcopy(model)
    compile_blocks(compiled)
    g = torch.Generator().manual_seed(0)
    for T in (5, 7):
        prefix, real = torch.randint(3, tok.vocab_size, (2, 4), generator=g), torch.ones(2, 4, dtype=torch.bool)
        x = torch.randint(3, tok.vocab_size, (4, T), generator=g)
        mask = torch.ones(4, T)
        mask[1, T - 2:] = 0  # rows of different lengths
        outs = []
        for m in (model, compiled):
            m.zero_grad()
            lp, _ = m.masked_logprobs(x, x.roll(-1, 1), mask, prefix=prefix, prefix_real=real, group=2)
            lp.sum().backward()
            outs.append((lp.detach(), m.lm_head.weight.grad.clone()))
        torch.testing.assert_close(outs[1][0], outs[0][0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(outs[1][1], outs[0][1], atol=1e-5, rtol=1e-4)
