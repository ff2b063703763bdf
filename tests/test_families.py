"""Model families (rlearly.lm.families) against transformers: tiny random models of each family that transformers
builds from a config on this machine (no hub), loaded into rlearly's decoder, and rlearly's saved back into
transformers. Logits to 1e-4 in fp32 (measured: 2-4e-6 on logits of 6-8); under bf16 autocast on both sides, the
two may differ by as much as transformers' own bf16 logits differ from its fp32 ones (x1.25): measured, that
rounding is 0.7-2.8% of the largest logit with these weights, so a fixed 2e-2 would pass one family by luck and fail
another (Qwen2's two bf16 computations differ by 2.4%, each 2.1-2.8% from fp32: where their casts fall differs, not
what they compute). The KV-cache continuation and the shared-prompt log-probs (GRPO's path) against transformers'
full forward, and rlearly's checkpoints loaded back into transformers as the family's class."""
import json

import pytest
import torch

transformers = pytest.importorskip("transformers")

from rlearly.lm.checkpoint import load_model, save_checkpoint  # noqa: E402
from rlearly.lm.families import FAMILIES, get_family  # noqa: E402
from rlearly.lm.model import KVCache  # noqa: E402

V = 96
COMMON = dict(vocab_size=V, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
              max_position_embeddings=64, tie_word_embeddings=False)


def hf_config(family: str):
    """A tiny config of each family, with its distinguishing options away from their defaults where they have one."""
    if family == "llama":
        return transformers.LlamaConfig(**COMMON, num_key_value_heads=2)
    if family == "olmo2":
        return transformers.Olmo2Config(**COMMON, num_key_value_heads=2, rms_norm_eps=1e-6)
    if family == "qwen2":
        return transformers.Qwen2Config(**COMMON, num_key_value_heads=2)
    if family == "qwen3":
        return transformers.Qwen3Config(**COMMON, num_key_value_heads=2, head_dim=16)  # not hidden / heads = 8
    if family == "gpt_neox":
        return transformers.GPTNeoXConfig(**COMMON, rotary_pct=0.5, hidden_act="gelu", use_parallel_residual=True)
    raise AssertionError(family)


def hf_model(family: str, seed: int = 0):
    """transformers' model of the family with every weight random (norm weights around 1, biases nonzero), so a
    weight mapped to the wrong place, or left out, shows in the logits."""
    torch.manual_seed(seed)
    m = transformers.AutoModelForCausalLM.from_config(hf_config(family), attn_implementation="eager").eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            norm = "norm" in name and name.endswith("weight")
            p.copy_(1 + 0.2 * torch.randn_like(p) if norm else 0.3 * torch.randn_like(p))
    return m


def hf_logits(m, ids):
    with torch.no_grad():
        return m(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.float()


def ours_from(m, tmp_path):
    m.save_pretrained(tmp_path, safe_serialization=True)
    return load_model(tmp_path).eval()


FAMILY_NAMES = ["llama", "olmo2", "qwen2", "qwen3", "gpt_neox"]


def test_every_family_is_tested_here():
    assert sorted(FAMILIES) == sorted(FAMILY_NAMES)


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_logits_match_transformers_in_fp32_and_bf16(family, tmp_path):
    hf = hf_model(family)
    ours = ours_from(hf, tmp_path)
    assert ours.cfg.family == family
    ids = torch.randint(3, V, (3, 11), generator=torch.Generator().manual_seed(1))
    want, got = hf_logits(hf, ids), ours(ids).float()
    assert want.abs().max() > 1  # logits of a size where a wrong weight would show
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want16, got16 = hf_logits(hf, ids), ours(ids).float()
    hf_error = (want16 - want).abs().max()  # transformers' own bf16 rounding, against the fp32 logits
    assert 1e-3 < hf_error / want.abs().max() < 0.05  # bf16 really ran, at bf16's precision
    assert (got16 - want16).abs().max() <= 1.25 * hf_error  # as close to transformers' bf16 as that is to fp32
    assert (got16 - want).abs().max() <= 1.25 * hf_error  # and no less accurate


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_kv_cache_continuation_and_shared_prompt_logprobs_match(family, tmp_path):
    hf = hf_model(family, seed=1)
    ours = ours_from(hf, tmp_path)
    ids = torch.randint(3, V, (2, 9), generator=torch.Generator().manual_seed(2))
    want = torch.log_softmax(hf_logits(hf, ids), -1)
    cache = KVCache.empty(ours.cfg, 2, 9)
    with torch.no_grad():
        first = ours(ids[:, :6], cache=cache)
        rest = [ours(ids[:, t:t + 1], cache=cache) for t in range(6, 9)]
    got = torch.log_softmax(torch.cat([first, *rest], 1), -1)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    # GRPO's shared-prompt path: prompt ids[b, :5] once, two continuations each (the second row's own tokens)
    G, P = 2, 5
    prompts = ids[:, :P - 1]
    conts = torch.stack([ids[0, P - 1:], ids[0, P - 1:], ids[1, P - 1:], ids[1, P - 1:]])
    x, y = conts[:, :-1], conts[:, 1:]
    lp, _ = ours.masked_logprobs(x, y, torch.ones_like(x), prefix=prompts, prefix_real=torch.ones_like(prompts).bool(),
                                 group=G)
    full = want[:, P - 1:-1].gather(-1, ids[:, P:, None]).squeeze(-1)  # log p(ids[t] | ids[:t]) for t >= P
    torch.testing.assert_close(lp.detach(), full.repeat_interleave(G, 0), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_a_checkpoint_rlearly_writes_loads_in_transformers_as_its_class(family, tmp_path, tok):
    from rlearly.config import ModelConfig
    from rlearly.lm.model import LlamaLM

    extra = {"qwen3": dict(head_size=16), "gpt_neox": dict(n_kv_head=4, rotary_fraction=0.5)}.get(family, {})
    torch.manual_seed(3)
    cfg = ModelConfig(**{**dict(n_layer=2, n_head=4, n_kv_head=2, n_embd=32, ffn_hidden=48, max_seq_len=64),
                         **extra, "family": family})
    ours = LlamaLM(cfg, tok.vocab_size).eval()
    with torch.no_grad():
        for name, p in ours.named_parameters():
            if "norm" in name or name.endswith("bias"):  # away from their init of ones and zeros
                p.add_(0.2 * torch.randn_like(p))
    save_checkpoint(tmp_path / "c", ours, tok, {"method": "test"})
    config = json.loads((tmp_path / "c" / "config.json").read_text())
    assert config["architectures"] == [get_family(family).architecture]
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "c", attn_implementation="eager").eval()
    assert type(hf).__name__ == get_family(family).architecture
    ids = torch.randint(3, tok.vocab_size, (2, 10), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(hf_logits(hf, ids), ours(ids).float(), atol=1e-4, rtol=1e-4)
    again = load_model(tmp_path / "c")  # and back: the same weights under rlearly's names
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), again.state_dict().values()))


def test_an_unknown_family_is_one_clear_error(tok):
    from rlearly.config import ModelConfig
    from rlearly.errors import ConfigError
    from rlearly.lm.model import LlamaLM

    with pytest.raises(ConfigError, match="model.family='gpt2' is unknown; known: llama, olmo2, qwen2, qwen3, gpt_neox"):
        LlamaLM(ModelConfig(family="gpt2"), tok.vocab_size)


def test_pretraining_an_olmo2_saves_what_transformers_loads_as_olmo2(tmp_path):
    """`rlearly pretrain --preset tiny model.family=olmo2`: the paper's architecture at small scale, from scratch."""
    from rlearly.cli import main
    from rlearly.lm.checkpoint import load_checkpoint
    from rlearly.train.pretrain import list_checkpoints

    assert main(["pretrain", "--preset", "tiny", "--out", str(tmp_path / "run"), "model.family=olmo2"]) == 0
    last = list_checkpoints(tmp_path / "run")[-1]
    ours, tok, meta = load_checkpoint(last)
    assert ours.cfg.family == "olmo2" and meta["tokens"] > 0
    hf = transformers.AutoModelForCausalLM.from_pretrained(last, attn_implementation="eager").eval()
    assert type(hf).__name__ == "Olmo2ForCausalLM"
    ids = torch.tensor([tok.encode("Ava has 3 marbles.")])
    with torch.no_grad():
        torch.testing.assert_close(hf_logits(hf, ids), ours.eval()(ids).float(), atol=1e-4, rtol=1e-4)


def test_a_branch_says_its_memory_and_refuses_a_device_it_cannot_fit(tok, monkeypatch):
    """rlearly.train.budget: weights, gradients and AdamW's moments (16 bytes a parameter), RL's reference (4) and
    one rollout batch's KV cache, by hand; more than the device has is one clear error before any step."""
    from rlearly.config import load_config
    from rlearly.errors import ConfigError
    from rlearly.lm.model import LlamaLM
    from rlearly.train import budget

    cfg = load_config(preset="tiny", overrides={"rl.kl_coef": 0.01})
    model = LlamaLM(cfg.model, tok.vocab_size)
    n, m = model.num_params(), cfg.model
    parts = budget.branch_memory(cfg, model, "rl")
    kv = 2 * m.n_layer * cfg.rl.prompts_per_step * cfg.rl.group_size * m.n_kv_head * m.head_dim * min(
        m.max_seq_len, 512 + cfg.rl.max_new_tokens) * 4
    assert parts == {"weights": 4 * n, "gradients": 4 * n, "AdamW moments": 8 * n, "RL reference": 4 * n,
                     "KV cache (one rollout batch)": kv}
    assert "RL reference" not in budget.branch_memory(cfg, model, "sft")
    said = []
    budget.check_fits(cfg, model, "rl", torch.device("cpu"), log=said.append)
    assert said[0].startswith("memory: rl on a") and "GiB free" in said[0]
    monkeypatch.setattr(budget, "device_memory", lambda device: 1000)
    with pytest.raises(ConfigError, match=r"rl on this 0M-parameter model needs at least .* GiB .* and cpu has 0.0 GiB"):
        budget.check_fits(cfg, model, "rl", torch.device("cpu"), log=said.append)


def test_a_branch_says_its_compute_floor_by_hand(tok):
    """rlearly.train.budget.branch_flops: an RL step 10N a rollout token with the reference (2 sample, 6 update,
    2 reference), an SFT step 6N a demo token; parallel averaging both; the time is that at the device's rate."""
    from rlearly.config import load_config
    from rlearly.lm.model import LlamaLM
    from rlearly.train import budget

    cfg = load_config(preset="tiny", overrides={"rl.kl_coef": 0.01})
    model = LlamaLM(cfg.model, tok.vocab_size)
    n = budget.matmul_params(model)
    assert n == sum(p.numel() for name, p in model.named_parameters() if name.endswith("proj.weight")) + \
        model.lm_head.weight.numel()
    rl_tokens = cfg.rl.prompts_per_step * cfg.rl.group_size * cfg.rl.max_new_tokens
    assert budget.branch_flops(cfg, model, "rl", 3) == 3 * rl_tokens * 10 * n
    assert budget.branch_flops(cfg, model, "sft", 2, sft_tokens=40) == 2 * cfg.sft.batch_size * 40 * 6 * n
    assert budget.branch_flops(cfg, model, "parallel", 1, 40) == rl_tokens * 10 * n + cfg.sft.batch_size * 40 * 6 * n
    said = []
    s = budget.say_time(cfg, model, "rl", 3, torch.device("cpu"), "fp32", 0.0, log=said.append)
    assert s > 0 and said[0].startswith("time: rl, 3 steps,") and "GFLOP/s (fp32)" in said[0]
