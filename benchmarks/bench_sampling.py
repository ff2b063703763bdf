"""Sampling throughput: rlearly's KV-cache sampler vs its no-cache reference and vs HF `generate`,
on the same weights and prompts in one process. Reports tokens/s (medians) and ratios.

    python benchmarks/bench_sampling.py [--preset small] [--batch 64] [--new 64] [--repeats 5] [--threads 0]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from rlearly.checkpoint import save_checkpoint
from rlearly.config import load_config
from rlearly.model import LlamaLM
from rlearly.sampling import generate
from rlearly.tokenizer import train_tokenizer


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--prompt-len", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--no-hf", action="store_true", help="skip the transformers baseline")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(preset=args.preset)
    tok = train_tokenizer([f"word{i} " * 5 for i in range(2000)], cfg.data.vocab_size)
    torch.manual_seed(0)
    model = LlamaLM(cfg.model, tok.vocab_size).eval()
    g = torch.Generator().manual_seed(0)
    prompts = torch.randint(3, tok.vocab_size, (args.batch, args.prompt_len), generator=g).tolist()
    n_tok = args.batch * args.new
    # no stop tokens: every row generates exactly `new` tokens in every engine, so the work is equal
    kw = dict(max_new_tokens=args.new, temperature=1.0, seed=0, pad_id=tok.pad_id)
    results = {"rlearly (KV cache)": timed(lambda: generate(model, prompts, **kw), args.repeats),
               "naive (no cache)": timed(lambda: generate(model, prompts, use_cache=False, **kw),
                                         max(1, args.repeats // 2))}
    if not args.no_hf:
        import transformers

        with tempfile.TemporaryDirectory() as d:
            save_checkpoint(d, model, tok, {"method": "benchmark"})
            hf = transformers.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
        ids = torch.tensor(prompts)

        def hf_generate():
            with torch.no_grad():
                hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.new,
                            min_new_tokens=args.new, do_sample=True, temperature=1.0, top_k=0,
                            pad_token_id=tok.pad_id)
        results["HF transformers generate"] = timed(hf_generate, args.repeats)
    base = results["rlearly (KV cache)"]
    print(f"preset {args.preset} ({model.num_params():,} params), {args.batch} prompts x {args.prompt_len} tokens, "
          f"{args.new} new tokens, torch threads {torch.get_num_threads()}, median of {args.repeats}")
    for name, t in results.items():
        print(f"  {name:<26} {n_tok / t:>9,.0f} tok/s   rlearly is {t / base:5.1f}x faster")


if __name__ == "__main__":
    main()
