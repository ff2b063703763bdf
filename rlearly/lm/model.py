"""The decoder: Llama's architecture (RMSNorm, RoPE, SwiGLU, no biases, optional GQA) and, by `model.family`,
its relatives (rlearly.lm.families: OLMo-2's QK-norm and norms after attention and MLP, Qwen2's q/k/v biases,
Qwen3's per-head QK-norm, GPT-NeoX's LayerNorm, parallel residual, partial RoPE and GELU MLP).

The state dict uses Hugging Face Llama parameter names (plus the families' own: q_norm, k_norm,
post_feedforward_layernorm, biases); a family's weight-name map writes its own layout, so a saved checkpoint
loads with `transformers.AutoModelForCausalLM` unchanged. One `forward` serves pretraining (mean NLL), SFT (NLL under
a loss mask), RL (per-token log-probs of given targets) and sampling (logits with a KV cache).
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint

from rlearly.config import ModelConfig
from rlearly.errors import ConfigError
from rlearly.lm.families import get_family
from rlearly.lm.losses import chunked_logprobs, scatter_masked, token_entropy, token_logprobs


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        # computed in fp32 as HF Llama does, so logits match to 1e-5
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


def make_norm(cfg: ModelConfig, dim: int | None = None) -> nn.Module:
    """The family's norm over `dim` (default the residual width): RMSNorm, or LayerNorm with a bias (GPT-NeoX)."""
    dim = dim or cfg.n_embd
    return nn.LayerNorm(dim, eps=cfg.norm_eps) if get_family(cfg.family).layer_norm else RMSNorm(dim, cfg.norm_eps)


def rope_tables(head_dim: int, max_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin of shape (max_len, head_dim) in HF's half-split layout (not interleaved)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    freqs = torch.outer(torch.arange(max_len).float(), inv_freq)  # (T, hd/2)
    emb = torch.cat([freqs, freqs], dim=-1)  # (T, hd)
    return emb.cos(), emb.sin()


def apply_rope(x, cos, sin):
    """x: (..., H, hd); cos/sin: (..., 1, r), one row per token. Rotates pairs (i, i + r/2) of the first r
    dimensions (r < hd: partial rotary, GPT-NeoX's); the rest pass through."""
    r = cos.shape[-1]
    if r < x.shape[-1]:
        return torch.cat([apply_rope(x[..., :r], cos, sin), x[..., r:]], dim=-1)
    half = r // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


@dataclass
class KVCache:
    """Preallocated keys/values for every layer: (n_layer, B, n_kv_head, max_len, head_dim).

    `length` is the number of positions filled. Sampling prefills once, then appends one token per step.
    `key_mask` (B, max_len) marks real (non-padding) key positions for left-padded batches.

    A cache made by `share_prefix(n, new_len)` serves n samples per prompt: the prompt's keys/values stay
    once per prompt in `prefix` (n_layer, B/n, n_kv_head, P, head_dim), with its padding mask, and `k`/`v`
    hold only each sample's own continuation, so attention reads a prompt once for its n samples.
    """

    k: torch.Tensor
    v: torch.Tensor
    length: int = 0
    key_mask: torch.Tensor | None = None
    prefix: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # (k, v, key mask) of the prompts
    group: int = 1  # samples per prompt (rows b*group .. b*group+group-1 share prefix row b)

    @classmethod
    def empty(cls, cfg: ModelConfig, batch: int, max_len: int, dtype=torch.float32, device="cpu"):
        shape = (cfg.n_layer, batch, cfg.n_kv_head, max_len, cfg.head_dim)
        return cls(torch.empty(shape, dtype=dtype, device=device), torch.empty(shape, dtype=dtype, device=device))

    @property
    def prefix_len(self) -> int:
        return 0 if self.prefix is None else self.prefix[0].shape[3]

    def share_prefix(self, n: int, new_len: int) -> "KVCache":
        """This (prefilled, unshared) cache as the shared prompt of n samples each, with room for
        `new_len` further positions per sample."""
        if self.prefix is not None:
            raise ValueError("cache already has a shared prefix")
        L = self.length
        mask = self.key_mask[:, :L] if self.key_mask is not None else torch.ones(
            self.k.shape[1], L, dtype=torch.bool, device=self.k.device)
        nl, B, H, _, hd = self.k.shape
        shape = (nl, B * n, H, new_len, hd)
        return KVCache(self.k.new_empty(shape), self.v.new_empty(shape), L, None,
                       (self.k[:, :, :, :L], self.v[:, :, :, :L], mask), n)

    def select(self, rows: torch.Tensor) -> "KVCache":
        """The cache of `rows` only (dropping finished samples from a batch). A shared prompt prefix is
        copied into each kept row, so the result is an ordinary cache with a key mask: once most samples
        have stopped, the few left no longer share much."""
        if self.prefix is None:
            mask = None if self.key_mask is None else self.key_mask[rows]
            return KVCache(self.k[:, rows], self.v[:, rows], self.length, mask)
        pk, pv, pmask = self.prefix
        src = rows // self.group  # each row's prompt
        own = self.k.shape[3]  # room for each row's own positions
        mask = torch.cat([pmask[src], pmask.new_ones(len(rows), own)], 1)
        return KVCache(torch.cat([pk[:, src], self.k[:, rows]], 3), torch.cat([pv[:, src], self.v[:, rows]], 3),
                       self.length, mask)


@dataclass(frozen=True)
class Packing:
    """Where the M packed continuation tokens of the shared-prefix path sit in their (B, T) grid, and the
    attention mask of that grid: built once per forward from `sel` (B, T) and used by every block, so no block
    recounts the mask (masked_scatter/masked_select) or rebuilds the (B, 1, T, P + T) attention mask."""
    index: torch.Tensor  # (M,) flat positions b * T + t of the real tokens, row-major
    B: int
    T: int
    mask: torch.Tensor  # (B, 1, T, P + T): the row's prompt's real keys, then its own tokens causally

    @classmethod
    def of(cls, sel: torch.Tensor, preal: torch.Tensor, group: int) -> "Packing":
        B, T = sel.shape
        own = torch.ones(T, T, dtype=torch.bool, device=sel.device).tril()
        mask = torch.cat([preal.repeat_interleave(group, dim=0)[:, None, None, :].expand(B, 1, T, preal.shape[1]),
                          own.expand(B, 1, T, T)], dim=-1)
        return cls(sel.reshape(-1).nonzero().squeeze(1), B, T, mask)

    def unpack(self, t: torch.Tensor) -> torch.Tensor:
        """Packed tokens t (M, H, hd) onto their grid positions: (B, H, T, hd), zeros elsewhere."""
        grid = t.new_zeros(self.B * self.T, *t.shape[1:]).index_copy(0, self.index, t)
        return grid.view(self.B, self.T, *t.shape[1:]).transpose(1, 2)

    def pack(self, y: torch.Tensor) -> torch.Tensor:
        """Grid heads y (B, H, T, hd) back to the packed tokens (M, H * hd)."""
        return y.transpose(1, 2).reshape(self.B * self.T, -1).index_select(0, self.index)


ATTENTION_FP32_ON_CPU = True  # see attention_precision


def attention_precision(*ts):
    """(context, tensors) for attention under autocast: on the CPU, attention runs in fp32 (the tensors cast up,
    autocast off inside), where its kernels are faster than bf16's: the CPU's bf16 flash-attention backward is
    2-4x slower than fp32's, and its bf16 batched matmul copies the strided KV-cache slice it reads at every
    decoding step (benchmarks/README.md). The matmuls of the projections and the MLP stay bf16. Elsewhere (no
    autocast, a GPU): nothing changes."""
    if ATTENTION_FP32_ON_CPU and ts[0].device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        return torch.autocast("cpu", enabled=False), [t.float() for t in ts]
    return contextlib.nullcontext(), ts


def shared_prefix_attention(q, ks, vs, pk, pv, pmask, group: int):
    """Softmax attention of q (B, H, T, hd) over a prompt prefix shared by `group` consecutive rows
    (pk/pv (B/group, H, P, hd), pmask (B/group, P) True on real keys) followed by each row's own keys
    ks/vs (B, H, S + T, hd), causal within the T new positions. Same result as attending over the
    concatenation, but the prefix is read once per prompt instead of once per sample."""
    B, H, T, hd = q.shape
    Bp, P = pk.shape[0], pk.shape[2]
    scale = 1.0 / math.sqrt(hd)
    qg = q.reshape(Bp, group, H, T, hd).transpose(1, 2).reshape(Bp, H, group * T, hd)
    sp = torch.matmul(qg, pk.transpose(-1, -2)) * scale  # (Bp, H, group*T, P)
    sp = sp.masked_fill(~pmask[:, None, None, :], float("-inf"))
    sp = sp.reshape(Bp, H, group, T, P).transpose(1, 2).reshape(B, H, T, P)
    ss = torch.matmul(q, ks.transpose(-1, -2)) * scale  # (B, H, T, S + T)
    if T > 1:
        S = ks.shape[2] - T
        future = torch.ones(T, S + T, dtype=torch.bool, device=q.device).triu(diagonal=S + 1)
        ss = ss.masked_fill(future, float("-inf"))
    w = torch.softmax(torch.cat([sp, ss], dim=-1), dim=-1)
    wp = w[..., :P].reshape(Bp, group, H, T, P).transpose(1, 2).reshape(Bp, H, group * T, P)
    yp = torch.matmul(wp, pv).reshape(Bp, H, group, T, hd).transpose(1, 2).reshape(B, H, T, hd)
    return yp + torch.matmul(w[..., P:], vs)


def shared_prefix_sdpa(q, ks, vs, pk, pv, pmask, group: int, gqa: bool = False, mask: torch.Tensor | None = None):
    """`shared_prefix_attention` through `scaled_dot_product_attention` (its fused kernels: no (rows x heads x
    queries x keys) score tensor; grouped-query heads native): each row's keys are its prompt's (pk/pv
    (B/group, Hkv, P, hd), pmask (B/group, P)) then its own (ks/vs (B, Hkv, S + T, hd)), under a boolean mask
    (B, 1, T, P + S + T). The prompt's keys are copied per row, cheap beside the scores for long continuations:
    the GRPO loss's path (`forward_shared`, which passes the `mask` it built once for all blocks); decoding one
    token at a time keeps `shared_prefix_attention`."""
    B, _, T, _ = q.shape
    S = ks.shape[2] - T
    k = torch.cat([pk.repeat_interleave(group, dim=0), ks], dim=2)
    v = torch.cat([pv.repeat_interleave(group, dim=0), vs], dim=2)
    if mask is None:
        own = torch.ones(T, S + T, dtype=torch.bool, device=q.device).tril(diagonal=S)
        mask = torch.cat([pmask.repeat_interleave(group, dim=0)[:, None, None, :].expand(B, 1, T, pmask.shape[1]),
                          own.expand(B, 1, T, S + T)], dim=-1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head, self.n_kv, self.hd = cfg.n_head, cfg.n_kv_head, cfg.head_dim
        fam = get_family(cfg.family)
        if fam.fused_qkv and cfg.n_kv_head != cfg.n_head:
            raise ConfigError(f"model.family={fam.name} has no grouped-query attention: model.n_kv_head="
                              f"{cfg.n_kv_head} must equal model.n_head={cfg.n_head}")
        qkv_bias = fam.qkv_bias or fam.dense_bias
        self.q_proj = nn.Linear(cfg.n_embd, cfg.n_head * self.hd, bias=qkv_bias)
        self.k_proj = nn.Linear(cfg.n_embd, cfg.n_kv_head * self.hd, bias=qkv_bias)
        self.v_proj = nn.Linear(cfg.n_embd, cfg.n_kv_head * self.hd, bias=qkv_bias)
        self.o_proj = nn.Linear(cfg.n_head * self.hd, cfg.n_embd, bias=fam.dense_bias)
        self.qk_norm = fam.qk_norm  # "", "proj" (OLMo-2), "head" (Qwen3)
        if fam.qk_norm:
            q_dim, k_dim = (cfg.n_head * self.hd, cfg.n_kv_head * self.hd) if fam.qk_norm == "proj" else (self.hd,) * 2
            self.q_norm, self.k_norm = RMSNorm(q_dim, cfg.norm_eps), RMSNorm(k_dim, cfg.norm_eps)

    def _qkv(self, x, cos, sin):
        """x (..., d) -> rotated queries (..., H, hd), rotated keys and values (..., Hkv, hd), with the
        rotation tables cos/sin (..., 1, r), r the rotary dimensions (apply_rope). Works on (B, T, d) grids and on
        packed (M, d) tokens."""
        lead = x.shape[:-1]
        q, k = self.q_proj(x), self.k_proj(x)
        if self.qk_norm == "proj":  # OLMo-2: over the whole projection, before the heads are split
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = q.view(*lead, self.n_head, self.hd), k.view(*lead, self.n_kv, self.hd)
        if self.qk_norm == "head":  # Qwen3: per head
            q, k = self.q_norm(q), self.k_norm(k)
        v = self.v_proj(x).view(*lead, self.n_kv, self.hd)
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v

    def forward(self, x, cos, sin, cache: KVCache | None, layer: int, attn_mask):
        T = x.shape[1]
        q, k, v = (t.transpose(1, 2) for t in self._qkv(x, cos, sin))  # (B, heads, T, hd)
        if cache is not None:
            start = cache.length - cache.prefix_len  # where the new positions go in this cache's k/v
            cache.k[layer, :, :, start:start + T] = k
            cache.v[layer, :, :, start:start + T] = v
            k, v = cache.k[layer, :, :, :start + T], cache.v[layer, :, :, :start + T]
        precision, (q, k, v) = attention_precision(q, k, v)
        with precision:
            if cache is not None and cache.prefix is not None:
                pk, pv, pmask = cache.prefix
                y = shared_prefix_attention(q, self._heads(k), self._heads(v), self._heads(pk[layer]),
                                            self._heads(pv[layer]), pmask, cache.group)
            elif attn_mask is None:  # grouped-query attention inside the kernel: no copy of the keys per query head
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.n_kv != self.n_head)
            else:
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, enable_gqa=self.n_kv != self.n_head)
        return self._out(y)

    def forward_shared(self, xp, xs, rope_p, rope_s, pmask, preal, group: int, packing: Packing,
                       prefix_out: bool = True):
        """Attention of prompts xp (Bp, P, d) (causal, `pmask` (Bp, 1, P, P) hiding padding) and of their
        continuations, packed: xs (M, d) holds the tokens at `packing`'s positions of the continuation grid
        (B = Bp*group rows, each row's tokens first), which see their prompt's keys and their row's earlier
        tokens. Projections run on the M real tokens only; attention on the grid.
        Returns (prompt output (Bp, P, d) or None when `prefix_out` is False, packed output (M, d))."""
        qp, kp, vp = (t.transpose(1, 2) for t in self._qkv(xp, *rope_p))
        qs, ks, vs = (packing.unpack(t) for t in self._qkv(xs, *rope_s))
        precision, (qp, kp, vp, qs, ks, vs) = attention_precision(qp, kp, vp, qs, ks, vs)
        with precision:
            ys = shared_prefix_sdpa(qs, ks, vs, kp, vp, preal, group, self.n_kv != self.n_head, mask=packing.mask)
        ys = self.o_proj(packing.pack(ys))  # (M, d)
        if not prefix_out:
            return None, ys
        with precision:
            yp = F.scaled_dot_product_attention(qp, kp, vp, attn_mask=pmask, enable_gqa=self.n_kv != self.n_head)
        return self._out(yp), ys

    def _out(self, y):
        """Heads (B, H, T, hd) back to the residual stream (B, T, d)."""
        return self.o_proj(y.transpose(1, 2).reshape(y.shape[0], y.shape[2], -1))

    def _heads(self, t):
        """Grouped-query attention: repeat each key/value head for its query heads."""
        return t if self.n_kv == self.n_head else t.repeat_interleave(self.n_head // self.n_kv, dim=1)


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gelu = get_family(cfg.family).gelu_mlp  # GPT-NeoX: up -> GELU -> down, with biases; else SwiGLU
        if not self.gelu:
            self.gate_proj = nn.Linear(cfg.n_embd, cfg.ffn_hidden, bias=False)
        self.up_proj = nn.Linear(cfg.n_embd, cfg.ffn_hidden, bias=self.gelu)
        self.down_proj = nn.Linear(cfg.ffn_hidden, cfg.n_embd, bias=self.gelu)

    def forward(self, x):
        if self.gelu:
            return self.down_proj(F.gelu(self.up_proj(x)))
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))  # SwiGLU


class Block(nn.Module):
    """One layer. Llama (and Qwen): x + attn(norm(x)), then + mlp(norm(x)); OLMo-2 (`norm_after`): the norms on the
    outputs instead, x + norm(attn(x)), then + norm(mlp(x)); GPT-NeoX (`parallel_residual`): x + attn(norm1(x)) +
    mlp(norm2(x)), both from the same x. The parameter names are Hugging Face's for each."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        fam = get_family(cfg.family)
        self.norm_after, self.parallel = fam.norm_after, fam.parallel_residual
        if not self.norm_after:
            self.input_layernorm = make_norm(cfg)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = make_norm(cfg)  # OLMo-2: on the attention's output
        if self.norm_after:
            self.post_feedforward_layernorm = make_norm(cfg)
        self.mlp = MLP(cfg)

    def _attn_in(self, x):
        return x if self.norm_after else self.input_layernorm(x)

    def _attn_out(self, a):
        return self.post_attention_layernorm(a) if self.norm_after else a

    def _mlp(self, x):
        if self.norm_after:
            return self.post_feedforward_layernorm(self.mlp(x))
        return self.mlp(self.post_attention_layernorm(x))

    def _residual(self, x, a):
        """The layer's output from its input x and its attention's output a (normed as the family does)."""
        if self.parallel:
            return x + a + self._mlp(x)
        x = x + a
        return x + self._mlp(x)

    def forward(self, x, cos, sin, cache, layer, attn_mask):
        return self._residual(x, self._attn_out(self.self_attn(self._attn_in(x), cos, sin, cache, layer, attn_mask)))

    def forward_shared(self, xp, xs, rope_p, rope_s, pmask, preal, group: int, packing: Packing, last: bool):
        """The block on prompts xp and their packed continuations xs (see Attention.forward_shared). In the
        last block the prompts' own outputs are not needed (only their keys/values): xp comes back None."""
        ap, a_s = self.self_attn.forward_shared(self._attn_in(xp), self._attn_in(xs), rope_p,
                                                rope_s, pmask, preal, group, packing, prefix_out=not last)
        xs = self._residual(xs, self._attn_out(a_s))
        if last:
            return None, xs
        return self._residual(xp, self._attn_out(ap)), xs


class _Trunk(nn.Module):
    """Holds the `model.*` parameters under HF's names (embed_tokens, layers, norm)."""

    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab_size, cfg.n_embd)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = make_norm(cfg)


class LlamaLM(nn.Module):
    activation_checkpointing = False  # set by runtime.place: recompute each block's activations in backward

    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        self.cfg, self.vocab_size = cfg, vocab_size
        self.model = _Trunk(cfg, vocab_size)
        self.lm_head = nn.Linear(cfg.n_embd, vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        cos, sin = rope_tables(cfg.rotary_dims, cfg.max_seq_len, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init)
        for block in self.model.layers:  # GPT-2 style scaled init of residual projections
            for w in (block.self_attn.o_proj.weight, block.mlp.down_proj.weight):
                nn.init.normal_(w, std=cfg.init_std / math.sqrt(2 * cfg.n_layer))

    def _init(self, m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=self.cfg.init_std)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def num_params(self, embeddings: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n if embeddings else n - self.model.embed_tokens.weight.numel()

    def forward(self, idx, targets=None, loss_mask=None, *, cache: KVCache | None = None,
                positions=None, reduction: str = "mean"):
        """idx: (B, T) token ids.

        - targets None: returns logits (B, T, V). With `cache`, idx continues the cached sequence and
          the cache is extended in place.
        - targets (B, T): returns the NLL; `loss_mask` (B, T) selects the tokens that count.
          reduction "mean" = token-mean over masked tokens; "none" = per-token NLL (B, T) (RL's
          log-probs are its negative).
        `positions` (B, T) gives RoPE positions per row (left-padded batches); default 0.. or cache offset.
        """
        logits = self.lm_head(self.hidden(idx, cache=cache, positions=positions))
        if targets is None:
            return logits
        B, T = idx.shape
        nll = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1), reduction="none").view(B, T)
        if reduction == "none":
            return nll
        if loss_mask is None:
            return nll.mean()
        m = loss_mask.to(nll.dtype)
        return (nll * m).sum() / m.sum().clamp(min=1)

    def hidden(self, idx, *, cache: KVCache | None = None, positions=None):
        """The final normed hidden states (B, T, n_embd), before the LM head."""
        B, T = idx.shape
        start = cache.length if cache is not None else 0
        if positions is None:
            positions = torch.arange(start, start + T, device=idx.device).expand(B, T)
        if int(positions.max()) >= self.cfg.max_seq_len:
            raise ValueError(f"sequence position {int(positions.max())} exceeds model.max_seq_len={self.cfg.max_seq_len}")
        cos, sin = self._rope(positions)
        attn_mask = self._attn_mask(cache, T, idx.device)
        x = self.model.embed_tokens(idx)
        for i, block in enumerate(self.model.layers):
            x = self._block(block, x, cos, sin, cache, i, attn_mask)
        if cache is not None:
            cache.length += T
        return self.model.norm(x)

    def _rope(self, positions):
        """RoPE tables (..., 1, hd) for positions (...), e.g. (B, T, 1, hd) for (B, T)."""
        return self.rope_cos[positions].unsqueeze(-2), self.rope_sin[positions].unsqueeze(-2)

    def masked_logprobs(self, idx, targets, mask, chunk: int = 0, entropy: bool = False, prefix=None,
                        prefix_real=None, group: int = 1) -> tuple[torch.Tensor, torch.Tensor | None]:
        """log π(targets) (B, T) at the positions where `mask` (B, T) is nonzero, 0 elsewhere, and with `entropy`
        the entropy of π at those positions (M,, no gradient; else None): how SFT, GRPO and its reference score
        tokens. The LM head and everything after it run on those positions only (responses, not prompts); with
        `prefix`, each row of idx continues a prompt shared by `group` rows (`shared_prefix_hidden`). chunk > 0 runs the LM head `chunk` positions at a time, recomputed in backward, so no (M, V)
        logits are held (`runtime.logit_chunk`; it computes the entropy either way)."""
        hidden, picked = self.masked_hidden(idx, mask, prefix, prefix_real, group), targets[mask.bool()]
        if chunk:
            lp, ent = chunked_logprobs(hidden, self.lm_head.weight, picked, chunk)
        else:
            logits = self.lm_head(hidden)  # (M, V)
            lp, ent = token_logprobs(logits, picked), token_entropy(logits) if entropy else None
        return scatter_masked(lp, mask), ent if entropy else None

    def masked_hidden(self, idx, mask, prefix=None, prefix_real=None, group: int = 1):
        """The final hidden states (M, n_embd) at the M positions where `mask` (B, T) is nonzero, row-major."""
        if prefix is None:
            return self.hidden(idx)[mask.bool()]
        return self.shared_prefix_hidden(prefix, prefix_real, idx, mask.bool(), group)

    def shared_prefix_hidden(self, prefix, prefix_real, suffix, suffix_real, group: int):
        """Final hidden states (M, n_embd) of the M real tokens of `suffix` (B, T), in row-major order;
        row b continues prompt b // group. prefix (B/group, P) token ids, left-padded, prefix_real
        (B/group, P) True on real tokens; suffix_real (B, T) True on real tokens, each row's first
        (right padding). Equal to `hidden` of each unpadded prompt + suffix row at those tokens, but a
        prompt runs once for its `group` rows instead of once per row (GRPO's G rollouts of a prompt), and
        padding gets no projection or MLP work; gradients flow through the prompt as usual."""
        Bp, P = prefix.shape
        T, dev = suffix.size(1), suffix.device
        if P == 0:
            return self.hidden(suffix)[suffix_real]
        n_real = prefix_real.sum(1)  # (Bp,)
        ppos = (torch.arange(P, device=dev) - (P - n_real)[:, None]).clamp(min=0)  # (Bp, P)
        spos = (n_real.repeat_interleave(group)[:, None] + torch.arange(T, device=dev))[suffix_real]  # (M,)
        if spos.numel() and int(spos.max()) >= self.cfg.max_seq_len:
            raise ValueError(f"sequence position {int(spos.max())} exceeds model.max_seq_len={self.cfg.max_seq_len}")
        # causal over real keys; a padding query sees itself so its softmax is defined
        eye = torch.eye(P, dtype=torch.bool, device=dev)
        pmask = (torch.ones_like(eye).tril() & prefix_real[:, None, None, :]) | eye
        xp, xs = self.model.embed_tokens(prefix), self.model.embed_tokens(suffix[suffix_real])
        rope_p, rope_s, last = self._rope(ppos), self._rope(spos), len(self.model.layers) - 1
        packing = Packing.of(suffix_real, prefix_real, group)
        for i, block in enumerate(self.model.layers):
            xp, xs = self._block(block.forward_shared, xp, xs, rope_p, rope_s, pmask, prefix_real, group, packing,
                                 i == last)
        return self.model.norm(xs)

    def _block(self, fn, *args):
        """fn(*args), a block's forward; with activation checkpointing while gradients are taken, its activations
        are recomputed in the backward pass instead of kept (memory for compute, per block)."""
        if self.activation_checkpointing and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    @staticmethod
    def _attn_mask(cache: KVCache | None, T: int, device):
        """None (plain causal) without a cache; with one, a boolean (B, 1, T, L) mask: causal within the
        new tokens, all earlier cached keys visible, and padding keys hidden."""
        if cache is None or cache.prefix is not None:  # no mask, or the shared-prefix path's own
            return None
        L = cache.length + T
        causal = torch.ones(T, L, dtype=torch.bool, device=device).tril(diagonal=cache.length)
        mask = causal[None, None]
        if cache.key_mask is not None:
            # a padding query would see no key at all (NaN softmax): let every query see itself
            own = torch.zeros(T, L, dtype=torch.bool, device=device)
            own[torch.arange(T), cache.length + torch.arange(T)] = True
            mask = (mask & cache.key_mask[:, None, None, :L]) | own[None, None]
        return mask
