"""The `rlearly` command line. Errors print one line naming the problem and exit non-zero (--debug: traceback).

    rlearly config  [--config F] [--preset P] [key=value ...]     print the resolved config
    rlearly pretrain [--config F] [--preset P] [--out DIR] [key=value ...]
    rlearly info CHECKPOINT                                       lineage and shape of a checkpoint
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rlearly.errors import RlearlyError


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config file")
    p.add_argument("--preset", help="size preset: tiny, small, medium, large")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. pretrain.lr=1e-3")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="rlearly", description=__doc__.splitlines()[0])
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = ap.add_subparsers(dest="cmd", required=True)
    _config_args(sub.add_parser("config", help="print the resolved config as YAML"))
    p = sub.add_parser("pretrain", help="pretrain from scratch with checkpoints on a token schedule")
    _config_args(p)
    p.add_argument("--out", help="run directory (default runs/pretrain/<config hash>)")
    p.add_argument("--no-progress", action="store_true")
    p = sub.add_parser("info", help="show a checkpoint's lineage and model shape")
    p.add_argument("checkpoint")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except RlearlyError as e:
        if args.debug:
            raise
        print(f"rlearly: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rlearly: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


def _dispatch(args) -> int:
    from rlearly.config import load_config

    if args.cmd == "config":
        print(load_config(args.config, args.overrides, args.preset).to_yaml(), end="")
    elif args.cmd == "pretrain":
        from rlearly.train import pretrain

        cfg = load_config(args.config, args.overrides, args.preset)
        out = Path(args.out or f"runs/pretrain/{cfg.hash()}")
        pretrain.run(cfg, out, show_progress=not args.no_progress)
        ckpts = pretrain.list_checkpoints(out)
        print(f"done: {out} ({len(ckpts)} checkpoints: {', '.join(p.name for p in ckpts)})")
    elif args.cmd == "info":
        from rlearly.checkpoint import load_checkpoint

        model, tok, meta = load_checkpoint(args.checkpoint)
        meta.pop("files", None)
        print(json.dumps({"params": model.num_params(), "vocab": tok.vocab_size, **meta}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
