"""Run every benchmark in one process and print their headline ratios (`make bench`).

Each benchmark writes its own JSON (`<out-dir>/<name>.json`); this writes `<out-dir>/run_all.json`
with the headline numbers of each and which ones failed. `--quick` runs them all on the tiny preset
with one repeat (the smoke test in tests/test_benchmarks.py); the TRL baselines are skipped, with a note,
when trl is not installed (pip install -e '.[bench]').

    python benchmarks/run_all.py [--quick] [--repeats 5] [--threads 2] [--only grpo,sft] [--study runs/default]
"""
from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

from rlearly.machine import fast_cpu_bf16  # noqa: E402

BENCHMARKS = ("sampling", "grpo", "sft", "pretrain", "shared", "study")


def call_main(name: str, argv: list[str]):
    """bench_<name>.main with these flags: as an argument when main takes one, else through sys.argv."""
    import importlib

    mod = importlib.import_module(f"bench_{name}")
    if inspect.signature(mod.main).parameters:
        return mod.main(argv)
    saved = sys.argv
    sys.argv = [mod.__file__, *argv]
    try:
        return mod.main()
    finally:
        sys.argv = saved


def headline(name: str, res: dict) -> dict:
    """The few numbers worth a line each: speed ratios (baseline time / rlearly time), MFU, shares."""
    if not res:
        return {}
    if name == "grpo_bf16":
        ours = res["engines"]["rlearly RLRecipe.step"]["fraction_of_fp32_floor"]
        return {"bf16: update of the fp32 floor": ours["update"], "bf16: rollouts of the fp32 floor": ours["rollout"]}
    if name == "grpo":
        ours = res["engines"]["rlearly RLRecipe.step"]["fraction_of_fp32_floor"]
        return {"ratio": res.get("ratio_trl_over_rlearly"), "update of the fp32 floor": ours["update"],
                "rollouts of the fp32 floor": ours["rollout"], "notes": res.get("notes")}
    if name == "sft":
        return {"ratio": res.get("ratio_trl_over_rlearly"), "notes": res.get("notes")}
    if name == "pretrain":
        bf16 = "rlearly train_step, bf16"
        return {f"{s['batch_size']}x{s['seq_len']}": dict(
            ratio=s["ratio_plain_over_rlearly"], mfu_nonemb=s["engines"]["rlearly train_step"]["mfu"]["6N_nonemb"],
            of_the_fp32_floor=s["engines"]["rlearly train_step"]["mfu"]["6N_nonemb+attn"],
            **({"bf16: of the fp32 floor": s["engines"][bf16]["mfu"]["6N_nonemb+attn"]} if bf16 in s["engines"] else {}))
            for s in res["shapes"]}
    if name == "study":
        return {k: v["share"] for k, v in res.get("groups", {}).items()}
    if name == "shared":
        return {"slowdown beside a busy process, every CPU": res["all_cpus"]["slowdown"],
                "slowdown beside a busy process, free_cpus()": res["free_cpus"]["slowdown"]}
    rows = res.get("rows") or []  # sampling: speed-ups, and rlearly's share of the fp32 floor per shape
    bf16 = lambda r: ": bf16" if r["engine"].endswith("bf16") else ""  # noqa: E731
    return {f"{r.get('shape')}: {r.get('engine')}": r.get("rlearly_speedup") for r in rows} | {
        f"{r['shape']}{bf16(r)}: of the fp32 floor": r["fraction_of_fp32_floor"] for r in rows
        if "fraction_of_fp32_floor" in r}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (smoke test)")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per engine (default: each benchmark's)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default 2; 1 with --quick)")
    ap.add_argument("--only", default=",".join(BENCHMARKS), help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    ap.add_argument("--study", type=Path, default=None, help="study root for bench_study (default runs/default)")
    ap.add_argument("--out-dir", type=Path, default=benchlib.RESULTS)
    args = ap.parse_args(argv)
    if args.threads is None and args.quick:
        args.threads = 1  # also for benchmarks whose own --quick keeps their thread default
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    summary, failed = {}, []
    if "grpo" in names and fast_cpu_bf16():  # the GRPO step once more in bf16, rlearly alone (TRL's baseline is fp32)
        names.insert(names.index("grpo") + 1, "grpo_bf16")
    for label in names:
        name, flags = label.removesuffix("_bf16"), ["--out", str(args.out_dir / f"{label}.json")]
        flags += ["--dtype", "bf16", "--no-trl"] if label == "grpo_bf16" else []
        flags += ["--quick"] if args.quick else []
        flags += ["--repeats", str(args.repeats)] if args.repeats and name != "study" else []
        flags += ["--threads", str(args.threads)] if args.threads is not None else []
        flags += ["--study", str(args.study)] if name == "study" and args.study else []
        print(f"\n=== {label}: benchmarks/bench_{name}.py {' '.join(flags)}", flush=True)
        t = time.perf_counter()
        try:
            res = call_main(name, flags)
            if not isinstance(res, dict):  # a main that only writes its JSON
                p = args.out_dir / f"{label}.json"
                res = json.loads(p.read_text()) if p.is_file() else {}
            summary[label] = dict(seconds=round(time.perf_counter() - t, 1), headline=headline(label, res))
        except Exception as e:  # one broken benchmark must not hide the others' numbers
            traceback.print_exc()
            failed.append(label)
            summary[label] = dict(seconds=round(time.perf_counter() - t, 1), error=f"{type(e).__name__}: {e}")
    print("\n=== summary (ratios: baseline time / rlearly time, > 1 = rlearly faster)")
    for name, s in summary.items():
        print(f"  {name:<9} {s['seconds']:>6.1f} s  {s.get('error') or json.dumps(s['headline'], default=str)}")
    benchlib.write_results(args.out_dir / "run_all.json",
                           dict(machine=benchlib.machine(), quick=args.quick, benchmarks=summary, failed=failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
