"""General capabilities on real benchmarks through lm-evaluation-harness (docs/DESIGN.md §7, extra `[eval]`).

Owns the paper's protocol (docs/PAPER.md §4 "General capabilities") on an exported checkpoint (any rlearly
checkpoint is a Hugging Face Llama directory): lm-eval's Python API, `lm_eval.simple_evaluate`, with the
"hf" model, zero-shot, at most 1,000 examples per task, float32 weights, BOS prepended (every rlearly
document starts with it), on the six benchmarks and the metric the paper reads from each:

    lambada   lambada_openai  acc         hellaswag  hellaswag      acc_norm
    arc_e     arc_easy        acc_norm    arc_c      arc_challenge  acc_norm
    piqa      piqa            acc_norm    obqa       openbookqa     acc_norm

The result JSON holds each benchmark's score and standard error, the 6-benchmark average (the paper's
general-capability figure) and the 5-benchmark one without ARC-C (its parallel-averaging figure), the
exact arguments given to lm-eval, lm-eval's version, the checkpoint's id and lineage, and rlearly's
provenance. lm-eval downloads its datasets from the hub, which these machines cannot reach: here only
the argument mapping is tested, on a stand-in `lm_eval` module.
"""
from __future__ import annotations

import json
from pathlib import Path

from rlearly.errors import ConfigError, RlearlyError
from rlearly.extras import require

# our name -> (lm-eval task, metric the paper reports)
BENCHMARKS = {
    "lambada": ("lambada_openai", "acc"),
    "hellaswag": ("hellaswag", "acc_norm"),
    "arc_e": ("arc_easy", "acc_norm"),
    "arc_c": ("arc_challenge", "acc_norm"),
    "piqa": ("piqa", "acc_norm"),
    "obqa": ("openbookqa", "acc_norm"),
}
FIVE = ("lambada", "hellaswag", "arc_e", "piqa", "obqa")  # the parallel-averaging figure drops ARC-C


def harness_args(checkpoint: str | Path, benchmarks=tuple(BENCHMARKS), *, limit: int | None = 1000,
                 num_fewshot: int = 0, batch_size: int | str = 16, device: str = "cpu", dtype: str = "float32",
                 seed: int = 0) -> dict:
    """Keyword arguments for `lm_eval.simple_evaluate` (documented API) for our checkpoint and protocol."""
    unknown = [b for b in benchmarks if b not in BENCHMARKS]
    if unknown or not benchmarks:
        raise ConfigError(f"unknown benchmark {unknown[0] if unknown else '(none given)'!r}; known: "
                          f"{', '.join(BENCHMARKS)}")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit {limit} must be >= 1")
    path = str(Path(checkpoint).resolve())
    return dict(model="hf", model_args={"pretrained": path, "tokenizer": path, "dtype": dtype,
                                        "add_bos_token": True, "trust_remote_code": False},
                tasks=[BENCHMARKS[b][0] for b in benchmarks], num_fewshot=num_fewshot, batch_size=batch_size,
                device=device, limit=limit, log_samples=False, random_seed=seed, numpy_random_seed=seed,
                torch_random_seed=seed, fewshot_random_seed=seed)


def scores(results: dict, benchmarks=tuple(BENCHMARKS)) -> dict:
    """{benchmark: {task, metric, score, stderr}} and the averages, from simple_evaluate's result."""
    table = results.get("results") or {}
    out = {}
    for b in benchmarks:
        task, metric = BENCHMARKS[b]
        row = table.get(task)
        if row is None or f"{metric},none" not in row:
            raise RlearlyError(f"lm-eval returned no {metric} for {task}; it returned: {', '.join(table) or 'nothing'}")
        out[b] = {"task": task, "metric": metric, "score": float(row[f"{metric},none"]),
                  "stderr": _float(row.get(f"{metric}_stderr,none"))}
    avg = {}
    if set(BENCHMARKS) <= set(out):
        avg["average_6"] = sum(out[b]["score"] for b in BENCHMARKS) / len(BENCHMARKS)
    if set(FIVE) <= set(out):
        avg["average_5"] = sum(out[b]["score"] for b in FIVE) / len(FIVE)
    return {"benchmarks": out, **avg}


def run(checkpoint: str | Path, out: str | Path, benchmarks=tuple(BENCHMARKS), extra: dict | None = None,
        **kw) -> dict:
    """Run lm-eval on `checkpoint` and write the result JSON to `out`, with the fields of `extra` added (a study
    node's settings); returns what was written."""
    from rlearly.files import write_atomic
    from rlearly.lm.checkpoint import checkpoint_id, provenance, read_meta

    args = harness_args(checkpoint, benchmarks, **kw)  # bad arguments fail before anything is imported
    meta = read_meta(checkpoint)  # a missing or corrupt checkpoint fails here, naming its file
    lm_eval = require("lm_eval", "eval", "lm-eval benchmarks")
    results = lm_eval.simple_evaluate(**args)
    if results is None:  # simple_evaluate returns None on non-zero ranks of a distributed run
        raise RlearlyError("lm-eval returned no results (a distributed run's non-zero rank?)")
    meta.pop("files", None)
    record = {**scores(results, benchmarks), "checkpoint": str(Path(checkpoint).resolve()),
              "checkpoint_id": checkpoint_id(checkpoint), "lineage": meta, "harness": {
                  "lm_eval_version": getattr(lm_eval, "__version__", None), "arguments": args,
                  "versions": results.get("versions"), "n_samples": results.get("n-samples")},
              "provenance": provenance(), **(extra or {})}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, json.dumps(record, indent=2, default=str) + "\n")
    return record


def _float(x):
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):  # lm-eval writes "N/A" when it has no stderr
        return None
