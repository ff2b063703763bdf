"""The default study's wall time by stage, read from what `rlearly study run` recorded: timings.jsonl
(one row per node run: key, kind, arm, seconds, threads, finished) and the node directories' own logs.

Stages: pretraining (per pretraining run), each post-training recipe (rl, sft, sft_gold, sft_rl,
parallel), evaluation (per split), and the notebooks (`rlearly study report` writes their seconds to
papermill_runs/<study>/timings.jsonl). Shares are of the node-seconds (the sum of node and notebook
times); the wall time is the nodes' first start to last finish, and node-seconds / wall is the
parallelism `--jobs` reached. Inside the nodes, where the run's own logs allow:
  pretraining  training steps (metrics.jsonl `elapsed_s`, which excludes the held-out/greedy evaluations)
               vs the rest of the node (evaluations at checkpoints, tokenizer, start-up, final save);
  branches     recipe steps vs the quick validation pass@k every `branch.eval_every` steps, estimated
               from the per-step `elapsed_s` increments (an evaluation step's increment minus the median
               increment of the steps without one); GRPO steps: sampling the rollouts vs the updates
               (metrics.jsonl `rollout_s`, `update_s`).
What the logs do not hold (sampling vs scoring inside an evaluation node, HTML rendering) is listed as
missing.

    python benchmarks/bench_study.py [--study runs/default] [--notebooks papermill_runs/default[/timings.jsonl]]
                                     [--out benchmarks/results/bench_study.json]
"""
from __future__ import annotations

import json
import re
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

BRANCH_KEY = re.compile(r"branch (\S+) (\S+) s(\d+) \[(\S+)\]")


def read_rows(path: Path) -> tuple[list[dict], int]:
    """timings.jsonl rows, the last one per node key (a node run again after a change is counted once);
    also how many earlier duplicates were dropped."""
    rows = {}
    n = 0
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            rows[r["key"]] = r
            n += 1
    return list(rows.values()), n - len(rows)


def stage_of(row: dict) -> str:
    kind, key = row["kind"], row["key"]
    if kind == "branch":
        m = BRANCH_KEY.match(key)
        return f"recipe {m.group(1) if m else key.split()[1]}"
    if kind == "eval":
        split = key.rsplit(" ", 1)[-1]
        on = "base checkpoints" if " pretrain__" in key else "branches"
        return f"evaluation {split} ({on})" if split != "train" else "evaluation train (readiness)"
    return kind if kind != "pretrain" else "pretraining"


def _epoch(ts: str) -> float:
    return time.mktime(time.strptime(ts, "%Y-%m-%dT%H:%M:%S"))


def _metrics(path: Path) -> list[dict]:
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()] if path.is_file() else []


def pretrain_inside(root: Path) -> dict:
    """Per pretraining run: seconds in training steps (its own elapsed_s) and tokens/s."""
    out = {}
    for d in sorted((root / "pretrain").glob("*/")):
        meta = d / "meta.json"
        if meta.is_file():
            m = json.loads(meta.read_text())
            out[d.name] = dict(train_steps_s=m.get("elapsed_s"), tokens=m.get("tokens"),
                               tok_per_s=(m["tokens"] / m["elapsed_s"]) if m.get("elapsed_s") else None)
    return out


def branch_inside(root: Path) -> dict:
    """Per method: recipe-step seconds and estimated quick-validation seconds, summed over its branches."""
    agg = defaultdict(lambda: dict(branches=0, elapsed_s=0.0, validation_s=0.0, steps=0, rollout_s=0.0, update_s=0.0))
    for meta in sorted((root / "branch").glob("*/*/*/meta.json")):
        rows = _metrics(meta.parent / "metrics.jsonl")
        if not rows:
            continue
        method = meta.parent.parent.parent.name
        inc = [(r, r["elapsed_s"] - (rows[i - 1]["elapsed_s"] if i else 0.0)) for i, r in enumerate(rows)]
        with_val = [d for r, d in inc if any(k.startswith("val_") or k.startswith("pass@") for k in r)]
        plain = [d for r, d in inc if not any(k.startswith("val_") or k.startswith("pass@") for k in r)]
        base = statistics.median(plain) if plain else 0.0
        a = agg[method]
        a["branches"] += 1
        a["steps"] += len(rows)
        a["elapsed_s"] += rows[-1]["elapsed_s"]
        a["validation_s"] += sum(max(0.0, d - base) for d in with_val)
        for k in ("rollout_s", "update_s"):  # GRPO steps log their sampling and update seconds
            a[k] += sum(r.get(k, 0.0) for r in rows)
    return dict(agg)


def report(result: dict, rows: list[dict]) -> None:
    """Print the stage tables of `result`; rows are the timings rows it was made from."""
    print(f"study {result['study']}: {result['nodes']} nodes, {result['node_seconds']:,.0f} node-seconds in "
          f"{result['wall_seconds']:,.0f} s wall ({result['parallelism']:.2f} nodes at a time on average), "
          f"{result['notebook_seconds']:,.0f} s of notebooks, torch threads per node "
          f"{result['threads_per_node']}" + (f"; {result['duplicate_rows_dropped']} earlier duplicate rows ignored"
             if result["duplicate_rows_dropped"] else ""))
    print(benchlib.table([dict(stage=k, **v) for k, v in result["groups"].items()]
                         + [dict(stage="notebooks/reports", nodes=None, node_s=None, share=None)] * (not any(
                             "notebook" in k for k in result["groups"])),
                         [("stage", "stage", ""), ("nodes", "nodes", "d"), ("node_s", "node-seconds", ",.0f"),
                          ("share", "share", ".1%")]))
    print()
    print(benchlib.table([dict(stage=k, **v) for k, v in result["stages"].items()],
                         [("stage", "stage", ""), ("nodes", "nodes", "d"), ("node_s", "node-seconds", ",.0f"),
                          ("share", "share", ".1%")]))
    pre, br = result["inside"]["pretraining"], result["inside"]["branches"]
    pre_node = {r["key"].split()[1]: r["seconds"] for r in rows if r["kind"] == "pretrain"}
    if pre:
        print("\ninside pretraining (training steps vs evaluations at checkpoints, tokenizer, saving):")
        print(benchlib.table(
            [dict(run=k, node=pre_node.get(k), steps=v["train_steps_s"], tps=v["tok_per_s"],
                  rest=(pre_node[k] - v["train_steps_s"]) if k in pre_node and v["train_steps_s"] else None)
             for k, v in pre.items()],
            [("run", "run", ""), ("node", "node s", ",.0f"), ("steps", "training steps s", ",.0f"),
             ("rest", "rest s", ",.0f"), ("tps", "train tok/s", ",.0f")]))
    if br:
        method_node = defaultdict(float)
        for r in rows:
            if r["kind"] == "branch":
                method_node[stage_of(r).split()[-1]] += r["seconds"]
        print("\ninside branches (quick validation estimated from per-step elapsed times):")
        print(benchlib.table(
            [dict(method=k, n=v["branches"], node=method_node.get(k), steps=v["elapsed_s"] - v["validation_s"],
                  val=v["validation_s"], share=v["validation_s"] / v["elapsed_s"] if v["elapsed_s"] else None)
             for k, v in sorted(br.items())],
            [("method", "method", ""), ("n", "branches", "d"), ("node", "node s", ",.0f"),
             ("steps", "recipe steps s", ",.0f"), ("val", "validation s", ",.0f"), ("share", "validation share", ".1%")]))
        rl = [dict(method=k, roll=v["rollout_s"], upd=v["update_s"], share=v["rollout_s"] / (v["rollout_s"] + v["update_s"]))
              for k, v in sorted(br.items()) if v["rollout_s"] + v["update_s"] > 0]
        if rl:
            print("\ninside GRPO steps (logged per step: sampling and scoring the rollouts vs the updates):")
            print(benchlib.table(rl, [("method", "method", ""), ("roll", "rollouts s", ",.0f"),
                                      ("upd", "updates s", ",.0f"), ("share", "rollout share", ".1%")]))
    print("\nnot in the logs:")
    for m in result["missing"]:
        print("  - " + m)


def main(argv=None) -> dict:
    ap = benchlib.parser("bench_study", __doc__)
    ap.add_argument("--study", type=Path, default=benchlib.ROOT / "runs" / "default",
                    help="study root written by `rlearly study run` (holds timings.jsonl)")
    ap.add_argument("--notebooks", type=Path, default=None,
                    help="executed notebooks of `rlearly study report`, or their timings.jsonl (default "
                         "papermill_runs/<study folder name>)")
    args = ap.parse_args(argv)
    nb = args.notebooks or benchlib.ROOT / "papermill_runs" / args.study.name
    nb_file = nb if nb.is_file() else nb / "timings.jsonl"
    if args.notebooks is not None and not nb_file.is_file():
        sys.exit(f"bench_study: no notebook timings at {args.notebooks} (a folder holding timings.jsonl, or that file)")
    f = args.study / "timings.jsonl"
    if not f.is_file():
        print(f"no {f}: run the study first (make report, or rlearly study run studies/default.yaml)")
        return {}
    rows, dropped = read_rows(f)
    # `rlearly study report` times the notebooks it executes (those up to date are skipped)
    nb_rows = read_rows(nb_file)[0] if nb_file.is_file() else []
    stages = defaultdict(lambda: dict(nodes=0, node_s=0.0))
    for r in rows + nb_rows:
        s = stages[stage_of(r)]
        s["nodes"] += 1
        s["node_s"] += r["seconds"]
    nodes_s, notebooks_s = sum(r["seconds"] for r in rows), sum(r["seconds"] for r in nb_rows)
    node_s = nodes_s + notebooks_s  # the shares' total: nodes and notebooks
    starts = [_epoch(r["finished"]) - r["seconds"] for r in rows]
    wall = max(_epoch(r["finished"]) for r in rows) - min(starts)
    groups = defaultdict(lambda: dict(nodes=0, node_s=0.0))
    for name, s in stages.items():
        s["share"] = s["node_s"] / node_s
        g = groups[name.split()[0]]  # pretraining / recipe / evaluation / ...
        g["nodes"] += s["nodes"]
        g["node_s"] += s["node_s"]
    for g in groups.values():
        g["share"] = g["node_s"] / node_s
    kinds = {r["kind"] for r in rows + nb_rows}
    missing = []
    if "notebook" not in kinds:
        missing.append(f"notebooks: no {nb_file} (run `rlearly study report`; notebooks already up to date are "
                       "skipped and not timed)")
    missing.append("HTML rendering (nbconvert) and the index page after the notebooks are not timed")
    missing.append("evaluation nodes: sampling vs pass@k/CI computation vs general-capability NLL are one "
                   "number; the eval job would need to log each phase's seconds (e.g. in eval/<ckpt>/<split>.json)")
    pre, br = pretrain_inside(args.study), branch_inside(args.study)
    result = dict(benchmark="study", study=str(args.study), machine=benchlib.machine(),
                  nodes=len(rows), duplicate_rows_dropped=dropped, node_seconds=nodes_s,
                  notebook_seconds=notebooks_s, wall_seconds=wall,
                  parallelism=nodes_s / wall if wall > 0 else None,
                  threads_per_node=sorted({r.get("threads") for r in rows}, key=str),
                  groups=dict(sorted(groups.items(), key=lambda kv: -kv[1]["node_s"])),
                  stages=dict(sorted(stages.items(), key=lambda kv: -kv[1]["node_s"])),
                  inside=dict(pretraining=pre, branches=br), missing=missing)

    report(result, rows)
    benchlib.write_results(args.out, result)
    return result


if __name__ == "__main__":
    main()
