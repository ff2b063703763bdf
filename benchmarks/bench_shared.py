"""A study step on a shared machine: one pretraining step of the default study's model on a quiet machine, then
beside one busy single-thread process (another user's job), with torch threads sized two ways: every usable CPU
(how a study sized a lone node before rlearly.machine) and `rlearly.machine.free_cpus()` (what a study does now:
the usable CPUs less those others keep busy). The slowdowns are each sizing's step time over the quiet one.

Torch's OpenMP threads wait for each other at every parallel region: a thread that shares its CPU with a busy
process holds the others back for the length of an OS time slice, so the step slows by far more than the CPU it
lost (17x measured at 89f0fd4 on a 2-core Xeon). Steps alternate between the sizings, so both see the same load.

    python benchmarks/bench_shared.py [--repeats 8] [--quick]
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402
import torch  # noqa: E402
from bench_pretrain import study_overrides  # noqa: E402

from rlearly.machine import busy_cpus, free_cpus, usable_cpus  # noqa: E402
from rlearly.train.common import make_adamw  # noqa: E402
from rlearly.train.pretrain import train_step  # noqa: E402


def _busy_process() -> subprocess.Popen:
    """One single-thread process that spins until killed: the other job on a shared machine."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main(argv=None) -> dict:
    ap = benchlib.parser("bench_shared", __doc__)
    ap.set_defaults(repeats=8)
    args = ap.parse_args(argv)
    if args.quick:
        args.repeats = 2
    preset, overrides = ("tiny", {}) if args.quick else study_overrides()
    cfg, tok, model = benchlib.build(preset, overrides)
    opt = make_adamw(model, cfg.pretrain.lr, cfg.pretrain.weight_decay)
    rows, seq = (2, 64) if args.quick else (cfg.pretrain.batch_size, cfg.pretrain.seq_len)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, tok.vocab_size, (rows, seq + 1), generator=g)

    def step(threads: int) -> float:
        torch.set_num_threads(threads)
        t0 = time.perf_counter()
        train_step(model, opt, x[:, :-1], x[:, 1:], lr=1e-4, grad_clip=1.0)
        return time.perf_counter() - t0

    cpus, load = usable_cpus(), os.getloadavg()[0]
    quiet_threads = free_cpus()
    for _ in range(max(1, args.warmup)):
        step(quiet_threads)
    quiet = statistics.median(step(quiet_threads) for _ in range(args.repeats))
    other = _busy_process()
    try:
        time.sleep(0.5)
        busy, shared_threads = busy_cpus(), free_cpus()
        old, new = [], []
        step(cpus), step(shared_threads)  # warm-up under load
        for i in range(args.repeats):  # alternate, and alternate which goes first
            for sizing in ((old, cpus), (new, shared_threads))[:: 1 if i % 2 == 0 else -1]:
                sizing[0].append(step(sizing[1]))
    finally:
        other.kill()
        other.wait()
    result = dict(benchmark="shared", machine=benchlib.machine(),
                  settings=dict(preset=preset, batch=f"{rows}x{seq}", repeats=args.repeats, usable_cpus=cpus,
                                load_avg_1m_before=load, busy_cpus_measured=round(busy, 2)),
                  quiet=dict(threads=quiet_threads, median_s=quiet),
                  all_cpus=dict(threads=cpus, median_s=statistics.median(old),
                                slowdown=statistics.median(old) / quiet),
                  free_cpus=dict(threads=shared_threads, median_s=statistics.median(new),
                                 slowdown=statistics.median(new) / quiet),
                  notes=["slowdown: median step beside one busy single-thread process / median step on the quiet "
                         "machine; target (issue 38): rlearly's sizing at most 2.5x"])
    print(f"pretraining step {rows}x{seq} ({preset}), {cpus} usable CPUs, load {load:.2f} before; beside one busy "
          f"process ({busy:.1f} CPUs busy):")
    print(benchlib.table([dict(s="quiet machine", t=quiet_threads, m=quiet, x=1.0),
                          dict(s="busy: every usable CPU", t=cpus, m=result["all_cpus"]["median_s"],
                               x=result["all_cpus"]["slowdown"]),
                          dict(s="busy: free_cpus() (a study now)", t=shared_threads, m=result["free_cpus"]["median_s"],
                               x=result["free_cpus"]["slowdown"])],
                         [("s", "sizing", ""), ("t", "threads", "d"), ("m", "s/step", ".3f"), ("x", "slowdown", ".2f")]))
    benchlib.write_results(args.out, result)
    return result


if __name__ == "__main__":
    main()
