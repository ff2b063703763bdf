"""The `rlearly` command line. Errors print one line naming the problem and exit non-zero (--debug: traceback).

    rlearly config  [--config F] [--preset P] [key=value ...]     print the resolved config (--fields: every key)
    rlearly pretrain [--config F] [--preset P] [--out DIR] [key=value ...]
    rlearly branch CHECKPOINT --method M [--out DIR] [key=value ...]   post-train from a checkpoint
    rlearly study run|status|claims|report|power SPEC [--root DIR] [--jobs N] [--seed N]   a whole study
                                         [--reports DIR]                   ... and its reports
                                         [--executor submitit --cluster slurm --job slurm_partition=P ...]
    rlearly eval CHECKPOINT [--split test --n 32 --k 1,8,32]      pass@k table + general capability
    rlearly info CHECKPOINT                                       lineage and shape of a checkpoint
    rlearly seal SPEC [SPEC ...] [--size N]                       the sealed split: test-like, unseen by their corpora
    rlearly hard-level SPEC [--root DIR]                        the hard split's difficulty, chosen on dev_hard
    rlearly lm-eval CHECKPOINT [--benchmarks lambada,...] [--limit 1000]   the paper's six benchmarks ([eval])
    rlearly export nanotron-config [--config F | --study S] --out DIR [key=value ...]   nanotron's training YAML
    rlearly convert nanotron SRC OUT [--tokenizer DIR]            a nanotron checkpoint -> an rlearly checkpoint
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from pathlib import Path

from rlearly.errors import RlearlyError
from rlearly.train import ALIASES, RECIPES

_EXAMPLES = "usage by command:\n" + "\n".join(__doc__.splitlines()[2:]).rstrip() + "\n"


class _Help(argparse.HelpFormatter):
    """Every option's default in its help, unless the help already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default is None or action.default is False or \
                action.default == argparse.SUPPRESS or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


class _Parser(argparse.ArgumentParser):
    """argparse's parser with one-line errors: the problem and where the help is (argparse prints the usage too)."""

    def error(self, message):
        self.exit(2, f"rlearly: error: {message} (see {self.prog} --help)\n")


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config file")
    p.add_argument("--preset", help="size preset: tiny, small, medium, large")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. pretrain.lr=1e-3")


def build_parser() -> argparse.ArgumentParser:
    from rlearly import __version__

    ap = _Parser(prog="rlearly", description=__doc__.splitlines()[0], epilog=_EXAMPLES,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"rlearly {__version__}")
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = ap.add_subparsers(dest="cmd", required=True,  # every command's parser shows its defaults
                            parser_class=functools.partial(_Parser, formatter_class=_Help))
    p = sub.add_parser("config", help="print the resolved config as YAML, or every key with its meaning (--fields)")
    _config_args(p)
    p.add_argument("--fields", action="store_true", help="every config key: type, default, kind and help (Markdown; "
                   "docs/CONFIG.md)")
    p = sub.add_parser("pretrain", help="pretrain from scratch with checkpoints on a token schedule")
    _config_args(p)
    p.add_argument("--out", help="run directory (default runs/pretrain/<config hash>)")
    p.add_argument("--no-progress", action="store_true")
    p = sub.add_parser("branch", help=f"post-train a checkpoint: {', '.join(RECIPES)}")
    p.add_argument("checkpoint")
    p.add_argument("--method", required=True, help="; ".join(f"{r.name}: {r.help}" for r in RECIPES.values())
                   + f" (aliases: {', '.join(f'{a}={m}' for a, m in ALIASES.items())})")
    p.add_argument("--config", help="YAML config (default: the checkpoint's own config.yaml)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. rl.lr=1e-4 rl.steps=100")
    p.add_argument("--task", help="the task to train on (task.name): synthetic (the checkpoint's world), gsm8k, math, "
                   "openmath or gsm_symbolic (default: the config's, synthetic)")
    p.add_argument("--data", action="append", default=[], metavar="SPLIT=PATH",
                   help="a local data file of the task (task.files), repeatable: train=..., dev=... (validation)")
    p.add_argument("--out", help="branch directory (default <run>/branch/<method>/<checkpoint>/<config hash>)")
    p.add_argument("--no-progress", action="store_true")
    p = sub.add_parser("study", help="run a study spec (pretrain -> branches -> evaluations), show its status or its "
                       "claims' verdicts, or render its reports")
    p.add_argument("action", choices=["run", "status", "claims", "report", "power"])
    p.add_argument("spec", help="study YAML, e.g. studies/tiny.yaml")
    p.add_argument("--root", help="study directory (default runs/<study name>)")
    p.add_argument("--jobs", type=int, default=0, help="run: independent nodes at a time, in worker processes "
                   "sharing the CPUs (default 0: one per CPU this process may use)")
    p.add_argument("--threads", type=int, default=0, help="run: torch threads per node (default 0: the usable "
                   "CPUs / jobs; a node running alone gets the CPUs other processes leave free)")
    p.add_argument("--seed", type=int, default=0, help="replicate the study under seeds shifted by this much "
                   "(pretraining, branches, evaluation; same world), as <name>-seed<N> (default 0: as written)")
    p.add_argument("--executor", choices=["pool", "submitit"], default="pool", help="run: where nodes run: local "
                   "worker processes, or submitit jobs (Slurm; --cluster local runs the same path here) (default pool)")
    p.add_argument("--cluster", choices=["auto", "slurm", "local"], default="auto", help="run --executor submitit: "
                   "submitit's cluster (default auto: Slurm where sbatch is found)")
    p.add_argument("--job", action="append", default=[], metavar="KEY=VALUE", help="run --executor submitit: a "
                   "job setting, repeatable (e.g. --job slurm_partition=gpu --job gpus_per_node=1 --job timeout_min=240)")
    p.add_argument("--reports", default="reports", help="report: folder for <study name>/*.html and index.html "
                   "(default reports)")
    p.add_argument("--sims", type=int, default=1000, help="power: simulated studies per claim part and scenario")
    p = sub.add_parser("seal", help="make the sealed split of the studies' world: test-like problems none of their "
                       "pretraining corpora tell (rlearly.data.sealed)")
    p.add_argument("specs", nargs="+", help="the study specs whose pretraining runs the split must be unseen by")
    p.add_argument("--size", type=int, help="problems (default: the test split's size)")
    p = sub.add_parser("hard-level", help="choose the hard split's difficulty on dev_hard: the operation count where "
                       "the study's main base reaches pass@k_max in [0.1, 0.5] (rlearly.evaluation.hard_level)")
    p.add_argument("spec", help="the study spec whose main run's last pretraining checkpoint is measured")
    p.add_argument("--root", help="the study's folder (default runs/<study name>)")
    p = sub.add_parser("info", help="show a checkpoint's lineage and model shape")
    p.add_argument("checkpoint")
    p = sub.add_parser("eval", help="pass@k of a checkpoint (samples stored once, reused) + general capability")
    p.add_argument("checkpoint")
    p.add_argument("overrides", nargs="*", help="runtime overrides, e.g. runtime.threads=1 runtime.device=cpu")
    p.add_argument("--split", default="test", help="task split (synthetic: train, dev, test, hard)")
    p.add_argument("--n", type=int, default=32, help="samples per problem")
    p.add_argument("--k", default="1,8,32", help="comma-separated k values, each <= n")
    p.add_argument("--task", help="synthetic (the checkpoint's world; the default), gsm8k, math, openmath or "
                   "gsm_symbolic")
    p.add_argument("--data", action="append", metavar="[SPLIT=]FILE",
                   help="local .jsonl/.json/.parquet file of a split (gsm8k, math; default split --split); "
                        "repeat for the train split that few-shot exemplars come from")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--store", default="runs/samples", help="sample store root")
    p.add_argument("--prompt-mode", default="auto", help="auto (base few-shot, branch zero-shot), few-shot, zero-shot")
    p.add_argument("--max-problems", type=int, help="only the first N problems of the split")
    p.add_argument("--backend", default="torch", help="torch or vllm")
    p.add_argument("--device", default="auto", help="where the torch backend samples: auto (a GPU where torch sees "
                   "one), cpu, cuda, cuda:<i> (default auto; also runtime.device=...)")
    p.add_argument("--out", help="folder for <split>.json, as a study writes it (default "
                   "<checkpoint>/../eval/<checkpoint name>)")
    p.add_argument("--show", type=int, default=0, metavar="N",
                   help="also print N problems with the first sample of each, marked right or wrong (default 0)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads (0: torch's default); 1 is far faster on a machine shared with training")
    p.add_argument("--no-progress", action="store_true")
    p = sub.add_parser("lm-eval", help="LAMBADA, HellaSwag, ARC-E/C, PIQA, OBQA through lm-evaluation-harness ([eval])")
    p.add_argument("checkpoint")
    p.add_argument("--benchmarks", default="lambada,hellaswag,arc_e,arc_c,piqa,obqa", help="comma-separated subset")
    p.add_argument("--limit", type=int, default=1000, help="examples per benchmark (paper: 1000; 0 = all)")
    p.add_argument("--batch-size", default="16", help="an integer or 'auto'")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:0, ...")
    p.add_argument("--dtype", default="float32", help="model dtype")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--out", help="result JSON (default <checkpoint>/../eval/<checkpoint name>/lm-eval.json)")
    p = sub.add_parser("export", help="write another engine's config from ours: nanotron-config")
    p.add_argument("what", choices=["nanotron-config"])
    _config_args(p)
    p.add_argument("--study", help="a study spec whose base config to export (e.g. studies/paper-1b.yaml)")
    p.add_argument("--out", required=True, help="folder for nanotron.yaml, rlearly.yaml, tokenizer/, data/")
    p.add_argument("--docs", type=int, default=100_000, help="documents of our mixture written to data/train.jsonl "
                   "(unless the corpus is one hub dataset)")
    p.add_argument("--tokenizer", help="an existing tokenizer folder instead of training one")
    p.add_argument("--checkpoints-path", help="where nanotron saves (default <out>/checkpoints)")
    p.add_argument("--dp", type=int, default=1, help="data-parallel replicas")
    p.add_argument("--micro-batch-size", type=int,
                   help="sequences per replica per micro-step (default: no gradient accumulation)")
    p.add_argument("--checkpoint-interval", type=int, help="nanotron's save interval in steps (default: gcd of ours)")
    p.add_argument("--nanoset", action="store_true", help="pre-tokenize the whole run's rows (as rlearly's trainer packs "
                   "them) into data/nanoset/ for nanotron's Nanoset, instead of a JSONL sample of --docs documents")
    p.add_argument("--check", action="store_true", help="re-read the written YAML with nanotron's own loader ([scale])")
    p = sub.add_parser("convert", help="convert another engine's checkpoint into an rlearly checkpoint: nanotron")
    p.add_argument("format", choices=["nanotron"])
    p.add_argument("src", help="nanotron checkpoint step folder (or its checkpoints folder, for latest.txt)")
    p.add_argument("out", help="rlearly checkpoint folder to write")
    p.add_argument("--tokenizer", help="folder with rlearly's tokenizer.json (default: the one its config.yaml names)")
    p.add_argument("--config", help="rlearly config to save beside it (default: rlearly.yaml next to the tokenizer)")
    p.add_argument("--rope", choices=["auto", "interleaved", "half-split"], default="auto",
                   help="rotary layout of the checkpoint (auto: model_config.json's rope_interleaved)")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    # overrides may come after options (`--out D rl.lr=1e-4`): argparse leaves those unparsed
    args, extra = ap.parse_known_args(argv)
    stray = [e for e in extra if e.startswith("-") or "=" not in e or not hasattr(args, "overrides")]
    if stray:
        ap.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    try:
        return _dispatch(args)
    except RlearlyError as e:
        if args.debug:
            raise
        print(f"rlearly: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a failed read or write the code did not name itself (disk full, permissions)
        if args.debug:
            raise
        where = f"{e.filename}: " if e.filename else ""
        reason = os.strerror(e.errno).lower() if e.errno else str(e)
        print(f"rlearly: error: {where}{reason}".replace("\n", " "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rlearly: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


def _dispatch(args) -> int:
    from rlearly.config import load_config

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and args.cmd not in ("pretrain", "branch"):  # under torchrun
        raise RlearlyError(f"`rlearly {args.cmd}` runs in one process; torchrun runs `rlearly pretrain` and "
                           "`rlearly branch` data-parallel")
    if args.cmd == "config" and args.fields:
        from rlearly.config.tree import markdown_fields
        print(markdown_fields(), end="")
    elif args.cmd == "config":
        print(load_config(args.config, args.overrides, args.preset).to_yaml(), end="")
    elif args.cmd == "pretrain":
        cfg = load_config(args.config, args.overrides, args.preset)  # before importing torch: bad input fails fast
        from rlearly.train import pretrain

        out = Path(args.out or f"runs/pretrain/{cfg.hash()}")
        pretrain.run(cfg, out, show_progress=not args.no_progress)
        ckpts = pretrain.list_checkpoints(out)
        print(f"done: {out} ({len(ckpts)} checkpoints: {', '.join(p.name for p in ckpts)})")
    elif args.cmd == "info":
        from rlearly.lm.checkpoint import load_checkpoint

        model, tok, meta = load_checkpoint(args.checkpoint)
        meta.pop("files", None)
        print(json.dumps({"params": model.num_params(), "vocab": tok.vocab_size, **meta}, indent=2))
    elif args.cmd == "branch":
        _branch(args)
    elif args.cmd == "study":
        from rlearly import study

        spec = study.load_study(args.spec).replicate(args.seed)
        root = Path(args.root or f"runs/{spec.name}")
        if args.action == "run":
            if args.jobs < 0:
                raise RlearlyError(f"--jobs {args.jobs} must be >= 0 (0: one per usable CPU)")
            if args.threads < 0:
                raise RlearlyError(f"--threads {args.threads} must be >= 0 (0: the cores shared among the jobs)")
            import time
            t0 = time.perf_counter()
            if args.job and args.executor != "submitit":
                raise RlearlyError("--job sets submitit job settings; add --executor submitit")
            study.run(spec, root, jobs=args.jobs, threads=args.threads, executor=args.executor,
                      cluster=None if args.cluster == "auto" else args.cluster, params=_job_params(args.job))
            again = "".join(f" {o} {v}" for o, v in (("--root", args.root), ("--seed", args.seed or None)) if v)
            print(f"done: {root} in {study.clock(time.perf_counter() - t0)} (tables in {root / 'tables'}); "
                  f"next: rlearly study report {args.spec}{again}")
        elif args.action == "claims":  # the ten claims' verdicts from the finished study's tables, as text
            from rlearly.results import claims
            from rlearly.results.analysis import load_tables

            tables = load_tables(root)
            print(claims.claims_text(claims.claims(root, tables), tables))
        elif args.action == "report":
            from rlearly.results import report

            print(f"done: {report.report(spec, root, reports_dir=args.reports)['index']}")
        elif args.action == "power":  # every claim part simulated at this design (minutes); stored beside the specs
            from rlearly.results import power

            if args.sims < 100:
                raise RlearlyError(f"--sims {args.sims}: at least 100 simulated studies a scenario (1,000 for a table "
                                   "to commit)")
            out = power.store(spec, sims=args.sims, log=lambda line: print(line, file=sys.stderr, flush=True))
            print("\n".join(power.status_lines(spec)[1:]) + f"\nwrote {out}")
        else:
            from rlearly.results import power

            rows = study.status(spec, root)
            for key, done in rows:
                print(f"{'done' if done else 'todo'}  {key}")
            print(f"{sum(d for _, d in rows)}/{len(rows)} nodes done")
            print("\n".join(power.status_lines(spec)))
    elif args.cmd == "eval":
        _eval(args)
    elif args.cmd == "seal":
        _seal(args)
    elif args.cmd == "hard-level":
        _hard_level(args)
    elif args.cmd == "lm-eval":
        _lm_eval(args)
    elif args.cmd == "export":
        from rlearly.train import nanotron

        if args.study:
            if args.config:
                raise RlearlyError("give --config or --study, not both")
            from rlearly.config import _overrides_to_pairs
            from rlearly.study import load_study

            base = load_study(args.study).config
            cfg = load_config(overrides={**base, **dict(_overrides_to_pairs(args.overrides))}, preset=args.preset)
        else:
            cfg = load_config(args.config, args.overrides, args.preset)
        res = nanotron.export_config(cfg, args.out, docs=args.docs, tokenizer=args.tokenizer,
                                     checkpoints_path=args.checkpoints_path, dp=args.dp,
                                     micro_batch_size=args.micro_batch_size,
                                     checkpoint_interval=args.checkpoint_interval, nanoset=args.nanoset)
        if args.check:
            nanotron.check_config(res["config"])
        print(f"wrote {res['config']} (checkpoint every {res['checkpoint_interval']} steps; convert steps "
              f"{', '.join(map(str, res['checkpoint_steps']))} with `rlearly convert nanotron`)")
    elif args.cmd == "convert":
        from rlearly.train import nanotron

        rope = {"auto": None, "interleaved": True, "half-split": False}[args.rope]
        out = nanotron.convert_checkpoint(args.src, args.out, tokenizer=args.tokenizer, config=args.config,
                                          interleaved=rope)
        print(f"done: {out}")
    return 0


def _lm_eval(args) -> None:
    """`rlearly lm-eval`: arguments checked first, then the checkpoint, then lm-eval is imported."""
    from rlearly.evaluation import lmeval

    bench = tuple(b.strip() for b in args.benchmarks.split(",") if b.strip())
    batch = int(args.batch_size) if args.batch_size.isdigit() else args.batch_size
    ckpt = Path(args.checkpoint)
    out = Path(args.out) if args.out else ckpt.parent / "eval" / ckpt.name / "lm-eval.json"
    res = lmeval.run(ckpt, out, bench, limit=args.limit or None, batch_size=batch, device=args.device,
                     dtype=args.dtype, seed=args.seed)
    for name, r in res["benchmarks"].items():
        print(f"{name:>10}  {r['task']:<15} {r['metric']:<9} {r['score']:.4f}")
    for k in ("average_6", "average_5"):
        if k in res:
            print(f"{k:>10}  {res[k]:.4f}")
    print(f"wrote {out}")


def _job_params(items: list[str]) -> dict:
    """--job KEY=VALUE pairs -> submitit parameters (numbers as numbers)."""
    params = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise RlearlyError(f"--job {item!r}: expected KEY=VALUE (e.g. slurm_partition=gpu)")
        for cast in (int, float):
            try:
                value = cast(value)
                break
            except ValueError:
                pass
        params[key] = value
    return params


def _branch(args) -> None:
    """`rlearly branch`: the checkpoint's own config (world, model) with the recipe overrides on top.
    A bad override fails before torch is imported; then the method, then the parent's checksums."""
    from rlearly.config import _overrides_to_pairs, load_config

    ckpt = Path(args.checkpoint)
    _check_not_a_run(ckpt)
    if not (ckpt / "meta.json").is_file():
        from rlearly.lm.checkpoint import read_meta
        read_meta(ckpt)  # raises, naming what is missing: the directory or its meta.json
    task = {**({"task.name": args.task} if args.task else {}), **({"task.files": args.data} if args.data else {})}
    overrides = dict(_overrides_to_pairs(args.overrides)) | task
    cfg = load_config(args.config or ckpt / "config.yaml", overrides)  # no torch yet: a typo fails at once
    from rlearly.sampling import get_engine
    from rlearly.tasks import check_task_config, config_task, task_class
    from rlearly.train import RECIPES, method_name

    method = method_name(args.method)
    if not (ckpt / "config.json").is_file() or not (ckpt / "model.safetensors").is_file():
        raise RlearlyError(f"{ckpt} is not a checkpoint (it lacks config.json or model.safetensors)")
    check_task_config(cfg.task)
    get_engine(cfg.rl.backend, "rl.backend: ")
    recipe = RECIPES[method]
    sections = {s for r in (recipe, RECIPES.get(recipe.after)) if r for s in r.cls().sections.values()}
    for sec in sorted(sections):  # the splits it trains on: a held-out one (dev, test, hard) fails here
        task_class(cfg.task.name).check_training_split(getattr(cfg, sec).split, f"{sec}.split")
    if not task_class(cfg.task.name).from_world:  # a missing or malformed data file, or an unreachable hub, fails here
        t = config_task(cfg.task, cfg.world)
        for sec in sorted(sections):
            t.training_problems(getattr(cfg, sec).split)
        if cfg.branch.eval_every:
            t.problems(t.validation_split)
    from rlearly.lm.checkpoint import read_meta
    from rlearly.train import branch

    read_meta(ckpt)  # checksums: a corrupt parent fails here, naming the file
    out = Path(args.out or ckpt.parent / "branch" / method / ckpt.name / cfg.hash())
    branch.run(cfg, ckpt, out, method, show_progress=not args.no_progress)
    print(f"done: {out}")


def _seal(args) -> None:
    """`rlearly seal`: the sealed split for every pretraining config of the given studies (one world family)."""
    import dataclasses

    from rlearly.data import sealed
    from rlearly.files import write_atomic
    from rlearly.study import load_study

    configs = {}
    for path in args.specs:
        for arm in load_study(path).all_arms():
            cfg = dataclasses.replace(arm.base_config(), seed=0)
            configs.setdefault(cfg.hash(), cfg)
    from rlearly.evaluation import hard_level

    world = next(iter(configs.values())).world
    record = sealed.make(list(configs.values()), args.size, hard_ops=hard_level.chosen(world))
    out = sealed.record_path(next(iter(configs.values())).world)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, json.dumps(record, indent=1) + "\n")
    strata = ", ".join(f"{s} {v['dropped_share']:.0%}" for s, v in record["strata"].items())
    hard = (f"; sealed_hard {record['hard']['size']} problems of {record['hard']['ops']} operations, "
            f"{record['hard']['dropped_share']:.1%} dropped" if "hard" in record else
            "; no sealed_hard (`rlearly hard-level` has chosen no level for this world)")
    print(f"sealed {record['size']} problems; candidates dropped {record['dropped_share']:.1%} ({strata}){hard}; "
          f"wrote {out}")


def _hard_level(args) -> None:
    """`rlearly hard-level`: the main base's pass@k per operation count on dev_hard, and the level chosen."""
    from rlearly.evaluation import hard_level
    from rlearly.files import git_commit, write_atomic
    from rlearly.study import load_study, plan

    spec = load_study(args.spec)
    root = Path(args.root or f"runs/{spec.name}")
    runs = [n for n in plan(spec, root) if n.kind == "pretrain" and n.arm == "main"]
    if not runs or not runs[0].done:
        raise RlearlyError(f"{root}: the main pretraining run of {spec.name} is not finished; run the study first")
    ckpt = sorted(runs[0].path.glob("ckpt-*"))[-1]
    world, k = spec.base_config().world, max(spec.eval.ks)
    table = hard_level.measure(ckpt, world, spec.eval.n, k, root / "samples", spec.eval.base_prompt,
                               progress=True)
    level = hard_level.choose(table, k)
    print(table.round(3).to_string(index=False))
    out = hard_level.record_path(world)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, json.dumps({"ops": level, "target": hard_level.TARGET, "k": k, "study": spec.name,
                                  "checkpoint": str(ckpt), **table.attrs, "split": "dev_hard",
                                  "levels": table.to_dict("records"), "commit": git_commit()}, indent=1) + "\n")
    print(f"chosen: {level} operations" if level is not None else
          f"no level puts pass@{k} in {list(hard_level.TARGET)}: sealed_hard cannot be made for this world", end="")
    print(f"; wrote {out}")


def _check_not_a_run(ckpt: Path) -> None:
    """One line, before anything is made, when `ckpt` is a pretraining run's folder: its checkpoints are inside."""
    inside = sorted(p.name for p in ckpt.glob("ckpt-*") if (p / "config.json").is_file()) if ckpt.is_dir() else []
    if inside:
        raise RlearlyError(f"{ckpt} is a pretraining run, not a checkpoint: give one of its checkpoints, e.g. "
                           f"{ckpt / inside[-1]} ({len(inside)} in all: {', '.join(inside)})")


def _eval(args) -> None:
    """`rlearly eval`: the pass@k table and general capability, written as a study writes an evaluation
    (rlearly.evaluation.record) to <out>/<split>.json (<task>-<split>.json for a task other than the world's).
    Arguments, overrides, the task and a local dataset file are checked before torch is imported or anything sampled."""
    from rlearly.config import RuntimeConfig
    from rlearly.tasks import DEFAULT_TASK, get_task, task_class

    try:
        ks = [int(k) for k in args.k.split(",") if k.strip()]
    except ValueError:
        raise RlearlyError(f"--k {args.k!r} must be comma-separated integers, e.g. 1,8,32") from None
    if args.n < 1:
        raise RlearlyError(f"--n {args.n} must be >= 1")
    if args.max_problems is not None and args.max_problems < 1:
        raise RlearlyError(f"--max-problems {args.max_problems} must be >= 1 (leave it out for every problem)")
    bad = [k for k in ks if k > args.n]
    if bad:
        raise RlearlyError(f"--k {max(bad)} exceeds --n {args.n}: pass@k needs at least k samples per problem")
    runtime = _eval_runtime(args)
    if args.split in ("sealed", "sealed_hard"):
        raise RlearlyError("the sealed split is read only by the one frozen study recorded in reports/SEALED.json "
                           "(rlearly study run), never by rlearly eval")
    from rlearly.sampling import get_engine

    get_engine(args.backend, "--backend: ")  # an unknown engine fails before the checkpoint is read
    ckpt = Path(args.checkpoint)
    name = args.task or DEFAULT_TASK
    files = {}
    for d in args.data or []:
        split, _, f = d.partition("=") if "=" in d and not Path(d).exists() else (args.split, "", d)
        files[split] = f
    cls = task_class(name)  # an unknown task fails here, listing the known ones
    if cls.from_world and not files:
        task = name  # made from the checkpoint's world, once the checkpoint is read
    else:  # a malformed or empty file, a missing extra or an unreachable hub fails here
        task = get_task(name, **({"files": files} if files else {}))
        task.problems(args.split)
    from rlearly.evaluation import evaluate, record
    from rlearly.lm.runtime import resolve

    if runtime.threads > 0:
        import torch
        torch.set_num_threads(runtime.threads)
    resolve(RuntimeConfig(device=runtime.device))  # a bad device fails here, before any sampling
    protocol = dict(n=args.n, ks=ks, eval_seed=args.seed, max_problems=args.max_problems, prompt=args.prompt_mode,
                    **({"backend": args.backend} if args.backend != "torch" else {}),
                    **({} if cls.from_world and not files else {"task": name, "task_files": [f"{k}={v}" for k, v in
                                                                                            files.items()]}))
    res = record.evaluation_record(ckpt, task, args.split, n=args.n, ks=ks, seed=args.seed, store_root=args.store,
                                   prompt_mode=args.prompt_mode, max_problems=args.max_problems, device=runtime.device,
                                   backend=args.backend, protocol=protocol, progress=not args.no_progress)
    print(f"{ckpt.name} (id {res['checkpoint_id']}) · {res['task']}/{res['split']} · {res['n_problems']} "
          f"problems × n={res['n']} · {res['prompt_mode']} · T={res['temperature']} top-p={res['top_p']} "
          f"· seed {args.seed}")
    print(f"{'k':>5}  {'pass@k':>7}  95% CI")
    for r in res["passk"]:
        print(f"{r['k']:>5}  {r['pass_at_k']:>7.4f}  [{r['ci_low']:.4f}, {r['ci_high']:.4f}]")
    print(f"mean length {res['mean_tokens']:.1f} tokens · truncated {res['truncation_rate']:.1%} · "
          f"answer extracted {res['format_rate']:.1%}")
    if args.show > 0:
        _show(evaluate, task, res, args.store, args.show)
    if "general" in res:
        print("general: " + " · ".join(f"{k} {v:.4f}" for k, v in res["general"].items()))
    folder = Path(args.out) if args.out else ckpt.parent / "eval" / ckpt.name
    out = record.write_record(folder / f"{cls.result_name(args.split)}.json", res)
    print(f"wrote {out}")


def _eval_runtime(args):
    """`rlearly eval`'s runtime: --device and --threads, then dotted `runtime.*` overrides (as pretrain and branch
    take them); anything else is about what is sampled, which eval's own options set."""
    from rlearly.config import RuntimeConfig, _overrides_to_pairs, from_dict

    pairs = _overrides_to_pairs(args.overrides)
    other = [k for k, _ in pairs if not k.startswith("runtime.")]
    if other:
        raise RlearlyError(f"rlearly eval takes runtime.* overrides only, not {other[0]!r}: what is sampled is set "
                           "by its options (--n, --k, --split, --seed, --task, ...)")
    raw = {"device": args.device, "threads": args.threads, **{k.split(".", 1)[1]: v for k, v in pairs}}
    return from_dict(RuntimeConfig, raw, "runtime.")


def _show(evaluate, task, res: dict, store_root: str, n_show: int) -> None:
    """`eval --show N`: N problems of the evaluation, each with its first sample (✓ right, ✗ wrong)."""
    from rlearly.evaluation.store import SampleStore

    task = evaluate.resolve_task(task, res["checkpoint"])
    df = SampleStore(store_root).load(res["task_id"], res["checkpoint_id"], res["split"], seed=res["seed"])
    df = df[df["sample_index"] < res["n"]]
    by_id = {str(p.id): p for p in task.problems(res["split"])}
    for pid in list(dict.fromkeys(df["problem_id"]))[:n_show]:
        mine = df[df["problem_id"] == pid]
        first = mine.iloc[0]
        print(f"\n{pid} · gold {by_id[pid].answer} · solved {mine['correct'].sum()}/{len(mine)}\n  Q: "
              f"{by_id[pid].question.strip()}\n  {'✓' if first['correct'] else '✗'} {first['completion'].strip()}")


if __name__ == "__main__":
    sys.exit(main())
