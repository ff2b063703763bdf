"""SFT step: rlearly's `SFTRecipe.step` vs TRL's `SFTTrainer` on the same weights and the same batches.

Examples are the synthetic task's one-demo view (BOS + prompt, then demonstration + EOS), tokenized once
by rlearly and handed to TRL already tokenized (input_ids + completion_mask), in the order rlearly's
seeded epoch permutation visits them, with TRL's sampler set to sequential: step i of both engines sees
the same examples. Matched: batch size (`sft.batch_size`, 32), no packing, right padding to the
longest sequence of the batch, completion-only token-mean NLL, AdamW lr 1e-4 constant, betas
(0.9, 0.999), weight decay 0.01, grad clip 1.0, fp32, no gradient checkpointing.

TRL steps are timed by a TrainerCallback (on_step_begin .. on_step_end); the rlearly step with the same
index runs inside that callback right after, so both see the same machine load. Tokens/s counts real
(non-padding) tokens of the batch.

    python benchmarks/bench_sft.py [--repeats 5] [--threads 2] [--batch 32] [--no-trl] [--quick]
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402
import torch  # noqa: E402

from rlearly.tasks import get_task  # noqa: E402
from rlearly.train.common import epoch_batch  # noqa: E402
from rlearly.train.sft import SFTRecipe  # noqa: E402


def trl_trainer(args, hf, hf_tok, examples, total_steps: int, out_dir: str, callback):
    """An SFTTrainer on pre-tokenized (prompt ids, response ids) pairs, in the given order."""
    import datasets
    from trl import SFTConfig, SFTTrainer

    data = datasets.Dataset.from_dict({"input_ids": [p + r for p, r in examples],
                                       "completion_mask": [[0] * len(p) + [1] * len(r) for p, r in examples]})
    config = SFTConfig(
        output_dir=out_dir, use_cpu=True, bf16=False, fp16=False, activation_checkpointing=False, seed=0,
        max_steps=total_steps, per_device_train_batch_size=args.batch, gradient_accumulation_steps=1,
        train_sampling_strategy="sequential", shuffle_dataset=False, packing=False, padding_free=False,
        max_length=None, completion_only_loss=True, loss_type="nll", learning_rate=args.lr,
        lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.01, adam_beta1=0.9, adam_beta2=0.999,
        max_grad_norm=1.0, report_to="none", logging_strategy="no", save_strategy="no", eval_strategy="no",
        disable_tqdm=True, dataloader_pin_memory=False, dataloader_num_workers=0)
    return SFTTrainer(model=hf, args=config, train_dataset=data, processing_class=hf_tok, callbacks=[callback])


def run_trl(args, hf, hf_tok, order, rl_step, real: list[int], scored: list[int]):
    """Train TRL for all steps, running `rl_step(i)` after TRL's step i. Returns (step seconds of the timed
    steps, checks that TRL trained on the same tokens)."""
    times, seen = [], []
    with tempfile.TemporaryDirectory() as d:
        trainer = trl_trainer(args, hf, hf_tok, order, len(real), d, benchlib.step_timer(args.warmup, times, rl_step))
        compute_loss = trainer.compute_loss

        def seen_loss(model_, inputs, *a, **kw):  # what TRL's batch holds: real and scored tokens
            seen.append((int(inputs["attention_mask"].sum()), int((inputs["labels"] != -100).sum()),
                         tuple(inputs["input_ids"].shape)))
            return compute_loss(model_, inputs, *a, **kw)
        trainer.compute_loss = seen_loss
        benchlib.setup_threads(args)  # in case the trainer's setup changed them
        trainer.train()
    return times, {
        "trl_model_fp32": all(p.dtype == torch.float32 for p in trainer.model.parameters()),
        "trl_bf16": trainer.args.bf16, "trl_activation_checkpointing": trainer.args.activation_checkpointing,
        "trl_packing": trainer.args.packing,
        "same_real_tokens_per_step": [s[0] for s in seen] == real,
        # TRL scores target j+1 at position j, so a completion of n tokens has n labels, as rlearly's mask
        "same_scored_tokens_per_step": [s[1] for s in seen] == scored,
        "trl_batch_shapes": sorted({s[2] for s in seen}),
    }


def report(args, model, engines: dict, real: list[int], checks: dict, notes: list, bound: dict) -> None:
    print(f"SFT step, preset {args.preset} ({model.num_params():,} params), batch {args.batch} "
          f"({statistics.median(real):.0f} real tokens, median), torch threads {torch.get_num_threads()}, "
          f"median of {args.repeats} (after {args.warmup} warm-up)")
    rows = [dict(engine=k, **v) for k, v in engines.items()]
    print(benchlib.table(rows, [("engine", "engine", ""), ("median_s", "s/step", ".3f"), ("min_s", "min", ".3f"),
                                ("max_s", "max", ".3f"), ("real_tok_per_s", "real tok/s", ",.0f"),
                                ("rlearly_speedup", "rlearly faster by", ".2f")]))
    print(benchlib.floor_line(bound, "TRL SFTTrainer"))
    if checks:
        print("checks: " + ", ".join(f"{k}={v}" for k, v in checks.items()))
    for n in notes:
        print("note: " + n)


def main(argv=None) -> dict:
    ap = benchlib.parser("bench_sft", __doc__)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--batch", type=int, default=None, help="examples per step (default: the config's sft.batch_size)")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--no-trl", action="store_true", help="skip the TRL baseline")
    args = ap.parse_args(argv)
    if args.quick:
        args.preset, args.batch, args.repeats, args.warmup = "tiny", 4, 1, 1
    benchlib.setup_threads(args)
    use_trl = not args.no_trl and benchlib.have("trl")
    notes = [] if use_trl or args.no_trl else [benchlib.skip_note("TRL SFTTrainer")]

    overrides = {"sft.lr": args.lr, "sft.loss_agg": "token-mean", "sft.warmup_steps": 0}
    if args.batch:
        overrides["sft.batch_size"] = args.batch
    cfg, tok, model = benchlib.build(args.preset, overrides)
    args.batch = cfg.sft.batch_size
    hf = hf_tok = None
    if use_trl:
        hf, hf_tok = benchlib.hf_copy(model, tok)  # before rlearly's first update: the same weights
    recipe = SFTRecipe(cfg, model, tok, get_task("synthetic", world=cfg.world), all_demos=False)
    total = args.warmup + args.repeats
    order = [recipe.examples[i] for s in range(total)
             for i in epoch_batch(cfg.seed, s, args.batch, len(recipe.examples))]
    steps = [order[s * args.batch:(s + 1) * args.batch] for s in range(total)]
    real = [sum(len(p) + len(r) for p, r in b) for b in steps]  # non-padding tokens of each batch
    scored = [sum(len(r) for _, r in b) for b in steps]  # demonstration + EOS tokens (the loss's)

    rl_times = []

    def rl_step(i: int) -> None:
        t = time.perf_counter()
        recipe.step(i)
        if i >= args.warmup:
            rl_times.append(time.perf_counter() - t)

    checks, trl_times = {}, None
    if use_trl:
        trl_times, checks = run_trl(args, hf, hf_tok, order, rl_step, real, scored)
    else:
        for i in range(total):
            rl_step(i)

    timed_real = real[args.warmup:]
    engines = {"rlearly SFTRecipe.step": rl_times}
    if trl_times:
        engines["TRL SFTTrainer step"] = trl_times
    base = statistics.median(rl_times)
    for name, runs in engines.items():
        engines[name] = e = benchlib.stats(runs)
        e["real_tok_per_s"] = statistics.median(n / t for n, t in zip(timed_real, runs))  # median over steps
        e["rlearly_speedup"] = e["median_s"] / base
    # the least work a step can be: forward + backward (3x forward) of every real token, the head on scored ones
    flops = statistics.median(sum(3 * benchlib.forward_flops(model, len(p) + len(r) - 1, 0, len(r)) for p, r in b)
                              for b in steps[args.warmup:])
    bound = benchlib.floor(flops, benchlib.matmul_peak(torch.get_num_threads())["gflops"],
                           engines["TRL SFTTrainer step"]["median_s"] if trl_times else None)
    result = dict(benchmark="sft", machine=benchlib.machine(), floor=bound, settings=dict(
        preset=args.preset, n_params=model.num_params(), batch_size=args.batch, examples=len(recipe.examples),
        view="one demonstration per problem", real_tokens_per_step=timed_real,
        scored_tokens_per_step=scored[args.warmup:], lr=args.lr, loss="completion-only token-mean NLL",
        packing=False, warmup=args.warmup, repeats=args.repeats,
        order="interleaved: TRL step i, then rlearly step i"),
        engines=engines, ratio_trl_over_rlearly=(engines["TRL SFTTrainer step"]["median_s"] / base) if trl_times else None,
        checks=checks, notes=notes)
    report(args, model, engines, timed_real, checks, notes, bound)
    benchlib.write_results(args.out, result)
    return result


if __name__ == "__main__":
    main()
