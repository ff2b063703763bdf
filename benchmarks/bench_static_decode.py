"""The decode step compiled over a static KV cache, against rlearly's sampler (issue 38): one evaluation call
(prompts x n samples, the task's token budget) on a checkpoint, in fp32 and (where the CPU has it) bf16.

rlearly's sampler (`rlearly.sampling.torch_engine.generate`) decodes eagerly over a cache that grows one position a
step and drops finished samples once half have stopped (shapes change, which torch.compile would recompile for).
The static step here is the design the issue proposed: every row's own keys in a room of the call's full budget,
written in place at position t and masked beyond it; the shared prompt read once per prompt; token picking inside
the graph (top-p's wide-nucleus fallback a `torch.cond`); no compaction. It is timed eager and through
torch.compile (first call, which compiles, and again), with and without the task's stop tokens: with them, rows
stop early and compaction is what the static step gives up; without them, every row decodes the whole budget and
only the per-step cost differs.

    python benchmarks/bench_static_decode.py [--checkpoint DIR] [--problems 32] [--n 16] [--threads 1]
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import benchlib
import torch

benchlib.ensure_path()
from rlearly.evaluation.evaluate import resolve_task, task_prompt  # noqa: E402
from rlearly.lm.checkpoint import load_checkpoint  # noqa: E402
from rlearly.lm.model import attention_precision  # noqa: E402
from rlearly.lm.runtime import Runtime  # noqa: E402
from rlearly.machine import fast_cpu_bf16  # noqa: E402
from rlearly.sampling.torch_engine import (NUCLEUS_CANDIDATES, generate, inverse_cdf, left_pad,  # noqa: E402
                                           nucleus_cut, prefill, sample_uniforms)


def pick_static(logits, u, temperature: float, top_p: float):
    """rlearly's token picking (torch_engine.pick_tokens) without a data-dependent branch: rows whose nucleus is
    wider than the candidates are sorted whole through torch.cond, so the graph has no break."""
    probs = torch.softmax(logits / temperature, dim=-1)
    top = probs.topk(NUCLEUS_CANDIDATES, dim=-1).values
    cut = torch.cond((top.sum(-1) < top_p).any(), lambda p, t: nucleus_cut(p.sort(-1, descending=True).values, top_p),
                     lambda p, t: nucleus_cut(t, top_p), (probs, top))
    return inverse_cdf(probs * (probs >= cut.unsqueeze(-1)), u)


def _attend(q, ok, ov, pk, pv, pmask, group: int, own):
    """One query per row over its prompt's keys (shared by `group` rows) and its own room, positions > t masked."""
    B, H, _, hd = q.shape
    Bp, P = pk.shape[0], pk.shape[2]
    scale = 1.0 / math.sqrt(hd)
    sp = torch.matmul(q.reshape(Bp, group, H, hd).transpose(1, 2), pk.transpose(-1, -2)) * scale
    sp = sp.masked_fill(~pmask[:, None, None, :], float("-inf")).transpose(1, 2).reshape(B, H, 1, P)
    ss = (torch.matmul(q, ok.transpose(-1, -2)) * scale).masked_fill(~own, float("-inf"))
    w = torch.softmax(torch.cat([sp, ss], -1), -1)
    yp = torch.matmul(w[..., :P].reshape(Bp, group, H, P).transpose(1, 2), pv).transpose(1, 2).reshape(B, H, 1, hd)
    return yp + torch.matmul(w[..., P:], ov)


def static_step(model, tok, pos, t, ok, ov, pk, pv, pmask, group: int, u, temperature: float, top_p: float):
    """Decode one token per row: write its keys/values at room position t (index_put_: written in place even
    compiled), attend, pick the next token. Returns (tokens, their log-probs)."""
    x = model.model.embed_tokens(tok[:, None])
    cos, sin = model._rope(pos[:, None])
    own = torch.arange(ok.shape[3], device=tok.device) <= t
    rows, heads = torch.arange(ok.shape[1])[:, None], torch.arange(ok.shape[2])[None, :]
    for i, block in enumerate(model.model.layers):
        q, k, v = (z.transpose(1, 2) for z in block.self_attn._qkv(block._attn_in(x), cos, sin))
        at = (torch.full((1,), i), rows, heads, t.view(1, 1))
        ok.index_put_(at, k.squeeze(2).to(ok.dtype))
        ov.index_put_(at, v.squeeze(2).to(ov.dtype))
        precision, (q, k_i, v_i, pk_i, pv_i) = attention_precision(q, ok[i], ov[i], pk[i], pv[i])
        with precision:
            y = _attend(q, k_i, v_i, pk_i, pv_i, pmask, group, own)
        x = block._residual(x, block._attn_out(block.self_attn._out(y)))
    logits = model.lm_head(model.model.norm(x))[:, -1].float()
    nxt = pick_static(logits, u, temperature, top_p)
    return nxt, torch.log_softmax(logits, -1).gather(-1, nxt[:, None]).squeeze(-1)


@torch.no_grad()
def generate_static(model, prompts, step, *, n, max_new_tokens, temperature, top_p, stop_ids, seed, pad_id,
                    dtype="fp32"):
    """Sample like torch_engine.generate (same keys and uniforms), decoding with `step` (static_step, compiled or
    not). Returns one token list per sample."""
    model.eval()
    with Runtime(torch.device("cpu"), dtype).autocast():
        total = len(prompts) * n
        ids, real, pad = left_pad(prompts, pad_id, 0, "cpu")
        P = ids.shape[1]
        u = torch.from_numpy(sample_uniforms(seed, range(total), max_new_tokens)).float()
        cache, logits = prefill(model, ids, real, pad, n, max_new_tokens)
        pk, pv, pmask = (x.contiguous() for x in cache.prefix)
        ok, ov, pad = cache.k.zero_(), cache.v.zero_(), pad.repeat_interleave(n)
        tok = pick_static(logits, u[:, 0], temperature, top_p)
        out = torch.full((total, max_new_tokens), pad_id, dtype=torch.long)
        lengths, done = torch.full((total,), max_new_tokens), torch.zeros(total, dtype=torch.bool)
        stops = torch.tensor(list(stop_ids) or [-1])
        for t in range(max_new_tokens):
            out[:, t] = tok = torch.where(done, pad_id, tok)
            hit = ~done & torch.isin(tok, stops)
            lengths[hit], done = t + 1, done | hit
            if bool(done.all()) or t == max_new_tokens - 1:
                break
            tok, _ = step(model, tok, P + t - pad, torch.tensor(t), ok, ov, pk, pv, pmask, n, u[:, t + 1],
                          temperature, top_p)
    return [out[i, :lengths[i]].tolist() for i in range(total)]


def run(model, prompts, kw, dtype: str) -> list[dict]:
    ref_t = time.perf_counter()
    ref = [c.tokens for c in generate(model, prompts, dtype=dtype, **kw)]
    ref_s = time.perf_counter() - ref_t
    compiled = torch.compile(static_step, dynamic=False)
    rows = [dict(engine="rlearly (eager, compacting)", first_s=ref_s, s=ref_s, same=1.0)]
    for label, step, calls in (("static, eager", static_step, 1), ("static, compiled", compiled, 2)):
        times = []
        for _ in range(calls):
            t = time.perf_counter()
            got = generate_static(model, prompts, step, dtype=dtype, **kw)
            times.append(time.perf_counter() - t)
        rows.append(dict(engine=label, first_s=times[0], s=times[-1],
                         same=sum(a == b for a, b in zip(ref, got)) / len(ref)))
    for r in rows:
        r.update(dtype=dtype, mean_tokens=sum(map(len, ref)) / len(ref), vs_rlearly=rows[0]["s"] / r["s"])
    return rows


def main() -> None:
    ap = benchlib.parser("static_decode", __doc__)
    ap.add_argument("--checkpoint", type=Path, help="a trained checkpoint (default: the small preset, random weights)")
    ap.add_argument("--problems", type=int, default=32)
    ap.add_argument("--n", type=int, default=16)
    args = ap.parse_args()
    benchlib.setup_threads(args)
    if args.checkpoint:
        model, tok, _ = load_checkpoint(args.checkpoint)
        task = resolve_task("synthetic", args.checkpoint)
        prompts = [tok.encode(task_prompt(task, p, "zero-shot", 0)) for p in task.problems("dev")[:args.problems]]
        budget, stops, pad_id = task.max_new_tokens, task.stop_ids(tok), tok.pad_id
    else:
        model, tok = benchlib.build("tiny" if args.quick else "small")
        prompts = [[5 + (i * 7 + j) % 50 for j in range(24)] for i in range(args.problems)]
        budget, stops, pad_id = 16 if args.quick else 64, (), 0
    if args.quick:
        prompts, args.n = prompts[:4], 4
    rows = []
    for stop_ids in ((stops, ()) if stops else ((),)):
        kw = dict(n=args.n, max_new_tokens=budget, temperature=0.6, top_p=0.95, stop_ids=stop_ids, seed=0,
                  pad_id=pad_id)
        for dtype in ("fp32", "bf16") if fast_cpu_bf16() else ("fp32",):
            rows += [dict(r, stops="task's" if stop_ids else "none") for r in run(model, prompts, kw, dtype)]
    benchlib.write_results(args.out, dict(benchmark="static_decode", checkpoint=str(args.checkpoint or ""),
                                          problems=len(prompts), n=args.n, budget=budget, rows=rows,
                                          machine=benchlib.machine()))
    print(f"{len(prompts)} prompts x n={args.n}, budget {budget} tokens, torch threads {args.threads}")
    print(benchlib.table(rows, [("stops", "stops", "s"), ("dtype", "dtype", "s"), ("engine", "engine", "s"),
                                ("mean_tokens", "mean tokens", ".1f"), ("first_s", "first call s", ".2f"),
                                ("s", "again s", ".2f"), ("vs_rlearly", "rlearly's s / this", ".2f"),
                                ("same", "same samples", ".0%")]))


if __name__ == "__main__":
    main()
