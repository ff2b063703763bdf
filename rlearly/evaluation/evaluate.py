"""Evaluation (docs/DESIGN.md §5 "Evaluation protocol"): stored samples, pass@k, branch diagnostics, general capability.

Owns:
  heldout_nll, greedy_accuracy       the quick numbers pretraining logs at every checkpoint
  checkpoint_id, sample_key          the sample store's keys: a checkpoint's weights, a sample's random stream
  sample_problems                    draws exactly the (problem, sample index) pairs the store lacks
  evaluate_passk                     pass@k with bootstrap CIs, mean length, truncation and format rates
  compare_branch                     a branch against its start (passk.compare) + the start model's NLL of
                                     the branch's samples
  general_capability, general_delta  held-out general-text NLL and cloze probes, and branch − base
  readiness                          the base checkpoint's pass@k on the RL training prompts

A sample's random stream is keyed by (seed, sample_key(problem id, sample index)), so the same
(checkpoint, problem, sample index, seed) gives the same completion whatever else shares its batch.
Base checkpoints are evaluated few-shot, trained branches zero-shot; prompt_mode "auto" picks by meta.json.
A completion is cut at its first newline (a solution is one line; the sampler stops on newline tokens).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from rlearly.config import TaskConfig
from rlearly.data.math_world import extract_answer_flexible
from rlearly.errors import CheckpointError, DataError, RlearlyError
from rlearly.evaluation import passk
from rlearly.evaluation.general import continuation_logprobs
from rlearly.evaluation.store import PROMPT_MODES, SampleStore
from rlearly.files import progress as progress_bar
from rlearly.lm.checkpoint import META, checkpoint_id, load_checkpoint, load_config_of, read_meta
from rlearly.lm.model import LlamaLM
from rlearly.lm.runtime import device_of, place, to_device
from rlearly.lm.tokenizer import Tokenizer
from rlearly.sampling import get_engine
from rlearly.sampling.torch_engine import generate
from rlearly.seeds import sample_key
from rlearly.tasks import Task, TaskProblem, config_task, get_task, task_class

SHOTS = 2  # few-shot exemplars for base checkpoints (as greedy_accuracy)
MAX_NEW_TOKENS = 160  # one-line tasks' budget (Task.max_new_tokens): the hard split's solutions take up to ~125 tokens
FLUSH_ROWS = 1024  # samples buffered before a store write (an interrupted run loses at most these)


@torch.no_grad()
def heldout_nll(model: LlamaLM, batches) -> float:
    """Mean next-token NLL (nats/token) over fixed (x, y) batches."""
    model.eval()
    dev = device_of(model)
    losses = [model(*to_device((x, y), dev)).item() for x, y in batches]
    return sum(losses) / len(losses)


def fewshot_prefix(math_world, shots: int) -> str:
    """`shots` worked train examples in the graded format, as the base model's in-context exemplars."""
    train = math_world.split("train")
    return "".join(math_world.prompt(p) + math_world.one_demo(p) + "\n\n" for p in train[:shots])


@torch.no_grad()
def greedy_accuracy(model: LlamaLM, tok: Tokenizer, math_world, split: str = "dev", n_problems: int = 100,
                    shots: int = 2, max_new_tokens: int = 128, batch_size: int = 64) -> dict[str, float]:
    """Greedy decoding on the first `n_problems` of `split`, `shots`-shot. Returns
    `graded`: fraction correct under the world's scoring (the task's reward), and
    `answer`: fraction whose final number is the answer, whatever the format (capability without format)."""
    problems = math_world.split(split)[:n_problems]
    prefix = fewshot_prefix(math_world, shots)
    stop = tok.line_stop_ids  # a solution is one line
    graded = answer = 0
    for i in range(0, len(problems), batch_size):
        chunk = problems[i:i + batch_size]
        prompts = [tok.encode(prefix + math_world.prompt(p)) for p in chunk]
        room = model.cfg.max_seq_len - max(map(len, prompts))
        if room < 8:
            raise ValueError(f"few-shot prompts fill model.max_seq_len={model.cfg.max_seq_len}; use fewer shots")
        outs = generate(model, prompts, max_new_tokens=min(max_new_tokens, room), temperature=0.0,
                        stop_ids=stop, pad_id=tok.pad_id)
        for p, c in zip(chunk, outs):
            text = tok.decode(c.tokens)
            graded += math_world.reward(text, p) > 0
            answer += extract_answer_flexible(text) == p.answer
    n = max(1, len(problems))
    return {"graded": graded / n, "answer": answer / n}


# ---------------------------------------------------------------- keys and prompts

def task_prompt(task: Task, problem: TaskProblem, prompt_mode: str, shots: int = SHOTS) -> str:
    """The prompt text: zero-shot, or few-shot with the task's first train exemplars (never the problem itself)."""
    if prompt_mode == "zero-shot":
        return task.prompt(problem)
    if prompt_mode != "few-shot":
        raise RlearlyError(f"prompt_mode={prompt_mode!r} must be one of {PROMPT_MODES}")
    try:
        exemplars = [s for s in task.exemplars(shots + 1) if s.question != problem.question][:shots]
    except DataError as e:
        raise DataError(f"few-shot exemplars come from the train split, which failed to load: {e}") from None
    return task.prompt(problem, exemplars)


BASE_METHODS = ("pretrain", "nanotron", "suite")  # a base checkpoint: pretrained by rlearly, converted from
#                                                  nanotron, or a public suite's revision (rlearly.study.suite)


def resolve_prompt_mode(prompt_mode: str, meta: dict) -> str:
    """"auto": few-shot for a base (pretraining) checkpoint, zero-shot for a trained branch (docs/DESIGN.md §5)."""
    if prompt_mode == "auto":
        return "few-shot" if meta.get("method") in BASE_METHODS else "zero-shot"
    if prompt_mode not in PROMPT_MODES:
        raise RlearlyError(f"prompt_mode={prompt_mode!r} must be 'auto' or one of {', '.join(PROMPT_MODES)}")
    return prompt_mode


def resolve_task(task: Task | str, ckpt_path) -> Task:
    """A Task as given, or by name; a task made from the world (synthetic) is the checkpoint's world's."""
    if not Path(ckpt_path).is_dir():
        raise CheckpointError(f"checkpoint not found: {ckpt_path}")
    if isinstance(task, Task):
        return task
    if task_class(task).from_world:
        return config_task(TaskConfig(task), load_config_of(ckpt_path).world)
    return get_task(task)


def check_ks(ks, n: int) -> list[int]:
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise RlearlyError(f"k values must be >= 1, got {ks}")
    if ks[-1] > n:
        raise RlearlyError(f"k={ks[-1]} exceeds n={n}: pass@k needs at least k samples per problem; raise n")
    return ks


# ---------------------------------------------------------------- sampling into the store

def _sampler(backend: str):
    """The generate function of sampling engine `backend` (an unknown name: the error lists the known ones)."""
    return get_engine(backend).impl().generate


def _plan(todo: dict[str, list[int]], room: dict[str, int], batch_size: int):
    """Generate calls as (max_new_tokens, samples per prompt, [(problem id, sample indices)]): each call
    holds prompts with the same sample count and length budget, so one prefill serves each problem."""
    groups: dict[tuple[int, int], list] = {}
    for pid, idx in todo.items():
        for s in range(0, len(idx), batch_size):
            piece = idx[s:s + batch_size]
            groups.setdefault((room[pid], len(piece)), []).append((pid, piece))
    for (T, m), pieces in groups.items():
        per = max(1, batch_size // m)
        for s in range(0, len(pieces), per):
            yield T, m, pieces[s:s + per]


def _max_len(model) -> int:
    cfg = getattr(model, "cfg", None)
    return cfg.max_seq_len if cfg is not None else int(model.max_seq_len)


def sample_problems(model, tok: Tokenizer, task: Task, problems, *, checkpoint_id: str, split: str, n: int,
                    seed: int, store: SampleStore, temperature: float = 0.6, top_p: float = 0.95,
                    max_new_tokens: int | None = None, prompt_mode: str = "zero-shot", shots: int = SHOTS,
                    batch_size: int = 512, backend: str = "torch", dtype: str = "fp32", progress: bool = True) -> int:
    """Draw the samples among problems × range(n) that `store` lacks, score them, store them. Returns rows added.

    `model` is what sampling engine `backend` loads (rlearly.sampling: a LlamaLM for torch). Each problem's
    budget is min(max_new_tokens, max_seq_len − prompt length), so it never depends on the batch. `dtype` (fp32,
    bf16) is the precision the sampler computes in; each row records it, so fp32 samples never count as bf16 ones.
    """
    gen = _sampler(backend)
    max_new_tokens = task.max_new_tokens if max_new_tokens is None else max_new_tokens  # the task's protocol
    if prompt_mode not in PROMPT_MODES:
        raise RlearlyError(f"prompt_mode={prompt_mode!r} must be one of {', '.join(PROMPT_MODES)}")
    by_id = {str(p.id): p for p in problems}
    protocol = dict(max_new_tokens=int(max_new_tokens), shots=int(shots) if prompt_mode == "few-shot" else 0,
                    backend=backend, dtype=dtype)
    tid = task.task_id(split)
    missing = store.missing(tid, checkpoint_id, split, list(by_id), n, seed, temperature, top_p, prompt_mode,
                            **protocol)
    if not missing:
        return 0
    todo: dict[str, list[int]] = {}
    for pid, i in missing:
        todo.setdefault(pid, []).append(i)
    prompts = {pid: tok.encode(task_prompt(task, by_id[pid], prompt_mode, shots)) for pid in todo}
    room = {pid: min(int(max_new_tokens), _max_len(model) - len(ids)) for pid, ids in prompts.items()}
    for pid, r in room.items():
        if r < 8:
            raise RlearlyError(f"the {prompt_mode} prompt of problem {pid!r} has {len(prompts[pid])} tokens, leaving "
                               f"{r} of max_seq_len={_max_len(model)} to answer in; use fewer shots")
    stop = task.stop_ids(tok)  # one-line solutions: the first newline; multi-line: EOS
    bar = progress_bar(len(missing), desc=f"sample {split}", enabled=progress)
    base = dict(task=tid, checkpoint_id=checkpoint_id, split=split, seed=int(seed), temperature=float(temperature),
                top_p=float(top_p), prompt_mode=prompt_mode, **protocol)
    rows, added = [], 0
    for T, m, pieces in _plan(todo, room, batch_size):
        keys = [sample_key(pid, i) for pid, idx in pieces for i in idx]
        outs = gen(model, [prompts[pid] for pid, _ in pieces], n=m, max_new_tokens=T, temperature=temperature,
                   top_p=top_p, stop_ids=stop, seed=seed, keys=keys, pad_id=tok.pad_id,
                   **({"dtype": dtype} if dtype != "fp32" else {}))
        pairs = [(pid, i) for pid, idx in pieces for i in idx]
        for (pid, i), c in zip(pairs, outs):
            text = task.answer_text(tok.decode(c.tokens))
            rows.append(dict(base, problem_id=pid, sample_index=i, completion=text, tokens=len(c.tokens),
                             **_answer_fields(task.extract(text)), correct=task.reward(text, by_id[pid]) > 0,
                             logprob=float(sum(c.logprobs)), finished=bool(c.finished)))
        bar.update(len(outs))
        if len(rows) >= FLUSH_ROWS:
            added, rows = added + store.add(rows), []
    bar.close()
    return added + (store.add(rows) if rows else 0)


def _answer_fields(answer) -> dict:
    """The store's answer/answer_text; an integer beyond int64 (a long run of sampled digits) is kept as text."""
    if isinstance(answer, (int, np.integer)) and not -2**63 <= int(answer) < 2**63:
        return {"answer": None, "answer_text": str(answer)}
    if isinstance(answer, str) and re.fullmatch(r"[+-]?\d+", answer.strip()) and not -2**63 <= int(answer) < 2**63:
        return {"answer": None, "answer_text": answer}
    return {"answer": answer}


def _load(path: Path, backend: str, device: str = "auto"):
    """A checkpoint ready to sample with engine `backend`, and its tokenizer."""
    return get_engine(backend).impl().load(path, device), Tokenizer.load(path)


def _ensure_samples(ckpt_path, task: Task, split: str, n: int, seed: int, store: SampleStore, prompt_mode: str,
                    max_problems: int | None, sampling: dict) -> tuple[str, str, list[str]]:
    """Sample what the store lacks for one checkpoint (loading it only then, on sampling["device"], default
    auto). Returns (checkpoint id, prompt mode, problem ids); the samples are stored under task.task_id(split)."""
    sampling = dict(sampling)
    device = sampling.pop("device", "auto")  # where, not what: not part of the samples' key
    path = Path(ckpt_path)
    cid = checkpoint_id(path)
    meta = read_meta(path, verify=False) if (path / META).is_file() else {}
    mode = resolve_prompt_mode(prompt_mode, meta)
    if max_problems is not None and max_problems < 1:  # 0 would mean "all", -1 "all but the last"
        raise RlearlyError(f"max_problems={max_problems} must be >= 1 (or None: every problem)")
    problems = task.problems(split)
    problems = problems[:max_problems] if max_problems else problems
    pids = [str(p.id) for p in problems]
    t, p = sampling.get("temperature", 0.6), sampling.get("top_p", 0.95)
    protocol = dict(max_new_tokens=int(sampling.get("max_new_tokens") or task.max_new_tokens),
                    shots=int(sampling.get("shots", SHOTS)) if mode == "few-shot" else 0,
                    backend=sampling.get("backend", "torch"), dtype=sampling.get("dtype", "fp32"))
    if store.missing(task.task_id(split), cid, split, pids, n, seed, t, p, mode, **protocol):
        model, tok = _load(path, sampling.get("backend", "torch"), device)
        sample_problems(model, tok, task, problems, checkpoint_id=cid, split=split, n=n, seed=seed, store=store,
                        prompt_mode=mode, **sampling)
    return cid, mode, pids


def evaluate_passk(ckpt_path, task: Task | str = "synthetic", split: str = "test", n: int = 32, ks=(1, 8, 32),
                   seed: int = 0, store_root="runs/samples", prompt_mode: str = "auto", *,
                   max_problems: int | None = None, n_boot: int = 1000, **sampling) -> dict:
    """pass@k of a checkpoint for every k in ks (95% bootstrap CIs over problems), from stored samples.

    Draws only what the store lacks; `sampling` goes to sample_problems (temperature, top_p,
    max_new_tokens, shots, batch_size, backend, dtype, progress), but for `device` (where the model samples: auto,
    cpu, cuda[:i]; default auto). Rates are over all n samples of all problems.
    """
    ks = check_ks(ks, n)
    task = resolve_task(task, ckpt_path)
    store = SampleStore(store_root)
    cid, mode, pids = _ensure_samples(ckpt_path, task, split, n, seed, store, prompt_mode, max_problems, sampling)
    tid = task.task_id(split)
    _, counts = store.counts(tid, cid, split, n, seed, pids)
    df = _rows(store, tid, cid, split, n, seed, pids)
    curve = []
    for k in ks:
        low, high = passk.bootstrap_ci(counts, n, k, n_boot=n_boot, seed=seed)
        curve.append({"k": k, "pass_at_k": float(np.mean(passk.pass_at_k(n, counts, k))), "ci_low": low,
                      "ci_high": high})
    return {"checkpoint": str(ckpt_path), "checkpoint_id": cid, "task": task.name, "task_id": tid, "split": split,
            "n": n,
            "seed": seed, "prompt_mode": mode, "temperature": float(df["temperature"].iloc[0]),
            "top_p": float(df["top_p"].iloc[0]), "n_problems": len(pids), "passk": curve,
            "mean_tokens": float(df["tokens"].mean()), "truncation_rate": float((~df["finished"]).mean()),
            "format_rate": float(df["answer_text"].notna().mean())}


def _rows(store: SampleStore, tid: str, cid: str, split: str, n: int, seed: int, pids: list[str]):
    df = store.load(tid, cid, split, seed)
    return df[df["problem_id"].isin(pids) & (df["sample_index"] < n)].reset_index(drop=True)


def readiness(ckpt_path, task: Task | str = "synthetic", n: int = 32, ks=None, seed: int = 0,
              store_root="runs/samples", *, max_problems: int | None = None, **sampling) -> dict:
    """The base checkpoint's pass@k curve on the RL *training* prompts (split "train", few-shot)."""
    task = resolve_task(task, ckpt_path)
    store = SampleStore(store_root)
    cid, mode, pids = _ensure_samples(ckpt_path, task, "train", n, seed, store, "few-shot", max_problems, sampling)
    tid = task.task_id("train")
    _, counts = store.counts(tid, cid, "train", n, seed, pids)
    return {"checkpoint": str(ckpt_path), "checkpoint_id": cid, "task_id": tid, "split": "train", "prompt_mode": mode,
            "n": n,
            "n_problems": len(pids), "passk": passk.readiness(counts, n, check_ks(ks, n) if ks else None)}


# ---------------------------------------------------------------- a branch against its start

def compare_branch(start_ckpt, branch_ckpt, task: Task | str = "synthetic", split: str = "test", n: int = 32,
                   seed: int = 0, store_root="runs/samples", *, start_prompt_mode: str = "auto",
                   branch_prompt_mode: str = "auto", max_problems: int | None = None, n_boot: int = 1000,
                   nll_batch_size: int = 64, **sampling) -> dict:
    """passk.compare of a branch against its start on the same problems, plus `start_nll`: the start
    model's mean per-token NLL of the branch's completions (all, and the correct ones), each completion
    given the prompt the start model is evaluated with. Low = text the start already found likely
    (sharpening); high = text new to it. `start_nll_own` is the same for the start's own samples.
    Means are token-weighted over samples; None where there is no sample to score.
    """
    task = resolve_task(task, start_ckpt)  # a branch lives in its start's world
    store = SampleStore(store_root)
    cs, ms, pids = _ensure_samples(start_ckpt, task, split, n, seed, store, start_prompt_mode, max_problems, sampling)
    cb, mb, _ = _ensure_samples(branch_ckpt, task, split, n, seed, store, branch_prompt_mode, max_problems, sampling)
    tid = task.task_id(split)
    _, c_start = store.counts(tid, cs, split, n, seed, pids)
    _, c_branch = store.counts(tid, cb, split, n, seed, pids)
    _, sets_start = store.correct_sets(tid, cs, split, n, seed, pids)
    _, sets_branch = store.correct_sets(tid, cb, split, n, seed, pids)
    out = passk.compare(c_start, c_branch, n, n, sets_start, sets_branch, n_boot=n_boot, seed=seed)
    out.update(start={"checkpoint": str(start_ckpt), "checkpoint_id": cs, "prompt_mode": ms},
               branch={"checkpoint": str(branch_ckpt), "checkpoint_id": cb, "prompt_mode": mb},
               split=split, n=n, seed=seed, n_problems=len(pids))
    model, tok, _ = load_checkpoint(start_ckpt)
    model = place(model, sampling.get("device", "auto"))
    shots = sampling.get("shots", SHOTS)
    by_id = {str(p.id): p for p in task.problems(split)}
    prompts = {pid: tok.encode(task_prompt(task, by_id[pid], ms, shots)) for pid in pids}
    for name, cid in (("start_nll", cb), ("start_nll_own", cs)):
        df = _rows(store, tid, cid, split, n, seed, pids)
        out[name] = {"all": _mean_nll(model, tok, prompts, df, nll_batch_size),
                     "correct": _mean_nll(model, tok, prompts, df[df["correct"]], nll_batch_size)}
    return out


def _mean_nll(model: LlamaLM, tok: Tokenizer, prompts: dict, df, batch_size: int) -> float | None:
    """Token-weighted mean NLL of the completions in df given their prompts; each distinct text scored once."""
    if len(df) == 0:
        return None
    uniq = df.groupby(["problem_id", "completion"]).size().reset_index(name="count")
    conts = [tok.encode(c, bos=False) for c in uniq["completion"]]
    lps = continuation_logprobs(model, [(prompts[p], c) for p, c in zip(uniq["problem_id"], conts)], batch_size)
    counts = uniq["count"].to_numpy()
    n_tok = float(np.dot(counts, [len(c) for c in conts]))
    return None if n_tok == 0 else float(-np.dot(counts, lps) / n_tok)
