"""Helpers shared by the benchmarks: command-line flags, the model under test, timing, the machine
description and the JSON results file. Every benchmark runs rlearly and its baseline in one process on
the same weights and inputs, and reports medians and ratios (docs/DESIGN.md §8).
"""
from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def parser(name: str, doc: str) -> argparse.ArgumentParser:
    """The flags every benchmark takes; `name` names the default results file."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per engine (medians of these)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs per engine first")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default 2, with --quick 1; 0 = leave torch's default)")
    ap.add_argument("--quick", action="store_true", help="tiny preset and sizes, 1 repeat (smoke test)")
    ap.add_argument("--out", type=Path, default=RESULTS / f"{name}.json", help="results JSON")
    return ap


def setup_threads(args) -> None:
    """Set torch threads from the parsed flags (or a plain count). Unset: 2, and 1 with --quick: on a loaded
    2-core machine two OpenMP threads can make tiny ops 10-50x slower (each waits for the other), which a
    smoke test cannot afford."""
    if isinstance(args, argparse.Namespace):
        if args.threads is None:
            args.threads = 1 if getattr(args, "quick", False) else 2
        n = args.threads
    else:
        n = 2 if args is None else args
    if n > 0:
        torch.set_num_threads(n)


def have(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a module blocked in sys.modules (tests simulate a missing trl so)
        return False


def _version(pkg: str) -> str | None:
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine() -> dict:
    """What the numbers were measured on: CPU, cores, threads, load, library versions, commit."""
    from rlearly.files import git_commit
    from rlearly.machine import cpu_model, fast_cpu_bf16, usable_cpus

    return dict(cpu=cpu_model(), cores=os.cpu_count(), cores_usable=usable_cpus(), fast_bf16=fast_cpu_bf16(),
                torch_threads=torch.get_num_threads(),
                load_avg_1m=os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
                python=platform.python_version(),
                **{pkg: _version(pkg) for pkg in ("torch", "transformers", "trl", "accelerate")},
                rlearly_commit=git_commit(), when=time.strftime("%Y-%m-%dT%H:%M:%S"))


def build(preset: str, overrides: dict | None = None, seed: int = 0):
    """(cfg, tok, model): the preset's config, a tokenizer trained on the synthetic world's corpus (as
    pretraining trains it, so prompts tokenize as in the study) and a random-init LlamaLM."""
    from rlearly.config import load_config
    from rlearly.data.mixture import Mixture
    from rlearly.data.world import World
    from rlearly.lm.model import LlamaLM
    from rlearly.lm.tokenizer import train_tokenizer

    cfg = load_config(preset=preset, overrides=overrides)
    mixture = Mixture(cfg, World(cfg.world))
    tok = train_tokenizer(mixture.tokenizer_corpus(cfg.data.tokenizer_docs, cfg.world.seed), cfg.data.vocab_size)
    torch.manual_seed(seed)
    return cfg, tok, LlamaLM(cfg.model, tok.vocab_size)


def hf_copy(model, tok):
    """The same weights as a transformers LlamaForCausalLM (fp32) and its tokenizer, through rlearly's own
    HF-format checkpoint (no pickle)."""
    import transformers

    from rlearly.lm.checkpoint import save_checkpoint

    with tempfile.TemporaryDirectory() as d:
        save_checkpoint(Path(d) / "ckpt", model, tok, {"method": "benchmark"})
        hf = transformers.AutoModelForCausalLM.from_pretrained(Path(d) / "ckpt", dtype=torch.float32)
        hf_tok = transformers.AutoTokenizer.from_pretrained(Path(d) / "ckpt")
    return hf, hf_tok


def timed(fn, repeats: int, warmup: int = 1) -> list[float]:
    """Seconds of each of `repeats` calls of fn, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def stats(times: list[float]) -> dict:
    """Median (the reported number), spread and every run, in seconds."""
    return dict(median_s=statistics.median(times), min_s=min(times), max_s=max(times), runs_s=list(times))


def matmul_peak(threads: int, n: int = 2048, repeats: int = 5) -> dict:
    """fp32 GFLOP/s of an n x n x n matmul (2 n^3 flops) at the current torch threads: the machine's
    practical peak, which model-FLOPs utilisation is measured against (docs/DESIGN.md §10: ≈118 on 2 threads)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    times = timed(lambda: torch.mm(a, b), repeats, warmup=2)
    return dict(n=n, threads=threads, gflops=2 * n**3 / statistics.median(times) / 1e9,
                gflops_best=2 * n**3 / min(times) / 1e9, **stats(times))


def forward_flops(model, positions: int, start: int = 0, head: int = 0) -> float:
    """FLOPs of one forward pass through the decoder layers for `positions` consecutive tokens at positions
    start .. start+positions-1 (each attends to itself and every earlier token: QK^T and AV, 4·d per key
    per layer), plus the LM head on `head` tokens. Weights counted: the layers' matrices and the head; the
    input embedding is a lookup. The lower bound of the work any engine must do for those tokens."""
    c = model.cfg
    layer_weights = sum(m.weight.numel() for m in model.model.layers.modules() if isinstance(m, torch.nn.Linear))
    keys = positions * start + positions * (positions + 1) // 2  # sum over the tokens of their visible keys
    return 2 * layer_weights * positions + 4 * c.n_layer * c.n_embd * keys + 2 * model.lm_head.weight.numel() * head


def floor(flops: float, peak_gflops: float, baseline_s: float | None = None) -> dict:
    """The time `flops` take at the measured matmul peak (no engine can be faster on this machine), and the
    largest speed-up over `baseline_s` that any engine could therefore show."""
    s = flops / (peak_gflops * 1e9)
    return dict(gflop=flops / 1e9, peak_gflops=peak_gflops, floor_s=s,
                max_ratio=(baseline_s / s) if baseline_s else None)


def floor_line(bound: dict, baseline: str) -> str:
    line = (f"compute floor: {bound['gflop']:.3g} GFLOP per step take {bound['floor_s']:.3f} s at the measured "
            f"{bound['peak_gflops']:.0f} GFLOP/s matmul peak")
    if bound["max_ratio"]:
        line += f", so no engine can beat {baseline} by more than {bound['max_ratio']:.2f}x here"
    return line


def write_results(path: Path, result: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {path}")


def table(rows: list[dict], cols: list[tuple[str, str, str]]) -> str:
    """A fixed-width text table. cols: (key, header, format spec); a missing value prints as '-'."""
    cells = [[h for _, h, _ in cols]]
    for r in rows:
        cells.append([("-" if r.get(k) is None else format(r[k], f)) for k, _, f in cols])
    widths = [max(len(c[i]) for c in cells) for i in range(len(cols))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def skip_note(what: str) -> str:
    return (f"{what}: skipped, trl is not installed (pip install -e '.[bench]'); "
            "rlearly's side was still measured")


def ensure_path() -> None:
    """Let `python benchmarks/x.py` import rlearly from a checkout that is not pip-installed."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def step_timer(warmup: int, times: list, after):
    """A transformers TrainerCallback that appends the seconds of each optimizer step (on_step_begin ..
    on_step_end: everything the trainer does for the step, generation included) after `warmup` steps to
    `times`, then calls `after(i)` with the step's index (the benchmarks run rlearly's step i there, so
    both engines see the same machine load)."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            dt, i = time.perf_counter() - self.t, state.global_step - 1
            if i >= warmup:
                times.append(dt)
            after(i)

    return StepTimer()
