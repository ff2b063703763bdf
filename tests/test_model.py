import json

import pytest
import torch
from conftest import tiny_model

from rlearly.lm.checkpoint import save_checkpoint
from rlearly.lm.model import KVCache


def test_forward_shapes_and_masked_loss(model, tok):
    x = torch.randint(3, tok.vocab_size, (2, 10))
    logits = model(x)
    assert logits.shape == (2, 10, tok.vocab_size)
    nll = model(x, x, reduction="none")
    assert nll.shape == (2, 10)
    mask = torch.zeros(2, 10)
    mask[0, 3] = mask[1, 7] = 1  # masked mean of two tokens = their average
    assert torch.allclose(model(x, x, mask), (nll[0, 3] + nll[1, 7]) / 2, atol=1e-6)
    assert torch.allclose(model(x, x), nll.mean(), atol=1e-6)


def test_kv_cache_matches_full_forward(model):
    x = torch.randint(3, 300, (3, 12))
    full = model(x)
    cache = KVCache.empty(model.cfg, 3, 16)
    first = model(x[:, :7], cache=cache)
    rest = [model(x[:, t:t + 1], cache=cache) for t in range(7, 12)]
    inc = torch.cat([first, *rest], dim=1)
    assert cache.length == 12
    assert (inc - full).abs().max() < 1e-5


def test_left_padding_with_positions_matches_unpadded(model):
    x = torch.randint(3, 300, (1, 6))
    ref = model(x)[:, -1]
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), x], 1)
    cache = KVCache.empty(model.cfg, 1, 9)
    cache.key_mask = torch.tensor([[False] * 3 + [True] * 6])
    pos = (torch.arange(9) - 3).clamp(min=0)[None]
    out = model(padded, cache=cache, positions=pos)[:, -1]
    assert (out - ref).abs().max() < 1e-5


def test_shared_prefix_cache_matches_full_forward(model):
    """Two left-padded prompts, three continuations each: the prompts' keys stored once per prompt
    (KVCache.share_prefix) give the logits of running every full sequence on its own."""
    prompts = [torch.randint(3, 300, (4,)), torch.randint(3, 300, (6,))]
    conts = torch.randint(3, 300, (6, 5))  # row 3*b + j continues prompt b
    P = 6
    ids = torch.zeros(2, P, dtype=torch.long)
    mask = torch.zeros(2, P, dtype=torch.bool)
    for b, p in enumerate(prompts):
        ids[b, P - len(p):], mask[b, P - len(p):] = p, True
    pad = (~mask).sum(1)
    cache = KVCache.empty(model.cfg, 2, P)
    cache.key_mask = mask
    model(ids, cache=cache, positions=(torch.arange(P) - pad[:, None]).clamp(min=0))
    cache = cache.share_prefix(3, 5)
    pos = lambda t0, T: (P + torch.arange(t0, t0 + T) - pad.repeat_interleave(3)[:, None])
    first = model(conts[:, :2], cache=cache, positions=pos(0, 2))  # two new positions at once (causal)
    rest = [model(conts[:, t:t + 1], cache=cache, positions=pos(t, 1)) for t in range(2, 5)]
    inc = torch.cat([first, *rest], dim=1)
    for row in range(6):
        full = model(torch.cat([prompts[row // 3], conts[row]])[None])[0, -5:]
        assert (inc[row] - full).abs().max() < 1e-4


def test_shared_prefix_hidden_matches_full_forward_values_and_gradients(model):
    """GRPO's loss path: prompts of unequal length (left-padded, one of length 0 after its last token is
    moved to the continuation), three continuations each of unequal length (right-padded, packed). Hidden
    states and parameter gradients equal running every full sequence on its own."""
    torch.manual_seed(1)
    prompts = [torch.randint(3, 300, (n,)) for n in (4, 7, 1)]
    lengths = [5, 2, 3, 1, 4, 5, 3, 3, 2]  # row 3*b + j continues prompt b
    conts = [torch.randint(3, 300, (n,)) for n in lengths]
    P, T = 6, 5  # prompt minus its last token; longest continuation (incl. the prompt's last token)
    prefix = torch.zeros(3, P, dtype=torch.long)
    real = torch.zeros(3, P, dtype=torch.bool)
    for b, p in enumerate(prompts):
        if len(p) > 1:
            prefix[b, P - len(p) + 1:], real[b, P - len(p) + 1:] = p[:-1], True
    suffix = torch.zeros(9, T, dtype=torch.long)
    sel = torch.zeros(9, T, dtype=torch.bool)
    for r, c in enumerate(conts):
        row = torch.cat([prompts[r // 3][-1:], c])[:lengths[r]]
        suffix[r, :len(row)], sel[r, :len(row)] = row, True
    weights = torch.randn(int(sel.sum()), model.cfg.n_embd)

    packed = model.shared_prefix_hidden(prefix, real, suffix, sel, group=3)
    (packed * weights).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert "model.layers.0.self_attn.q_proj.weight" in grads and "model.embed_tokens.weight" in grads
    model.zero_grad()
    full = []
    for r in range(9):
        seq = torch.cat([prompts[r // 3], suffix[r, 1:lengths[r]]])[None]
        full.append(model.hidden(seq)[0, -lengths[r]:])
    full = torch.cat(full)
    (full * weights).sum().backward()
    assert packed.shape == full.shape == (sum(lengths), model.cfg.n_embd)
    assert (packed - full).abs().max() < 1e-5
    for n, p in model.named_parameters():
        assert (p.grad is None) == (n not in grads) and (p.grad is None or torch.allclose(grads[n], p.grad, atol=1e-5)), n
    model.zero_grad()


def test_masked_logprobs_whole_and_chunked_equal_the_full_forward(model):
    """How SFT and GRPO score tokens: log π(target) at the masked positions (0 elsewhere) and their entropy equal
    the full forward's log-softmax, with the LM head whole or a few positions at a time (gradients too)."""
    torch.manual_seed(2)
    x, y = torch.randint(3, 300, (3, 7)), torch.randint(3, 300, (3, 7))
    mask = torch.rand(3, 7) < 0.5
    logp = torch.log_softmax(model(x).float(), -1)
    want = torch.where(mask, logp.gather(-1, y[..., None])[..., 0], 0.0)
    want_ent = -(logp.exp() * logp).sum(-1)[mask]
    out = {}
    for chunk in (0, 2):
        lp, ent = model.masked_logprobs(x, y, mask.float(), chunk=chunk, entropy=True)
        torch.testing.assert_close(lp, want.detach(), atol=1e-5, rtol=0)
        torch.testing.assert_close(ent, want_ent.detach(), atol=1e-5, rtol=0)
        assert not ent.requires_grad and model.masked_logprobs(x, y, mask, chunk=chunk)[1] is None
        model.zero_grad()
        (lp * torch.arange(21.0).reshape(3, 7)).sum().backward()
        out[chunk] = {n: p.grad.clone() for n, p in model.named_parameters()}
    for n, g in out[0].items():
        torch.testing.assert_close(out[2][n], g, atol=1e-5, rtol=1e-4)
    model.zero_grad()


def test_the_fused_shared_prefix_kernel_equals_the_hand_written_one():
    """shared_prefix_sdpa (scaled_dot_product_attention, GQA native, the GRPO loss's path) against
    shared_prefix_attention (scores by hand, keys repeated per query head), hand-masked: a prompt with no real
    key, cached positions before the new ones (S > 0), two query heads per key head."""
    from rlearly.lm.model import shared_prefix_attention, shared_prefix_sdpa

    torch.manual_seed(0)
    Bp, G, H, Hkv, P, S, T, hd = 3, 2, 4, 2, 5, 2, 4, 8
    q = torch.randn(Bp * G, H, T, hd)
    ks, vs = torch.randn(Bp * G, Hkv, S + T, hd), torch.randn(Bp * G, Hkv, S + T, hd)
    pk, pv = torch.randn(Bp, Hkv, P, hd), torch.randn(Bp, Hkv, P, hd)
    pmask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)
    rep = lambda t: t.repeat_interleave(H // Hkv, dim=1)  # noqa: E731
    want = shared_prefix_attention(q, rep(ks), rep(vs), rep(pk), rep(pv), pmask, G)
    got = shared_prefix_sdpa(q, ks, vs, pk, pv, pmask, G, gqa=True)
    assert (got - want).abs().max() < 1e-5
    # row 4 (prompt 2, no real key) at its first new position sees its S cached keys and itself only
    w = torch.softmax(torch.einsum("hd,hkd->hk", q[4, :, 0], rep(ks)[4, :, :S + 1]) / hd ** 0.5, -1)
    assert torch.allclose(got[4, :, 0], torch.einsum("hk,hkd->hd", w, rep(vs)[4, :, :S + 1]), atol=1e-5)


@pytest.mark.parametrize("tie", [False, True])
def test_hf_transformers_loads_checkpoint_with_same_logits(tmp_path, tok, tie):
    transformers = pytest.importorskip("transformers")
    model = tiny_model(tok.vocab_size, tie_embeddings=tie)
    ckpt = save_checkpoint(tmp_path / "ckpt", model, tok, {"method": "test"})
    hf = transformers.AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32).eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(ckpt)
    text = "Ava has 7 marbles. She buys 5 more."
    ids = hf_tok(text, return_tensors="pt").input_ids
    assert ids[0].tolist() == tok.encode(text)  # same ids, BOS first
    assert ids[0, 0].item() == tok.bos_id
    with torch.no_grad():
        diff = (hf(ids).logits - model(ids)).abs().max().item()
    assert diff <= 1e-4
    assert hf_tok.decode(ids[0], skip_special_tokens=True) == text
    config = json.loads((ckpt / "config.json").read_text())
    assert config["model_type"] == "llama" and config["num_key_value_heads"] == 2


def test_param_count_matches_formula(tok):
    m = tiny_model(tok.vocab_size)  # d=32, 4 heads of 8, 2 kv heads, ffn 64, 2 layers, untied
    V, d = tok.vocab_size, 32
    per_layer = d * d + 2 * (d * 16) + d * d + 3 * d * 64 + 2 * d  # q, k+v (2 kv heads * 8), o, mlp, norms
    assert m.num_params() == 2 * V * d + 2 * per_layer + d
