"""One command for a machine with a GPU (`make gpu-check`): is rlearly right there, and how much faster is it?

1. the tests marked `gpu` (tests/test_gpu.py: every stage on cuda, the GPU's losses against the CPU's, bf16) and
   `vllm` (tests/test_vllm_engine.py: a real vLLM engine, its log-probs against the policy's);
2. the same work on the CPU and on the GPU of this machine, as ratios: a pretraining step and batched sampling of
   the small preset (the default study's model), and, where vLLM imports, vLLM's sampling on the GPU;
3. the tiny study end to end (every node kind, its notebooks and report) with runtime.device=cuda and rollouts
   from vLLM, beside the same study on the CPU (not reported): node-seconds per kind and their ratio. On a
   loaded 2-core machine each leg takes ≈ 7 minutes; on a GPU host's 16 cores, about one.

Everything lands in benchmarks/results/gpu_check.json and a table. Without a GPU it says so and exits 2;
`--dry-run` runs every step on the CPU instead (both legs), to check this script on a laptop.

    python benchmarks/gpu_check.py [--dry-run] [--skip-tests] [--skip-study] [--steps 20]
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

ROOT = benchlib.ROOT
WORK = ROOT / "runs" / "gpu-check"


def device_leg(dry_run: bool) -> tuple[str, str]:
    """(device, rollout backend) of the GPU leg: cuda with vLLM where it imports; the CPU in a dry run."""
    if dry_run:
        return "cpu", "torch"
    return "cuda", "vllm" if benchlib.have("vllm") else "torch"


def run_tests() -> dict:
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu or vllm", "tests/test_gpu.py",
                           "tests/test_vllm_engine.py"], cwd=ROOT, env=env, capture_output=True, text=True)
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or [""]
    return {"rc": proc.returncode, "seconds": round(time.perf_counter() - t, 1), "summary": tail[0]}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def micro(small, device: str, steps: int) -> dict:
    """Seconds per pretraining step and sampled tokens per second of the small preset (`small`: benchlib.build's
    (cfg, tok, model), built once for every leg) on `device`."""
    import copy

    from rlearly.sampling.torch_engine import generate
    from rlearly.train.common import make_adamw
    from rlearly.train.pretrain import train_step

    cfg, tok, model = small
    model = copy.deepcopy(model).to(device)  # every leg starts from the same weights
    pc = cfg.pretrain
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, tok.vocab_size, (pc.batch_size, pc.seq_len), generator=g).to(device)
    opt = make_adamw(model, pc.lr, pc.weight_decay)

    def step():
        train_step(model, opt, x, x, pc.lr, pc.grad_clip)
        _sync(device)
    pre = benchlib.stats(benchlib.timed(step, steps, warmup=3))
    prompts = [[tok.bos_id] + torch.randint(4, tok.vocab_size, (24,), generator=g).tolist() for _ in range(64)]

    def sample():
        generate(model, prompts, n=8, max_new_tokens=64, temperature=1.0, seed=0, pad_id=tok.pad_id)
        _sync(device)
    samp = benchlib.stats(benchlib.timed(sample, 3, warmup=1))
    return {"pretrain_step_s": pre["median_s"], "pretrain_tok_per_s": pc.tokens_per_step / pre["median_s"],
            "sample_s": samp["median_s"], "sample_tok_per_s": 64 * 8 * 64 / samp["median_s"]}


def vllm_sampling(small) -> dict | None:
    """Sampled tokens per second of vLLM on the GPU for the same small-preset model and prompts (None without
    vLLM)."""
    if not benchlib.have("vllm"):
        return None
    from rlearly.sampling import vllm_engine as vllm_backend

    cfg, tok, model = small
    engine = vllm_backend.from_torch(model, tok, **vllm_backend.engine_kwargs(cfg.rl))
    g = torch.Generator().manual_seed(0)
    prompts = [[tok.bos_id] + torch.randint(4, tok.vocab_size, (24,), generator=g).tolist() for _ in range(64)]
    s = benchlib.stats(benchlib.timed(lambda: vllm_backend.generate(engine, prompts, n=8, max_new_tokens=64,
                                                                     temperature=1.0, seed=0), 3, warmup=1))
    return {"sample_s": s["median_s"], "sample_tok_per_s": 64 * 8 * 64 / s["median_s"]}


def study_leg(name: str, device: str, backend: str, jobs: int, report: bool) -> dict:
    """The tiny study with this runtime device and rollout backend, `jobs` nodes at a time, run (and reported);
    node-seconds per kind."""
    spec = yaml.safe_load((ROOT / "studies" / "tiny.yaml").read_text())
    spec["name"] = f"gpu-check-{name}"
    spec["config"] = {**spec.get("config", {}), "runtime.device": device, "rl.backend": backend}
    if backend == "vllm":  # the engine shares the GPU with the policy it samples for
        spec["config"]["rl.vllm_memory"] = 0.3
    folder = WORK / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "study.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    rlearly = [sys.executable, "-m", "rlearly.cli", "study"]
    t = time.perf_counter()
    run = subprocess.run(rlearly + ["run", str(folder / "study.yaml"), "--root", str(folder / "run"), "--jobs",
                                    str(jobs)], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t
    out = {"device": device, "backend": backend, "rc": run.returncode, "wall_s": round(wall, 1)}
    if run.returncode != 0:
        out["error"] = (run.stderr.strip().splitlines() or [""])[-1]
        return out
    if report:
        rep = subprocess.run(rlearly + ["report", str(folder / "study.yaml"), "--root", str(folder / "run"),
                                        "--reports", str(folder / "reports")], cwd=ROOT, capture_output=True, text=True)
        out["report_rc"] = rep.returncode
    kinds: dict[str, float] = {}
    for line in (folder / "run" / "timings.jsonl").read_text().splitlines():
        row = json.loads(line)
        kinds[row["kind"]] = kinds.get(row["kind"], 0.0) + row["seconds"]
    out["node_s"] = {k: round(v, 1) for k, v in kinds.items()}
    return out


def main() -> int:
    ap = benchlib.parser("gpu_check", __doc__)
    ap.add_argument("--dry-run", action="store_true", help="no GPU: run both legs on the CPU (checks the script)")
    ap.add_argument("--skip-tests", action="store_true")
    ap.add_argument("--skip-study", action="store_true")
    ap.add_argument("--steps", type=int, default=20, help="timed pretraining steps per device")
    args = ap.parse_args()
    if not args.dry_run and not torch.cuda.is_available():
        print(f"gpu-check: torch {torch.__version__} sees no CUDA device (built for cuda {torch.version.cuda}); run it "
              "on a machine with a GPU, or with --dry-run to check this script on the CPU", file=sys.stderr)
        return 2
    device, backend = device_leg(args.dry_run)
    result = {"machine": benchlib.machine(), "dry_run": args.dry_run,
              "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    if not args.skip_tests:
        result["tests"] = run_tests()
        print(f"tests (gpu, vllm): rc {result['tests']['rc']} in {result['tests']['seconds']} s: "
              f"{result['tests']['summary']}")
    small = benchlib.build("small")  # the tokenizer is trained once, for every leg
    cpu, dev = micro(small, "cpu", args.steps), micro(small, device, args.steps)
    result["micro"] = {"cpu": cpu, device: dev, "ratio_cpu_over_device": {k: cpu[k] / dev[k] for k in cpu
                                                                            if k.endswith("_s")}}
    if not args.dry_run:
        result["micro"]["vllm"] = vllm_sampling(small)
    rows = [{"what": "pretrain step (small preset)", "cpu": cpu["pretrain_step_s"], "dev": dev["pretrain_step_s"]},
            {"what": "sample 64x8x64 tokens (torch)", "cpu": cpu["sample_s"], "dev": dev["sample_s"]}]
    if result["micro"].get("vllm"):
        rows.append({"what": "sample 64x8x64 tokens (vLLM)", "cpu": cpu["sample_s"],
                     "dev": result["micro"]["vllm"]["sample_s"]})
    if not args.skip_study:
        jobs = max(1, min(4, (os.cpu_count() or 2) // 4))  # CPU nodes share the cores; GPU nodes share the GPU
        legs = {"cpu": study_leg("cpu", "cpu", "torch", jobs, report=False),
                "device": study_leg("device", device, backend, jobs, report=True)}
        result["study"] = legs
        for kind in sorted(legs["cpu"].get("node_s", {})):
            if kind in legs["device"].get("node_s", {}):
                rows.append({"what": f"tiny study: {kind} node-s", "cpu": legs["cpu"]["node_s"][kind],
                             "dev": legs["device"]["node_s"][kind]})
        for leg in legs.values():
            if leg["rc"] or leg.get("report_rc"):
                print(f"study on {leg['device']} ({leg['backend']}): FAILED {leg.get('error', 'report')}")
    for r in rows:
        r["ratio"] = r["cpu"] / r["dev"] if r["dev"] else None
    print(benchlib.table(rows, [("what", "", "<34"), ("cpu", "cpu s", ">9.3f"), ("dev", f"{device} s", ">9.3f"),
                                ("ratio", "cpu / device", ">12.1f")]))
    benchlib.write_results(args.out, result)
    failed = result.get("tests", {}).get("rc", 0) not in (0, 5) or any(
        leg["rc"] or leg.get("report_rc") for leg in result.get("study", {}).values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
