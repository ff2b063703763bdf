"""Sampling throughput: rlearly's sampler vs naive no-cache sampling and vs HF `transformers` `generate`,
on the same weights and prompts in one process. Two shapes (issue 7):

- batch: 64 prompts x 64 new tokens, one sample each;
- eval:  64 problems x n=32 samples x 64 new tokens, in calls of 512 samples (16 problems) as
         `rlearly.evaluation.evaluate.sample_problems` makes them; HF gets the same calls with
         num_return_sequences=32.

No stop tokens and min_new_tokens = max_new_tokens for HF: every engine generates exactly the same number
of tokens, so tokens/s compare like with like. The naive engine recomputes the whole sequence at each
step; on the eval shape it is timed on one call of 512 samples (the calls are identical in work).

    python benchmarks/bench_sampling.py [--preset small] [--repeats 5] [--threads 2] [--quick]
"""
from __future__ import annotations

import benchlib
import torch

benchlib.ensure_path()
from rlearly.machine import fast_cpu_bf16  # noqa: E402
from rlearly.sampling.torch_engine import generate  # noqa: E402


def shapes(quick: bool) -> dict:
    if quick:
        return {"batch": dict(prompts=8, n=1, new=8, per_call=8), "eval": dict(prompts=4, n=4, new=8, per_call=8)}
    return {"batch": dict(prompts=64, n=1, new=64, per_call=64), "eval": dict(prompts=64, n=32, new=64, per_call=512)}


BF16 = "rlearly, bf16"


def run_shape(name: str, s: dict, model, hf, prompts, args) -> list[dict]:
    """Time every engine on one shape; returns one row per engine with tokens/s and rlearly's speed-up."""
    per = s["per_call"] // s["n"]  # prompts per call
    calls = [prompts[i:i + per] for i in range(0, len(prompts), per)]
    kw = dict(n=s["n"], max_new_tokens=s["new"], temperature=1.0, seed=0, pad_id=0)

    def ours():
        for c in calls:
            generate(model, c, **kw)

    def naive():  # one call: the calls are identical in work
        generate(model, calls[0], use_cache=False, **kw)

    def hf_generate():
        with torch.no_grad():
            for c in calls:
                ids = torch.tensor(c)
                hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=s["new"], min_new_tokens=s["new"],
                            do_sample=True, temperature=1.0, top_k=0, top_p=1.0, num_return_sequences=s["n"],
                            pad_token_id=0)

    def ours_bf16():
        for c in calls:
            generate(model, c, dtype="bf16", **kw)

    engines = [("rlearly (KV cache, shared prefill)", ours, len(calls)), ("naive (no cache)", naive, 1)]
    if args.bf16:
        engines.append((BF16, ours_bf16, len(calls)))
    if hf is not None:
        engines.append(("HF transformers generate", hf_generate, len(calls)))
    rows = []
    for label, fn, n_calls in engines:
        reps = args.repeats if label != "naive (no cache)" else max(1, min(args.repeats, 3 if name == "eval" else 5))
        t = benchlib.stats(benchlib.timed(fn, reps, args.warmup if label != "naive (no cache)" else 0))
        tokens = n_calls * per * s["n"] * s["new"]
        rows.append(dict(shape=name, engine=label, tokens=tokens, repeats=reps, tok_per_s=tokens / t["median_s"], **t))
    for r in rows:
        r["rlearly_speedup"] = rows[0]["tok_per_s"] / r["tok_per_s"]
    # the least work: each prompt's prefill once, then its n samples' new tokens, the head where tokens are drawn
    P = len(prompts[0])
    flops = len(prompts) * (benchlib.forward_flops(model, P) + s["n"] * benchlib.forward_flops(model, s["new"] - 1, P,
                                                                                                 s["new"]))
    rows[0]["floor"] = benchlib.floor(flops, args.peak_gflops)
    for r in rows:
        if r["engine"] in (rows[0]["engine"], BF16):
            r["fraction_of_fp32_floor"] = rows[0]["floor"]["floor_s"] / r["median_s"]
    return rows


def main() -> None:
    ap = benchlib.parser("sampling", __doc__)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--prompt-len", type=int, default=40)
    ap.add_argument("--no-hf", action="store_true", help="skip the transformers baseline")
    ap.add_argument("--bf16", choices=["auto", "yes", "no"], default="auto",
                    help="also time rlearly's sampler in bf16 (auto: where the CPU multiplies bf16 in hardware)")
    args = ap.parse_args()
    args.bf16 = args.bf16 == "yes" or (args.bf16 == "auto" and fast_cpu_bf16())
    if args.quick:
        args.preset, args.repeats, args.prompt_len = "tiny", 1, 8
    benchlib.setup_threads(args.threads)
    cfg, tok, model = benchlib.build(args.preset)
    model.eval()
    hf = None if args.no_hf else benchlib.hf_copy(model, tok)[0].eval()
    args.peak_gflops = benchlib.matmul_peak(torch.get_num_threads(), 512 if args.quick else 2048)["gflops"]
    g = torch.Generator().manual_seed(0)
    rows = []
    for name, s in shapes(args.quick).items():
        prompts = torch.randint(3, tok.vocab_size, (s["prompts"], args.prompt_len), generator=g).tolist()
        rows += run_shape(name, s, model, hf, prompts, args)
    print(f"preset {args.preset} ({model.num_params():,} params), prompts of {args.prompt_len} tokens, "
          f"torch threads {torch.get_num_threads()}, medians of {args.repeats}")
    print(benchlib.table(rows, [("shape", "shape", "s"), ("engine", "engine", "s"), ("tok_per_s", "tok/s", ",.0f"),
                                ("median_s", "median s", ".3f"), ("rlearly_speedup", "rlearly is x faster", ".1f"),
                                ("fraction_of_fp32_floor", "of the fp32 floor", ".1%")]))
    print(f"fp32 floor: the least work (prefill once a prompt, the new tokens of every sample) at the measured "
          f"{args.peak_gflops:.0f} GFLOP/s matmul peak")
    benchlib.write_results(args.out, dict(benchmark="sampling", preset=args.preset, n_params=model.num_params(),
                                          prompt_len=args.prompt_len, shapes=shapes(args.quick), rows=rows,
                                          peak_gflops=args.peak_gflops,
                                          machine=benchlib.machine()))


if __name__ == "__main__":
    main()
