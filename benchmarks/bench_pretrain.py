"""Pretraining step: rlearly's `pretrain.train_step` vs a plain PyTorch loop, on the same LlamaLM weights
and the same batches, with model-FLOPs utilisation against the fp32 matmul peak measured here.

rlearly's step is the function `pretrain.run` calls (AdamW from `make_adamw` with weight decay on
matrices only, the cosine LR set each step, NLL, backward, grad-norm clipping, step, zero_grad) plus
the `loss.item()` that `run` does every step. The plain loop is what a nanoGPT-style script does:
`torch.optim.AdamW(model.parameters())`, logits -> `F.cross_entropy`, zero_grad, backward, step,
`loss.item()` (no clipping, no schedule). Both engines get deep copies of one random-init model and the
same pretraining batches (the synthetic mixture, packed, as `PretrainBatches` makes them; building
them is timed separately as "data", which `run` also pays every step). Steps alternate between the
engines (which goes first alternates too), so both see the same machine load.

MFU = flops per token x tokens/s / peak, with flops per token counted three ways:
  6*N_nonemb    N without the input embedding table (a lookup, not a matmul; the untied LM head counts)
  6*N_all       every parameter (the "6N" rule applied blindly; overstates the work)
  +attention    6*N_nonemb + 12*n_layer*seq_len*n_embd (PaLM's count of QK^T and AV, no causal discount)
The peak is an n x n fp32 matmul at the same torch threads, measured before and after (the higher is
used, so MFU is not flattered by a slow peak measurement).

    python benchmarks/bench_pretrain.py [--repeats 5] [--threads 2] [--shapes study,16x256,32x256] [--quick]
"""
from __future__ import annotations

import copy
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from rlearly.config import load_config, read_yaml_mapping  # noqa: E402
from rlearly.data.mixture import Mixture, PretrainBatches  # noqa: E402
from rlearly.data.world import World  # noqa: E402
from rlearly.train.common import cosine_lr, make_adamw  # noqa: E402
from rlearly.machine import fast_cpu_bf16  # noqa: E402
from rlearly.train.pretrain import train_step  # noqa: E402

STUDY = benchlib.ROOT / "studies" / "default.yaml"


def study_overrides(path: Path = STUDY) -> tuple[str, dict]:
    """(preset, config overrides) of a study spec's base config, so the study's pretraining shape is the
    one its YAML and the config defaults give (default.yaml sets no pretrain.batch_size or seq_len)."""
    raw = dict(read_yaml_mapping(path, "study").get("config") or {})
    return raw.pop("preset", "small"), raw


def parse_shape(text: str, study: tuple[int, int]) -> tuple[int, int]:
    if text == "study":
        return study
    b, _, t = text.lower().partition("x")
    return int(b), int(t)


def flops_per_token(model, seq_len: int) -> dict:
    c = model.cfg
    n_all, n_nonemb = model.num_params(), model.num_params(embeddings=False)
    return {"6N_nonemb": 6 * n_nonemb, "6N_all": 6 * n_all,
            "6N_nonemb+attn": 6 * n_nonemb + 12 * c.n_layer * seq_len * c.n_embd}


def bench_shape(base, preset: str, overrides: dict, mixture, tok, rows: int, seq_len: int, args) -> dict:
    """Time both engines on `rows` x `seq_len` batches; returns the shape's result."""
    shape_cfg = load_config(preset=preset, overrides={**overrides, "pretrain.batch_size": rows,
                                                      "pretrain.seq_len": seq_len})
    pc = shape_cfg.pretrain
    total = args.warmup + args.repeats
    maker, data_s, batches = PretrainBatches(shape_cfg, mixture, tok), [], []
    for i in range(total):
        t = time.perf_counter()
        batches.append(maker.batch(i))
        data_s.append(time.perf_counter() - t)

    ours, plain, half = copy.deepcopy(base).train(), copy.deepcopy(base).train(), copy.deepcopy(base).train()
    opt = make_adamw(ours, pc.lr, pc.weight_decay, (pc.beta1, pc.beta2))
    half_opt = make_adamw(half, pc.lr, pc.weight_decay, (pc.beta1, pc.beta2))
    plain_opt = torch.optim.AdamW(plain.parameters(), lr=pc.lr, betas=(pc.beta1, pc.beta2),
                                  weight_decay=pc.weight_decay)
    warmup_steps = pc.warmup_tokens // pc.tokens_per_step

    def rlearly_step(i):
        x, y = batches[i]
        lr = cosine_lr(i, pc.total_steps, warmup_steps, pc.lr, pc.min_lr_ratio)
        loss, _ = train_step(ours, opt, x, y, lr, pc.grad_clip)
        return loss.item()

    def bf16_step(i):  # runtime.dtype bf16: the same step under bf16 autocast (attention stays fp32 on the CPU)
        x, y = batches[i]
        lr = cosine_lr(i, pc.total_steps, warmup_steps, pc.lr, pc.min_lr_ratio)
        loss, _ = train_step(half, half_opt, x, y, lr, pc.grad_clip,
                             autocast=torch.autocast("cpu", dtype=torch.bfloat16))
        return loss.item()

    def plain_step(i):
        x, y = batches[i]
        logits = plain(x)  # (B, T, V)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        plain_opt.zero_grad(set_to_none=True)
        loss.backward()
        plain_opt.step()
        return loss.item()

    steps = {"rlearly train_step": rlearly_step, "plain PyTorch loop": plain_step}
    if args.bf16:
        steps[BF16] = bf16_step
    times = {k: [] for k in steps}
    losses = {k: [] for k in times}
    for i in range(total):
        names = list(steps) if i % 2 == 0 else list(steps)[::-1]
        for name in names:
            t = time.perf_counter()
            losses[name].append(steps[name](i))
            if i >= args.warmup:
                times[name].append(time.perf_counter() - t)
    tokens = rows * seq_len
    fpt = flops_per_token(base, seq_len)
    engines = {}
    for name, ts in times.items():
        e = benchlib.stats(ts)
        e["tok_per_s"] = tokens / e["median_s"]
        e["mfu"] = {k: f * e["tok_per_s"] / (args.peak_gflops * 1e9) for k, f in fpt.items()}
        e["first_losses"] = losses[name][:3]
        engines[name] = e
    base_s = engines["rlearly train_step"]["median_s"]
    for e in engines.values():
        e["rlearly_speedup"] = e["median_s"] / base_s
    return dict(batch_size=rows, seq_len=seq_len, tokens_per_step=tokens, flops_per_token=fpt,
                data_median_s=statistics.median(data_s), engines=engines,
                ratio_plain_over_rlearly=engines["plain PyTorch loop"]["median_s"] / base_s)


BF16 = "rlearly train_step, bf16"


def main(argv=None) -> dict:
    ap = benchlib.parser("bench_pretrain", __doc__)
    ap.add_argument("--bf16", choices=["auto", "yes", "no"], default="auto",
                    help="also time rlearly's step in bf16 (auto: where the CPU multiplies bf16 in hardware)")
    ap.add_argument("--shapes", default="study,16x256,32x256",
                    help="comma-separated batch shapes rows x seq_len; 'study' = the default study's")
    ap.add_argument("--matmul-n", type=int, default=2048, help="size of the square matmul that sets the peak")
    args = ap.parse_args(argv)
    args.bf16 = args.bf16 == "yes" or (args.bf16 == "auto" and fast_cpu_bf16())
    preset, overrides = study_overrides()
    if args.quick:
        preset, overrides, args.shapes, args.repeats, args.warmup, args.matmul_n = "tiny", {}, "2x64", 1, 1, 256
    benchlib.setup_threads(args)
    threads = torch.get_num_threads()
    peak_before = benchlib.matmul_peak(threads, args.matmul_n)

    cfg, tok, base = benchlib.build(preset, overrides)
    mixture = Mixture(cfg, World(cfg.world))
    study_shape = (cfg.pretrain.batch_size, cfg.pretrain.seq_len)
    args.peak_gflops = peak_before["gflops"]
    shapes = []
    for text in args.shapes.split(","):
        rows, seq_len = parse_shape(text.strip(), study_shape)
        r = bench_shape(base, preset, overrides, mixture, tok, rows, seq_len, args)
        r["study_shape"] = (rows, seq_len) == study_shape
        shapes.append(r)
    peak_after = benchlib.matmul_peak(threads, args.matmul_n)
    peak = max(peak_before["gflops"], peak_after["gflops"])
    for r in shapes:  # MFU against the higher of the two peak measurements
        for e in r["engines"].values():
            e["mfu"] = {k: v * args.peak_gflops / peak for k, v in e["mfu"].items()}

    result = dict(benchmark="pretrain", machine=benchlib.machine(),
                  settings=dict(preset=preset, study_overrides=overrides, n_params_all=base.num_params(),
                                n_params_nonemb=base.num_params(embeddings=False), warmup=args.warmup,
                                repeats=args.repeats, order="alternating per step"),
                  matmul_peak=dict(gflops=peak, before=peak_before, after=peak_after), shapes=shapes, notes=[
                      "MFU counts: 6N_nonemb (N without the input embedding), 6N_all, 6N_nonemb + attention "
                      "(12*n_layer*seq_len*n_embd); data = building one batch, not in either engine's step time"])

    print(f"pretraining step, preset {preset} ({base.num_params():,} params, {base.num_params(embeddings=False):,} "
          f"without the input embedding), torch threads {threads}, median of {args.repeats} (after {args.warmup} "
          f"warm-up); fp32 matmul peak {peak:.1f} GFLOP/s (n={args.matmul_n}; before {peak_before['gflops']:.1f}, "
          f"after {peak_after['gflops']:.1f})")
    rows = []
    for r in shapes:
        for name, e in r["engines"].items():
            rows.append(dict(shape=f"{r['batch_size']}x{r['seq_len']}" + (" (study)" if r["study_shape"] else ""),
                             engine=name, s=e["median_s"], tok=e["tok_per_s"], m1=e["mfu"]["6N_nonemb"],
                             m2=e["mfu"]["6N_all"], m3=e["mfu"]["6N_nonemb+attn"], x=e["rlearly_speedup"],
                             data=r["data_median_s"] if name.startswith("rlearly") else None))
    print(benchlib.table(rows, [("shape", "shape", ""), ("engine", "engine", ""), ("s", "s/step", ".3f"),
                                ("tok", "tok/s", ",.0f"), ("m1", "MFU 6N_nonemb", ".1%"), ("m2", "MFU 6N_all", ".1%"),
                                ("m3", "MFU +attn", ".1%"), ("x", "rlearly faster by", ".2f"),
                                ("data", "data s/batch", ".3f")]))
    benchlib.write_results(args.out, result)
    return result


if __name__ == "__main__":
    main()
