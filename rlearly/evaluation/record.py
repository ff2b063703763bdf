"""One record format for an evaluation: what a study's evaluation node and `rlearly eval` write, in the same JSON.

A record is evaluate_passk's result (pass@k with CIs, the checkpoint and task ids, the sampling protocol, rates)
with the checkpoint's general capability (`general`, and per item in `general_items`), its lineage (`method`,
`parent_tokens`, `seed`: the branch's training seed; the sampling seed is `eval_seed`) and the protocol it was made
under (n, ks, eval_seed, max_problems, prompt mode, backend and task where not the defaults), which decides whether
a stored record counts for a plan. It lies in `eval/<checkpoint>/<name>.json`, `<name>` the task's
`result_name(split)` (the synthetic task's: the split alone, as in every study before tasks had names).
"""
from __future__ import annotations

import json
from pathlib import Path

from rlearly.errors import DataError
from rlearly.evaluation.evaluate import evaluate_passk
from rlearly.evaluation.general import general_capability
from rlearly.files import write_atomic
from rlearly.lm.checkpoint import load_checkpoint, load_config_of
from rlearly.lm.runtime import place


def evaluation_record(ckpt, task, split: str, *, n: int, ks, seed: int, store_root, prompt_mode: str,
                      max_problems: int | None, device: str = "auto", backend: str = "torch", dtype: str = "fp32",
                      shots: int = 2, protocol: dict, progress: bool = False) -> dict:
    """Sample what the store lacks, score pass@k, measure general capability (on the world of the checkpoint's
    config.yaml; a plain Hugging Face directory has none) and return the record."""
    res = evaluate_passk(ckpt, task, split, n, ks, seed, store_root, prompt_mode, max_problems=max_problems,
                         progress=progress, device=device, **({"backend": backend} if backend != "torch" else {}),
                         **({"dtype": dtype} if dtype != "fp32" else {}), **({"shots": shots} if shots != 2 else {}))
    model, tok, meta = load_checkpoint(ckpt)
    if (Path(ckpt) / "config.yaml").is_file():
        res["general"] = general_capability(place(model, device), tok, load_config_of(ckpt).world, items=True)
        res["general_items"] = res["general"].pop("items")
    res["method"] = meta.get("method", "pretrain")
    res["parent_tokens"] = meta.get("parent_tokens") or meta.get("tokens")
    res["seed"] = meta.get("seed")  # the branch's training seed (the tables' `seed`)
    res.update({k: v for k, v in protocol.items() if k != "task_id"})  # task_id: the result's own, checked
    return res


def write_record(path: str | Path, record: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(record, indent=2) + "\n")
    return path


def read_record(path: str | Path, redo: str = "") -> dict:
    """A record (or any finished node's JSON file); a corrupt one is an error naming it and `redo`, how to make it
    again."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DataError(f"{path} is corrupt (not valid JSON)" + (f"; {redo}" if redo else "")) from None
