"""How long a study will take, before its first node runs.

Each node's work is counted from its config alone, times N, the model's matmul parameters (FLOPs are about 2·N
per token sampled and 6·N per token trained): a pretraining run's tokens, a branch's optimizer steps (at most:
a plateau may stop it earlier), an evaluation's problems × samples. A rate per kind of node (per recipe for
branches) turns work into seconds at one torch thread; the rates were measured from a finished study on a
reference machine (`studies/rates.json`: `python -m rlearly.study.estimate calibrate SPEC ROOT` writes it) and are
scaled by how fast this machine multiplies fp32 matrices against the reference. A recipe the rates do not know
takes the mean branch rate. The estimate is the nodes' seconds shared among the CPUs the study uses; after the
first nodes finish, the runner's pace line (measured, not modelled) takes over.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from rlearly.config import Config
from rlearly.files import REPO, write_atomic

RATES = REPO / "studies" / "rates.json"


def planned_matmul_params(cfg: Config) -> int:
    """N: the weights every token multiplies (attention and MLP projections, the LM head), from the config, before
    any weights exist (study.tables.matmul_params reads the same N from a written checkpoint's header)."""
    m = cfg.model
    per_layer = m.n_embd * m.head_dim * (2 * m.n_head + 2 * m.n_kv_head) + 3 * m.n_embd * m.ffn_hidden
    return m.n_layer * per_layer + m.n_embd * cfg.data.vocab_size


def matmul_gflops(seconds: float = 0.3, size: int = 512) -> float:
    """This machine's fp32 matmul rate at one torch thread (GFLOP/s, the median of repeated size² products)."""
    import torch

    from rlearly.lm.runtime import matmul_rate

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return matmul_rate("cpu", "fp32", size, seconds) / 1e9
    finally:
        torch.set_num_threads(threads)


def load_rates(path: Path = RATES) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def estimate(todo: list, cpus: int, rates: dict | None = None, gflops: float | None = None) -> dict:
    """{"seconds": the study's wall time, "node_seconds", "speed": this machine against the reference, "unknown":
    the rate keys without a rate} for the planned nodes `todo` (their `rate` and `cost`), run on `cpus` CPUs."""
    rates = rates if rates is not None else load_rates()
    if not rates:
        return {"seconds": None, "node_seconds": None, "speed": None, "unknown": sorted({n.kind for n in todo})}
    speed = (gflops or matmul_gflops()) / rates["gflops"]
    per, fixed = rates["seconds_per_unit"], rates.get("seconds_per_node", {})
    branches = [k for k in per if k.startswith("branch ")]
    total, unknown = 0.0, set()
    for node in todo:
        key = node.rate
        if key not in per and key.startswith("branch ") and branches:  # a recipe not measured: the mean branch
            total += statistics.mean(fixed.get(k, 0.0) + node.cost * per[k] / speed for k in branches)
        elif key in per:
            total += fixed.get(key, 0.0) + node.cost * per[key] / speed
        else:
            unknown.add(key)
    return {"seconds": total / max(1, cpus), "node_seconds": total, "speed": speed, "unknown": sorted(unknown)}


def _fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """(seconds per node, seconds per unit), both ≥ 0, by least squares on the relative error over (units,
    seconds): a 2-second node counts as much as a 2-hour one."""
    import numpy as np

    u, t = np.array(points, dtype=float).T
    t = np.maximum(t, 1e-3)
    if len(set(u)) > 1:
        (fixed, slope), *_ = np.linalg.lstsq(np.stack([1 / t, u / t], 1), np.ones_like(t), rcond=None)
        if slope >= 0 and fixed >= 0:
            return float(fixed), float(slope)
    ratio = float(np.median(t / u))  # one size only, or a fit below 0: the median seconds per unit
    return 0.0, ratio


def calibrate(studies: list[tuple[list, str | Path]], names: list[str], out: Path = RATES) -> dict:
    """Rates from finished studies: for each rate key, seconds = a fixed part per node + a part per work unit, by
    least squares over the nodes of every (planned nodes, root) in `studies` that ran at one thread (their
    timings.jsonl), with this machine's matmul rate and CPU: what `estimate` scales. For the shipped studies:
    `estimate.calibrate([(study.plan(s, root), root) for s, root in ...], names)`."""
    from rlearly.machine import cpu_model

    points: dict[str, list[tuple[float, float]]] = {}
    for nodes, root in studies:
        by_key = {n.key: n for n in nodes}
        for line in (Path(root) / "timings.jsonl").read_text().splitlines():
            row = json.loads(line)
            node = by_key.get(row["key"])
            if node is not None and row.get("threads", 1) == 1 and node.cost:
                points.setdefault(node.rate, []).append((node.cost, row["seconds"]))
    fits = {k: _fit(v) for k, v in sorted(points.items())}
    rates = {"cpu": cpu_model(), "gflops": round(matmul_gflops(1.0), 2), "studies": names,
             "seconds_per_node": {k: round(a, 3) for k, (a, _) in fits.items()},
             "seconds_per_unit": {k: b for k, (_, b) in fits.items()},
             "nodes": {k: len(v) for k, v in sorted(points.items())}}
    write_atomic(out, json.dumps(rates, indent=1) + "\n")
    return rates
