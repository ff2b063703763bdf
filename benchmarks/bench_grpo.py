"""GRPO step: rlearly's `RLRecipe.step` vs TRL's `GRPOTrainer` on the same weights, prompts and settings.

One step = sample G completions for each of P prompts, score them, group advantages, one clipped
token-mean policy-gradient update (AdamW). Settings matched on both sides: G=8, P=16 synthetic-world
prompts per step (the very same prompts at each step), exactly `--new` tokens per completion (rlearly
without stop tokens, TRL with min_new_tokens = max_new_tokens), temperature 1, top-p 1, lr 1e-4 constant,
AdamW betas (0.9, 0.999) and weight decay 0.01, grad clip 1.0, no KL (beta 0), clip 0.2, dual clip /
two-sided clip at 3, token-mean loss (TRL "dapo"), std-normalised group advantages, fp32, no gradient
checkpointing, one optimizer step per generation batch. The reward is the parity of the completion's
character count, so groups have mixed rewards and the update is never skipped.

TRL steps are timed by a TrainerCallback (on_step_begin .. on_step_end: generation, rewards, loss,
backward, optimizer). The rlearly step with the same index runs right after each TRL step, inside that
callback, so both engines see the same machine load. Medians over `--repeats` steps after `--warmup`.

    python benchmarks/bench_grpo.py [--repeats 5] [--threads 2] [--new 64] [--no-trl] [--quick]
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

from rlearly.config import RuntimeConfig  # noqa: E402
from rlearly.lm.runtime import resolve  # noqa: E402
from rlearly.tasks import SyntheticTask  # noqa: E402
from rlearly.train.common import epoch_batch  # noqa: E402
from rlearly.train.rl import RLRecipe  # noqa: E402


def parity(text: str) -> float:
    """1.0 for an odd number of characters: a reward a random model scores ~50% on."""
    return float(len(text) % 2)


class ParityTask(SyntheticTask):
    """Synthetic-world prompts, parity reward (mixed within every group, so advantages are nonzero)."""

    def reward(self, completion: str, problem) -> float:
        return parity(completion)


def clocked(fn, sink: list):
    """fn, appending the seconds of each call to `sink` (phase timings without touching either engine)."""
    def wrapped(*a, **kw):
        t = time.perf_counter()
        out = fn(*a, **kw)
        sink.append(time.perf_counter() - t)
        return out
    return wrapped


def trl_trainer(args, hf, hf_tok, prompts: list[str], total_steps: int, out_dir: str, log: dict, callback):
    """A GRPOTrainer set to the same work as RLRecipe (see the module docstring); `log` collects what the
    reward function saw (prompts, completion lengths, rewards) for the checks."""
    import datasets
    from trl import GRPOConfig, GRPOTrainer

    def parity_reward(prompts, completions, completion_ids, **kw):
        rewards = [parity(c) for c in completions]
        log["prompts"].append(list(prompts))
        log["lengths"].extend(len(c) for c in completion_ids)
        log["rewards"].extend(rewards)
        return rewards

    n = args.prompts * args.group  # completions per step
    config = GRPOConfig(
        output_dir=out_dir, use_cpu=True, bf16=False, fp16=False, activation_checkpointing=False,
        seed=0, max_steps=total_steps, per_device_train_batch_size=n, gradient_accumulation_steps=1,
        steps_per_generation=1, num_iterations=1, num_generations=args.group, shuffle_dataset=False,
        max_completion_length=args.new, generation_kwargs={"min_new_tokens": args.new},
        temperature=1.0, top_p=1.0, top_k=0, learning_rate=args.lr, lr_scheduler_type="constant",
        warmup_steps=0, weight_decay=0.01, adam_beta1=0.9, adam_beta2=0.999, max_grad_norm=1.0,
        beta=0.0, epsilon=0.2, delta=3.0, loss_type="dapo", scale_rewards="group",
        report_to="none", logging_strategy="no", save_strategy="no", eval_strategy="no", disable_tqdm=True,
        log_completions=False, dataloader_pin_memory=False, dataloader_num_workers=0)
    return GRPOTrainer(model=hf, reward_funcs=[parity_reward], args=config, processing_class=hf_tok,
                       train_dataset=datasets.Dataset.from_dict({"prompt": prompts}), callbacks=[callback])


def run_trl(args, hf, hf_tok, tok, step_prompts: list[list[str]], rl_step):
    """Train TRL for all steps, running `rl_step(i)` after TRL's step i. Returns ((step seconds, rollout
    seconds) of the timed steps, checks that TRL did the intended work)."""
    times, rollouts, log = [], [], {"prompts": [], "lengths": [], "rewards": []}
    flat = [p for ps in step_prompts for p in ps]
    with tempfile.TemporaryDirectory() as d:
        trainer = trl_trainer(args, hf, hf_tok, flat, len(step_prompts), d, log,
                              benchlib.step_timer(args.warmup, times, rl_step))
        # generation + rewards + advantages of each step (the rest is loss, backward, optimizer)
        trainer._generate_and_score_completions = clocked(trainer._generate_and_score_completions, rollouts)
        benchlib.setup_threads(args)  # in case the trainer's setup changed them
        trainer.train()
    checks = {
        "trl_model_fp32": all(p.dtype == torch.float32 for p in trainer.model.parameters()),
        "trl_bf16": trainer.args.bf16, "trl_fp16": trainer.args.fp16,
        "trl_activation_checkpointing": trainer.args.activation_checkpointing or trainer.model.is_activation_checkpointing,
        "trl_completion_lengths": sorted(set(log["lengths"])),
        "trl_same_prompts_per_step": [sorted(set(ps)) for ps in log["prompts"]] == [sorted(ps) for ps in step_prompts],
        "trl_prompt_ids_equal": all(hf_tok(p)["input_ids"] == tok.encode(p) for p in flat[:64]),
        "trl_reward_mean": statistics.mean(log["rewards"]),
    }
    return (times, rollouts[args.warmup:]), checks


def phases(steps: list[float], rollouts: list[float]) -> dict:
    """Step statistics plus the medians of its two phases: rollout (sample, score, advantages) and update
    (loss, backward, optimizer step) = step - rollout."""
    return {**benchlib.stats(steps), "rollout_median_s": statistics.median(rollouts),
            "update_median_s": statistics.median(s - r for s, r in zip(steps, rollouts)),
            "rollout_runs_s": rollouts}


def setup(args, use_trl: bool):
    """The RL config matched to TRL's settings, the model, its HF copy (same weights) and the recipe."""
    cfg, tok, model = benchlib.build(args.preset, {
        "rl.prompts_per_step": args.prompts, "rl.group_size": args.group, "rl.max_new_tokens": args.new,
        "rl.lr": args.lr, "rl.temperature": 1.0, "rl.top_p": 1.0, "rl.kl_coef": 0.0, "rl.mini_batches": 1,
        "rl.epochs": 1, "rl.clip_low": 0.2, "rl.clip_high": 0.2, "rl.dual_clip": 3.0,
        "rl.loss_agg": "token-mean", "rl.normalize_std": True, "rl.warmup_steps": 0})
    # No stop tokens (this benchmark only): every completion runs to max_new_tokens, as TRL's do with
    # min_new_tokens, so both engines sample and train on exactly the same number of tokens
    tok.line_stop_ids = []
    task = ParityTask(cfg.world)
    hf = hf_tok = None
    if use_trl:
        hf, hf_tok = benchlib.hf_copy(model, tok)  # before rlearly's first update: the same weights
    recipe = RLRecipe(cfg, model, tok, task)
    return cfg, tok, model, task, recipe, hf, hf_tok


def report(args, model, engines: dict, checks: dict, notes: list, bound: dict) -> None:
    print(f"GRPO step, preset {args.preset} ({model.num_params():,} params), {args.prompts} prompts x G={args.group} x "
          f"{args.new} tokens, torch threads {torch.get_num_threads()}, median of {args.repeats} "
          f"(after {args.warmup} warm-up)")
    rows = [dict(engine=k, **v) for k, v in engines.items()]
    print(benchlib.table(rows, [("engine", "engine", ""), ("median_s", "s/step", ".3f"), ("min_s", "min", ".3f"),
                                ("max_s", "max", ".3f"), ("rollout_median_s", "rollout s", ".3f"),
                                ("update_median_s", "update s", ".3f"), ("completion_tok_per_s", "tok/s", ",.0f"),
                                ("rlearly_speedup", "rlearly faster: step", ".2f"),
                                ("rollout_speedup", "rollout", ".2f"), ("update_speedup", "update", ".2f")]))
    print(benchlib.floor_line(bound, "TRL GRPOTrainer"))
    print("checks: " + ", ".join(f"{k}={v}" for k, v in checks.items() if not isinstance(v, list) or len(v) < 6))
    for n in notes:
        print("note: " + n)


def main(argv=None) -> dict:
    ap = benchlib.parser("bench_grpo", __doc__)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--prompts", type=int, default=16, help="prompts per step")
    ap.add_argument("--group", type=int, default=8, help="completions per prompt (G)")
    ap.add_argument("--new", type=int, default=64, help="tokens per completion (exactly)")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--no-trl", action="store_true", help="skip the TRL baseline")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32",
                    help="rlearly's precision (runtime.dtype); the floor stays fp32's, so bf16 may pass 100%%")
    args = ap.parse_args(argv)
    if args.quick:
        args.preset, args.prompts, args.group, args.new, args.repeats, args.warmup = "tiny", 2, 4, 8, 1, 1
    benchlib.setup_threads(args)
    use_trl = not args.no_trl and benchlib.have("trl")
    notes = [] if use_trl or args.no_trl else [benchlib.skip_note("TRL GRPOTrainer")]

    cfg, tok, model, task, recipe, hf, hf_tok = setup(args, use_trl)
    total = args.warmup + args.repeats
    step_prompts = [[task.prompt(recipe.problems[i]) for i in epoch_batch(cfg.seed, s, args.prompts, len(recipe.problems))]
                    for s in range(total)]

    rl_times, rl_rows, rl_rollout = [], [], []
    recipe.collect = clocked(recipe.collect, rl_rollout)  # sampling + rewards + advantages of each step

    precision = resolve(RuntimeConfig(device="cpu", dtype=args.dtype))

    def rl_step(i: int) -> None:
        t = time.perf_counter()
        with precision.autocast():  # as a branch runs its recipe (rlearly.train.branch)
            rl_rows.append(recipe.step(i))
        if i >= args.warmup:
            rl_times.append(time.perf_counter() - t)

    checks, trl = {}, None
    if use_trl:
        trl, checks = run_trl(args, hf, hf_tok, tok, step_prompts, rl_step)
    else:
        for i in range(total):
            rl_step(i)
    checks.update({
        "rlearly_completion_length_mean": [r["response_len"] for r in rl_rows],
        "rlearly_truncated_frac": [r["truncated_frac"] for r in rl_rows],
        "rlearly_reward_mean": statistics.mean(r["reward_mean"] for r in rl_rows),
        "rlearly_frac_zero_std_groups": statistics.mean(r["frac_zero_std"] for r in rl_rows),
    })
    ok = all(r["response_len"] == args.new and r["truncated_frac"] == 1.0 for r in rl_rows)
    if trl:
        ok = ok and checks["trl_completion_lengths"] == [args.new] and checks["trl_model_fp32"]
    checks["all_completions_exactly_new_tokens_and_fp32"] = ok

    tokens = args.prompts * args.group * args.new  # completion tokens sampled and trained on per step
    engines = {"rlearly RLRecipe.step": phases(rl_times, rl_rollout[args.warmup:])}
    if trl:
        engines["TRL GRPOTrainer step"] = phases(*trl)
    base = engines["rlearly RLRecipe.step"]
    for e in engines.values():
        e["completion_tok_per_s"] = tokens / e["median_s"]
        e["rlearly_speedup"] = e["median_s"] / base["median_s"]
        e["rollout_speedup"] = e["rollout_median_s"] / base["rollout_median_s"]
        e["update_speedup"] = e["update_median_s"] / base["update_median_s"]
    # the least work a step can be: each prompt's prefill once, G x new sampled tokens, then forward + backward
    # (3x forward) of each prompt once and of every completion token, the head only where tokens are drawn/scored
    G, n = args.group, args.new

    def part_flops(s: int) -> tuple[float, float]:  # (sampling, update) of step s
        ps = [len(recipe.prompts[i]) for i in epoch_batch(cfg.seed, s, args.prompts, len(recipe.problems))]
        sample = sum(benchlib.forward_flops(model, p) + G * benchlib.forward_flops(model, n - 1, p, n) for p in ps)
        update = sum(benchlib.forward_flops(model, p - 1) + G * benchlib.forward_flops(model, n, p - 1, n) for p in ps)
        return sample, 3 * update

    peak = benchlib.matmul_peak(torch.get_num_threads())["gflops"]
    parts = [part_flops(s) for s in range(args.warmup, total)]
    bound = benchlib.floor(statistics.median(a + b for a, b in parts), peak,
                           engines["TRL GRPOTrainer step"]["median_s"] if trl else None)
    bound["rollout_floor_s"] = statistics.median(a for a, _ in parts) / (peak * 1e9)
    bound["update_floor_s"] = statistics.median(b for _, b in parts) / (peak * 1e9)
    for e in engines.values():  # each phase's least work at the peak over its time: the fraction of the fp32 floor
        e["fraction_of_fp32_floor"] = dict(step=bound["floor_s"] / e["median_s"],
                                           rollout=bound["rollout_floor_s"] / e["rollout_median_s"],
                                           update=bound["update_floor_s"] / e["update_median_s"])
    result = dict(benchmark="grpo", machine=benchlib.machine(), floor=bound, settings=dict(
        preset=args.preset, dtype=args.dtype, n_params=model.num_params(), prompts_per_step=args.prompts, group_size=args.group,
        max_new_tokens=args.new, completion_tokens_per_step=tokens, lr=args.lr, temperature=1.0, top_p=1.0,
        kl=0.0, clip=0.2, dual_clip=3.0, loss="token-mean (TRL dapo)", reward="parity of completion characters",
        stop_tokens="none (rlearly); min_new_tokens=max_new_tokens (TRL)", warmup=args.warmup,
        repeats=args.repeats, order="interleaved: TRL step i, then rlearly step i"),
        engines=engines, ratio_trl_over_rlearly=(engines["TRL GRPOTrainer step"]["median_s"] / base["median_s"]) if use_trl else None,
        checks=checks, notes=notes)

    report(args, model, engines, checks, notes, bound)
    benchlib.write_results(args.out, result)
    return result


if __name__ == "__main__":
    main()
