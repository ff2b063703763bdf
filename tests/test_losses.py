"""Loss math against hand-worked numbers (3–5 element tensors; the arithmetic is in the comments)."""
import math

import pytest
import torch

from rlearly.lm.losses import (aggregate, group_advantages, grpo_loss, kl_penalty, masked_nll, policy_loss,
                               scatter_masked, token_logprobs)

T = torch.tensor
LN = math.log


# ---------------------------------------------------------------- aggregation

X = T([[1.0, 2.0, 3.0, 0.0], [4.0, 0.0, 0.0, 0.0]])  # (B=2, T=4): lengths 3 and 1
M = T([[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])


def test_token_mean_and_seq_mean_differ_on_unequal_lengths():
    # token-mean: (1+2+3+4) / 4 tokens = 2.5
    assert aggregate(X, M, "token-mean").item() == pytest.approx(2.5)
    # seq-mean-token-mean: mean(6/3, 4/1) = mean(2, 4) = 3.0 — the short sequence weighs more
    assert aggregate(X, M, "seq-mean-token-mean").item() == pytest.approx(3.0)
    # token-sum: 1+2+3+4 = 10
    assert aggregate(X, M, "token-sum").item() == pytest.approx(10.0)


def test_dr_grpo_sum_norm():
    # default max_len = T = 4: mean(6/4, 4/4) = mean(1.5, 1.0) = 1.25
    assert aggregate(X, M, "seq-mean-token-sum-norm").item() == pytest.approx(1.25)
    # constant max_len = 8: mean(6/8, 4/8) = mean(0.75, 0.5) = 0.625
    assert aggregate(X, M, "seq-mean-token-sum-norm", max_len=8).item() == pytest.approx(0.625)


def test_aggregate_empty_masks_give_zero_not_nan():
    one_empty = T([[1.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    # seq 0 mean = 6/3 = 2, seq 1 has no tokens → contributes 0: mean(2, 0) = 1.0
    assert aggregate(X, one_empty, "seq-mean-token-mean").item() == pytest.approx(1.0)
    # token-mean ignores the empty sequence: 6/3 = 2.0
    assert aggregate(X, one_empty, "token-mean").item() == pytest.approx(2.0)
    for agg in ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm", "token-sum"):
        assert aggregate(X, torch.zeros_like(M), agg).item() == 0.0


def test_aggregate_ignores_inf_in_padding():
    x = T([[1.0, 3.0, float("inf")]])  # padding may hold −logprob = inf
    # (1+3)/2 = 2.0, and no NaN from 0·inf
    assert aggregate(x, T([[1.0, 1.0, 0.0]])).item() == pytest.approx(2.0)


def test_unknown_agg_lists_known():
    with pytest.raises(ValueError, match="token-mean.*seq-mean-token-mean"):
        aggregate(X, M, "seq-sum")


# ---------------------------------------------------------------- SFT NLL

def test_masked_nll_by_hand():
    lp = T([[-1.0, -2.0, -3.0], [-0.5, -9.0, -9.0]], requires_grad=True)
    mask = T([[1, 1, 1], [1, 0, 0]], dtype=torch.bool)
    loss, stats = masked_nll(lp, mask)
    # token-mean: (1+2+3+0.5) / 4 = 1.625
    assert loss.item() == pytest.approx(1.625)
    assert stats["n_tokens"] == 4.0 and stats["nll"] == pytest.approx(1.625)
    loss.backward()
    # d/dlp of −Σ lp / 4 is −1/4 on each counted token, 0 on padding
    assert torch.allclose(lp.grad, T([[-0.25, -0.25, -0.25], [-0.25, 0.0, 0.0]]))
    # seq-mean-token-mean: mean(6/3, 0.5/1) = 1.25
    assert masked_nll(lp, mask, agg="seq-mean-token-mean")[0].item() == pytest.approx(1.25)


def test_masked_nll_empty_mask_is_zero_with_finite_grad():
    lp = T([[-1.0, -2.0, -3.0]], requires_grad=True)
    loss, _ = masked_nll(lp, torch.zeros(1, 3))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(lp.grad, torch.zeros(1, 3))


# ---------------------------------------------------------------- group advantages

def test_group_advantages_std_normalised_and_zero_variance():
    r = T([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])  # two groups of G = 4
    adv, stats = group_advantages(r, 4)
    # group 0: mean 0.25; deviations (.75, −.25, −.25, −.25); unbiased var = (.5625 + 3·.0625)/3 = .25,
    # std 0.5 → (1.5, −0.5, −0.5, −0.5). (The biased std 0.433 would give 1.732.)
    assert torch.allclose(adv[:4], T([1.5, -0.5, -0.5, -0.5]), atol=1e-5)
    # group 1: all rewards equal → exactly zero
    assert torch.equal(adv[4:], torch.zeros(4))
    assert stats["frac_zero_std"] == pytest.approx(0.5)  # 1 of 2 groups
    # reward_mean 5/8; reward_std unbiased: (5·.375² + 3·.625²)/7 = 1.875/7 → sqrt = 0.517549
    assert stats["reward_mean"] == pytest.approx(0.625)
    assert stats["reward_std"] == pytest.approx(math.sqrt(1.875 / 7))


def test_group_advantages_without_std():
    r = T([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    adv, _ = group_advantages(r, 4, normalize_std=False)
    # r − mean: (1−.25, 0−.25, ...) and (0, 0, 0, 0)
    assert torch.allclose(adv, T([0.75, -0.25, -0.25, -0.25, 0.0, 0.0, 0.0, 0.0]))


def test_group_advantages_zero_variance_is_exact_for_non_binary_rewards():
    # mean of (0.1, 0.1, 0.1) may be off by an ulp; dividing by eps would blow that up — must be exactly 0
    adv, stats = group_advantages(T([0.1, 0.1, 0.1]), 3)
    assert torch.equal(adv, torch.zeros(3)) and stats["frac_zero_std"] == 1.0


def test_group_advantages_bad_group_size():
    with pytest.raises(ValueError, match="groups of 3"):
        group_advantages(torch.zeros(4), 3)


# ---------------------------------------------------------------- clipped policy loss

def _lp(ratios):
    """logprobs whose ratio to old_logprobs = 0 is `ratios`, as a leaf that collects gradients."""
    return torch.log(T(ratios)).requires_grad_(True)


def test_clip_positive_advantage():
    lp, old, mask = _lp([[1.1, 1.5, 0.5]]), torch.zeros(1, 3), torch.ones(1, 3)
    loss, stats = policy_loss(lp, old, T([1.0]), mask)
    # A = +1, band [0.8, 1.2]: −min(ρA, clip(ρ)A) = −(1.1, min(1.5, 1.2), min(0.5, 0.8)) = −(1.1, 1.2, 0.5)
    # token-mean = −2.8/3 = −0.93333
    assert loss.item() == pytest.approx(-2.8 / 3)
    loss.backward()
    # dℓ/dlogp = −A·ρ/n where unclipped; the 1.5 token is clipped → exactly 0
    assert torch.allclose(lp.grad, T([[-1.1 / 3, 0.0, -0.5 / 3]]))
    assert lp.grad[0, 1].item() == 0.0
    assert stats["clip_frac"] == pytest.approx(1 / 3)  # only the 1.5 token (0.5 < 0.8 is not clipped for A > 0)
    assert stats["ratio_mean"] == pytest.approx(3.1 / 3)  # (1.1 + 1.5 + 0.5)/3
    # approx_kl = mean(old − new) = −(ln 1.1 + ln 1.5 + ln 0.5)/3 = 0.0641241
    assert stats["approx_kl"] == pytest.approx(-(LN(1.1) + LN(1.5) + LN(0.5)) / 3)


def test_clip_negative_advantage():
    lp, old, mask = _lp([[1.1, 1.5, 0.5]]), torch.zeros(1, 3), torch.ones(1, 3)
    loss, stats = policy_loss(lp, old, T([-1.0]), mask)
    # A = −1: ℓ = max(ρ, clip(ρ)) = (1.1, max(1.5, 1.2), max(0.5, 0.8)) = (1.1, 1.5, 0.8); mean = 3.4/3
    assert loss.item() == pytest.approx(3.4 / 3)
    loss.backward()
    # now the low side is clipped (0.5 → 0.8, zero gradient) and the 1.5 token keeps its gradient ρ/n
    assert torch.allclose(lp.grad, T([[1.1 / 3, 1.5 / 3, 0.0]]))
    assert stats["clip_frac"] == pytest.approx(1 / 3)


def test_asymmetric_clip():
    lp = torch.log(T([[1.25, 1.35], [0.75, 0.65]]))
    old, mask, adv = torch.zeros(2, 2), torch.ones(2, 2), T([1.0, -1.0])
    loss, stats = policy_loss(lp, old, adv, mask, clip_low=0.3, clip_high=0.28)
    # band [0.7, 1.28]. A=+1: −1.25 (inside), −1.28 (clipped). A=−1: 0.75 (inside), max(0.65, 0.7) = 0.7 (clipped)
    # token-mean = (−1.25 − 1.28 + 0.75 + 0.7)/4 = −1.08/4 = −0.27
    assert loss.item() == pytest.approx(-0.27)
    assert stats["clip_frac"] == pytest.approx(0.5)
    loss_sym, stats_sym = policy_loss(lp, old, adv, mask)
    # band [0.8, 1.2]: all four clipped: (−1.2 − 1.2 + 0.8 + 0.8)/4 = −0.2
    assert loss_sym.item() == pytest.approx(-0.2)
    assert stats_sym["clip_frac"] == pytest.approx(1.0)


def test_dual_clip_bounds_negative_advantage():
    lp = T([[3.0, 0.0], [3.0, 0.0]], requires_grad=True)  # ratios e³ = 20.0855 and 1
    old, mask, adv = torch.zeros(2, 2), torch.ones(2, 2), T([-1.0, 2.0])
    loss, stats = policy_loss(lp, old, adv, mask, dual_clip=3.0)
    # A=−1: max(20.0855, 1.2) = 20.0855 → dual clip min(·, 3·|A|) = 3; ratio 1 → 1 (under the bound)
    # A=+2: −2·min(20.0855, 1.2) = −2.4 (ordinary clip, dual clip does not apply); ratio 1 → −2
    # token-mean = (3 + 1 − 2.4 − 2)/4 = −0.1
    assert loss.item() == pytest.approx(-0.1)
    assert stats["dual_clip_frac"] == pytest.approx(0.25)
    assert stats["clip_frac"] == pytest.approx(0.25)  # only the A=+2, ρ=e³ token
    loss.backward()
    assert lp.grad[0, 0].item() == 0.0  # a bounded token pushes nothing
    no_dual, _ = policy_loss(lp, old, adv, mask)
    # without it: (e³ + 1 − 2.4 − 2)/4 = 4.17138
    assert no_dual.item() == pytest.approx((math.exp(3) - 3.4) / 4)


def test_policy_gradient_on_policy_is_minus_a_over_n():
    lp = T([[-1.0, -2.0, -3.0], [-0.5, -1.5, -7.0]], requires_grad=True)
    mask = T([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])  # 5 tokens
    adv = T([0.5, -2.0])
    loss, stats = policy_loss(lp, lp.detach().clone(), adv, mask)
    # ρ = 1 everywhere: loss = −Σ A / n = −(3·0.5 + 2·(−2))/5 = 0.5; gradient −A/5 per token
    assert loss.item() == pytest.approx(0.5)
    loss.backward()
    assert torch.allclose(lp.grad, T([[-0.1, -0.1, -0.1], [0.4, 0.4, 0.0]]))
    assert stats["clip_frac"] == 0.0 and stats["ratio_mean"] == 1.0 and stats["approx_kl"] == 0.0


def test_per_token_advantages_match_broadcast():
    lp, old, mask = torch.log(T([[1.1, 1.5, 0.5]])), torch.zeros(1, 3), torch.ones(1, 3)
    a, _ = policy_loss(lp, old, T([1.0]), mask)
    b, _ = policy_loss(lp, old, T([[1.0, 1.0, 1.0]]), mask)
    assert a.item() == pytest.approx(b.item())


# ---------------------------------------------------------------- KL

LOGP = T([[0.0, -1.0, -2.0]])
REF = T([[0.0, -1.5, -1.5]])  # d = logp − ref = (0, 0.5, −0.5)
K3_POS = math.exp(-0.5) + 0.5 - 1  # d = 0.5: e^{−0.5} + 0.5 − 1 = 0.106531
K3_NEG = math.exp(0.5) - 0.5 - 1  # d = −0.5: e^{0.5} − 0.5 − 1 = 0.148721


def test_kl_estimators_by_hand():
    ones = torch.ones(1, 3)
    assert kl_penalty(LOGP, LOGP, ones)[0].item() == 0.0  # k3 at equality
    # k3: (0 + 0.106531 + 0.148721)/3 = 0.085084
    assert kl_penalty(LOGP, REF, ones, "k3")[0].item() == pytest.approx((K3_POS + K3_NEG) / 3)
    # k1: (0 + 0.5 − 0.5)/3 = 0 — unbiased but can cancel; on the single d=0.5 token it is 0.5
    assert kl_penalty(LOGP, REF, ones, "k1")[0].item() == pytest.approx(0.0, abs=1e-7)
    assert kl_penalty(LOGP, REF, T([[0.0, 1.0, 0.0]]), "k1")[0].item() == pytest.approx(0.5)
    # k2: ½·(0 + .25 + .25)/3 = 0.083333
    assert kl_penalty(LOGP, REF, ones, "k2")[0].item() == pytest.approx(0.25 / 3)


def test_k3_positive_and_clamped():
    for d in (-2.0, -0.5, 0.5, 3.0):  # e^{2} − 3 = 4.389 … all under the clamp of 10
        k3 = kl_penalty(T([[d]]), T([[0.0]]), torch.ones(1, 1))[0].item()
        assert k3 == pytest.approx(math.exp(-d) + d - 1) and k3 > 0
    # d = −3 already gives e³ − 4 = 16.09 > 10; d = −30 (e^{30} − 31) is clamped to 10, as VeRL does
    assert kl_penalty(T([[-3.0]]), T([[0.0]]), torch.ones(1, 1))[0].item() == 10.0
    assert kl_penalty(T([[-30.0]]), T([[0.0]]), torch.ones(1, 1))[0].item() == 10.0
    with pytest.raises(ValueError, match="k1, k2, k3"):
        kl_penalty(LOGP, REF, torch.ones(1, 3), "k4")


# ---------------------------------------------------------------- GRPO composition

def test_grpo_loss_is_policy_plus_beta_kl():
    lp = LOGP.clone().requires_grad_(True)
    loss, stats = grpo_loss(lp, LOGP, T([1.0]), torch.ones(1, 3), ref_logprobs=REF, kl_coef=0.1)
    # policy at ρ = 1 with A = 1: −1; k3 = 0.085084; total −1 + 0.1·0.085084 = −0.991492
    assert loss.item() == pytest.approx(-1 + 0.1 * (K3_POS + K3_NEG) / 3)
    assert stats["pg_loss"] == pytest.approx(-1.0) and stats["kl"] == pytest.approx((K3_POS + K3_NEG) / 3)
    assert stats["loss"] == pytest.approx(loss.item()) and stats["pg_clip_frac"] == 0.0
    plain, _ = grpo_loss(lp, LOGP, T([1.0]), torch.ones(1, 3))
    assert plain.item() == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="ref_logprobs"):
        grpo_loss(lp, LOGP, T([1.0]), torch.ones(1, 3), kl_coef=0.1)


# ---------------------------------------------------------------- logits helpers

def test_token_logprobs_fp32():
    logits = torch.log(T([[[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]])).bfloat16()  # probs ≈ (1/6, 2/6, 3/6)
    lp = token_logprobs(logits, T([[2, 0]]))
    assert lp.dtype == torch.float32
    # log(3/6) = −0.693147, log(1/6) = −1.791759 (bf16 logits → ~1e-2 tolerance)
    assert torch.allclose(lp, T([[LN(0.5), LN(1 / 6)]]), atol=2e-2)


def test_token_entropy():
    from rlearly.lm.losses import token_entropy

    ninf = float("-inf")
    logits = T([[[0.0, 0.0, 0.0, 0.0], [0.0, ninf, ninf, ninf], [5.0, 1.0, 0.0, 0.0]]]).requires_grad_()
    # uniform over 4 → ln 4 = 1.386294; one-hot → 0 (not NaN); softmax(5, 1, 0, 0) = (.9692, .0178, .0065, .0065)
    # → −Σ p ln p = 0.1676
    ent = token_entropy(logits)
    assert ent.shape == (1, 3) and not ent.requires_grad
    assert torch.allclose(ent, T([[LN(4), 0.0, 0.1676]]), atol=1e-4)
    assert token_entropy(torch.zeros(0, 4)).shape == (0,)


def test_scatter_masked_places_values_row_major_and_passes_gradients():
    mask = torch.tensor([[0, 1, 1], [1, 0, 0]])
    v = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    out = scatter_masked(v, mask)
    assert out.tolist() == [[0.0, 1.0, 2.0], [3.0, 0.0, 0.0]]
    (out * torch.tensor([[5.0, 6.0, 7.0], [8.0, 9.0, 10.0]])).sum().backward()
    assert v.grad.tolist() == [6.0, 7.0, 8.0]


def test_chunked_logprobs_equal_the_whole_logits_and_their_gradient():
    from rlearly.lm.losses import chunked_logprobs

    g = torch.Generator().manual_seed(0)
    h = torch.randn(11, 6, generator=g, requires_grad=True)
    w = torch.randn(9, 6, generator=g, requires_grad=True)
    t = torch.randint(0, 9, (11,), generator=g)
    whole = token_logprobs(h @ w.T, t)
    ent = torch.special.entr(torch.softmax(h @ w.T, -1)).sum(-1)
    gh, gw = torch.autograd.grad(whole.sum(), (h, w))
    for chunk in (1, 4, 11, 20):
        lp, e = chunked_logprobs(h, w, t, chunk)
        torch.testing.assert_close(lp, whole)
        torch.testing.assert_close(e, ent.detach())
        assert not e.requires_grad
        ch, cw = torch.autograd.grad(lp.sum(), (h, w))
        torch.testing.assert_close(ch, gh)
        torch.testing.assert_close(cw, gw)
    empty = chunked_logprobs(h[:0], w, t[:0], 4)
    assert empty[0].shape == (0,) and empty[1].shape == (0,)
