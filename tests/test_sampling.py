import pytest
import torch

from rlearly.lm.model import KVCache
from rlearly.sampling import torch_engine as sampling
from rlearly.sampling.torch_engine import NUCLEUS_CANDIDATES, generate, nucleus_threshold, pick_tokens


def test_pick_tokens_inverse_cdf_and_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2]]))
    # sorted probs 0.5, 0.3, 0.2 -> cumulative 0.5, 0.8, 1.0: u=0.1 -> token 0, u=0.6 -> 1, u=0.9 -> 2
    assert [pick_tokens(logits, torch.tensor([u]), 1.0, 1.0).item() for u in (0.1, 0.6, 0.9)] == [0, 1, 2]
    # top_p=0.7 keeps {0, 1} (0.5 < 0.7, 0.5+0.3 reaches it): renormalised 0.625/0.375, u=0.9 -> token 1
    assert pick_tokens(logits, torch.tensor([0.9]), 1.0, 0.7).item() == 1
    assert pick_tokens(logits, torch.tensor([0.99]), 0.0, 1.0).item() == 0  # greedy ignores u


def test_same_seed_same_samples_and_keys_are_batch_independent(model, tok):
    prompts = [tok.encode("Ava has 3 marbles."), tok.encode("Tom lives in")]
    kw = dict(max_new_tokens=12, temperature=1.0, top_p=0.95, stop_ids=[tok.eos_id], pad_id=tok.pad_id)
    a = generate(model, prompts, n=3, seed=7, **kw)
    b = generate(model, prompts, n=3, seed=7, **kw)
    assert [c.tokens for c in a] == [c.tokens for c in b]
    assert len({tuple(c.tokens) for c in a[:3]}) > 1  # different sample index -> different sample
    c = generate(model, prompts, n=3, seed=8, **kw)
    assert [x.tokens for x in a] != [x.tokens for x in c]
    # sample key 4 (second prompt, index 1) alone reproduces its sample from the batched call
    alone = generate(model, [prompts[1]], n=1, seed=7, keys=[4], **kw)
    assert alone[0].tokens == a[4].tokens


@pytest.mark.parametrize("n", [1, 3])
def test_dropping_stopped_samples_from_the_batch_changes_no_sample(model, tok, monkeypatch, n):
    """Stopped samples leave the batch once half of it has stopped (a shared prompt prefix is then copied
    into each remaining row): the samples equal those of a batch that is never compacted."""
    texts = ("Ava has 3 marbles.", "Tom lives in", "Mia works as a baker in", "x", "Ava", "Tom has 2", "in", "Mia")
    prompts = [tok.encode(t) for t in texts]
    kw = dict(n=n, max_new_tokens=30, temperature=1.0, top_p=0.95, seed=5, pad_id=tok.pad_id,
              stop_ids=list(range(3, tok.vocab_size, 8)))  # one token in eight stops: lengths spread out
    calls = []
    select = KVCache.select
    monkeypatch.setattr(KVCache, "select", lambda self, rows: calls.append(len(rows)) or select(self, rows))
    fast = generate(model, prompts, **kw)
    monkeypatch.setattr(sampling, "COMPACT_BELOW", 0.0)
    slow = generate(model, prompts, **kw)
    assert len(calls) >= 2  # compacted more than once
    lengths = [len(c.tokens) for c in fast]
    assert min(lengths) < 5 and max(lengths) > 15 and any(c.finished for c in fast)
    assert [c.tokens for c in fast] == [c.tokens for c in slow]
    assert [c.finished for c in fast] == [c.finished for c in slow]
    for f, s in zip(fast, slow):
        assert max(abs(x - y) for x, y in zip(f.logprobs, s.logprobs)) < 1e-5


def test_cache_and_no_cache_agree(model, tok):
    prompts = [tok.encode("Ava has 3"), tok.encode("Mia works as a baker in")]
    for temp in (0.0, 1.0):
        kw = dict(n=2, max_new_tokens=10, temperature=temp, seed=3, pad_id=tok.pad_id)
        fast = generate(model, prompts, **kw)
        slow = generate(model, prompts, use_cache=False, **kw)
        assert [c.tokens for c in fast] == [c.tokens for c in slow]
        for f, s in zip(fast, slow):
            assert max(abs(x - y) for x, y in zip(f.logprobs, s.logprobs)) < 1e-4


def test_logprobs_match_forward_and_stop_tokens(model, tok):
    prompt = tok.encode("Ava has")
    out = generate(model, [prompt], n=4, max_new_tokens=8, temperature=1.0, seed=1, pad_id=tok.pad_id)
    for c in out:
        ids = torch.tensor([prompt + c.tokens])
        lp = torch.log_softmax(model(ids)[0, len(prompt) - 1:-1], -1).gather(-1, ids[0, len(prompt):, None])
        assert torch.allclose(lp.squeeze(-1), torch.tensor(c.logprobs), atol=1e-4)
        assert not c.finished and len(c.tokens) == 8
    # make every token a stop token: each completion is exactly one token and finished
    stopped = generate(model, [prompt], n=2, max_new_tokens=8, seed=1, stop_ids=range(tok.vocab_size))
    assert all(len(c.tokens) == 1 and c.finished for c in stopped)


def test_pick_tokens_without_nucleus_follows_vocabulary_order():
    logits = torch.log(torch.tensor([[0.2, 0.5, 0.3]]))
    # top_p=1: CDF in vocabulary order 0.2, 0.7, 1.0: u=0.1 -> 0, u=0.5 -> 1, u=0.8 -> 2
    assert [pick_tokens(logits, torch.tensor([u]), 1.0, 1.0).item() for u in (0.1, 0.5, 0.8)] == [0, 1, 2]
    # frequencies over a uniform grid of u match the probabilities exactly
    u = (torch.arange(1000) + 0.5) / 1000
    picks = pick_tokens(logits.expand(1000, 3), u, 1.0, 1.0)
    assert torch.bincount(picks, minlength=3).tolist() == [200, 500, 300]


def _sorted_nucleus(probs, top_p):
    """Reference: sort, keep tokens whose preceding mass is < top_p."""
    vals, order = probs.sort(descending=True)
    keep = (vals.cumsum(-1) - vals) < top_p
    out = torch.zeros_like(probs, dtype=torch.bool)
    out[order[keep]] = True
    return out


def test_nucleus_threshold_matches_a_full_sort_for_narrow_and_wide_rows():
    g = torch.Generator().manual_seed(0)
    V = 4 * NUCLEUS_CANDIDATES
    peaked = torch.softmax(torch.randn(V, generator=g) * 6, -1)  # nucleus of a few tokens
    flat = torch.softmax(torch.randn(V, generator=g) * 0.1, -1)  # nucleus wider than the candidates
    probs = torch.stack([peaked, flat])
    thr = nucleus_threshold(probs, 0.95)
    for row in range(2):
        assert torch.equal(probs[row] >= thr[row], _sorted_nucleus(probs[row], 0.95))
    assert (probs[1] >= thr[1]).sum() > NUCLEUS_CANDIDATES


def test_top_p_samples_in_vocabulary_order_among_the_kept_tokens():
    logits = torch.log(torch.tensor([[0.1, 0.5, 0.05, 0.35]]))
    # top_p=0.8 keeps 0.5 and 0.35 (mass before 0.35 is 0.5 < 0.8; before 0.1 it is 0.85): tokens 1 and 3,
    # renormalised 0.5/0.85 and 0.35/0.85 in vocabulary order
    u = (torch.arange(1700) + 0.5) / 1700
    picks = pick_tokens(logits.expand(1700, 4), u, 1.0, 0.8)
    assert torch.bincount(picks, minlength=4).tolist() == [0, 1000, 0, 700]


def test_bf16_sampling_keeps_the_streams_and_fp32_is_unchanged(model, tok):
    """bf16 (autocast; attention in fp32 on the CPU) draws from the same uniforms, so most first tokens come out
    the same, with the same log-prob to bf16's rounding (this tiny random model is near uniform, so later tokens
    drift apart sooner than a trained one's: benchmarks/bench_precision.py measures those); inside a bf16 autocast
    context (a branch's rollouts) the sampler takes the bf16 path by itself; fp32 is bit for bit unchanged."""
    prompts = [tok.encode("Ava has 3 marbles."), tok.encode("Tom lives in"), tok.encode("Mia")]
    kw = dict(n=4, max_new_tokens=6, temperature=1.0, top_p=0.95, seed=2, pad_id=tok.pad_id)
    fp32, default = generate(model, prompts, dtype="fp32", **kw), generate(model, prompts, **kw)
    assert [c.tokens for c in fp32] == [c.tokens for c in default]
    assert [c.logprobs for c in fp32] == [c.logprobs for c in default]
    bf16 = generate(model, prompts, dtype="bf16", **kw)
    same = [(a, b) for a, b in zip(fp32, bf16) if a.tokens[0] == b.tokens[0]]
    assert len(same) >= len(fp32) * 3 // 4, len(same)
    assert max(abs(a.logprobs[0] - b.logprobs[0]) for a, b in same) < 0.1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ambient = generate(model, prompts, **kw)
    assert [c.tokens for c in ambient] == [c.tokens for c in bf16]
    with pytest.raises(ValueError, match="sampling dtype 'fp16'"):
        generate(model, prompts, dtype="fp16", **kw)


def test_attention_runs_in_fp32_under_cpu_autocast():
    """Under bf16 autocast on the CPU attention's inputs are cast up and autocast is off inside (its fp32 kernels
    are the faster ones there); without autocast nothing changes."""
    from rlearly.lm.model import attention_precision

    q, v = torch.randn(2, 3), torch.randn(2, 3).bfloat16()
    ctx, (q2, v2) = attention_precision(q, v)
    assert q2 is q and v2 is v
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ctx, (q2, v2) = attention_precision(q, v)
        assert v2.dtype == torch.float32
        with ctx:
            assert (q2 @ v2.T).dtype == torch.float32
        assert (q2 @ v2.T).dtype == torch.bfloat16
