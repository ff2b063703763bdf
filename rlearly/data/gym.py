"""reasoning-gym's generators (optional `[data]` extra): real GSM8K-derived word problems, offline.

Owns the rows rlearly takes from the `reasoning-gym` package (the `gsm_symbolic` task, rlearly.tasks.gsm_symbolic,
reads them; this module imports no task). Its GSM-symbolic
generator turns GSM8K problems into templates and draws new numbers (2,000 problems in 0.1 s, docs/DESIGN.md §10);
each comes with a worked solution ending in GSM8K's "#### N" line, so a row here is a GSM8K row
{"id", "question", "answer"} and the task is rlearly.tasks.GSM8KTask's parsing and reward on generated
splits instead of files:
  train  `n_train` problems drawn with `seed`;
  test   `n_test` problems drawn from seeds a million further on (reasoning-gym seeds problem i with
         seed + i, so the two splits never share a generator stream), minus any question also in train;
  dev    `n_dev` problems from seeds two million further on, minus any question in train or test (a
         branch's validation split).
The package's instruction suffix " Give the result as your final answer. Do not include units." is
dropped from questions, so prompts look like GSM8K's. As a pretraining source (`data.corpus:
reasoning-gym:gsm_symbolic`, rlearly.data.corpora) a document is the question, a newline and the worked
solution, as GSM8K's train set appears in the paper's pretraining mix (docs/PAPER.md §2).
"""
from __future__ import annotations

import re

from rlearly.errors import DataError
from rlearly.extras import require

SUFFIX = " Give the result as your final answer. Do not include units."
TEST_SEED_OFFSET = 1_000_000
_LAST_HASHES = re.compile(r"\n?####[^\n]*\s*$")


def _reasoning_gym():
    return require("reasoning_gym", "data", "reasoning-gym problems")


def rows(name: str, n: int, seed: int) -> list[dict]:
    """n GSM8K-layout rows from reasoning-gym dataset `name`; the reference is the package's `answer`
    (a worked solution's own "#### ..." line is replaced by it, so the two can never disagree)."""
    rg = _reasoning_gym()
    try:
        ds = rg.create_dataset(name, seed=seed, size=n)
    except Exception as e:  # an unknown name or bad arguments: the package's own message
        first = str(e).splitlines()[0] if str(e) else ""
        raise DataError(f"reasoning-gym dataset {name!r}: {type(e).__name__}: {first}") from None
    out = []
    for i in range(n):
        e = ds[i]
        q = e["question"]
        q = q[:-len(SUFFIX)] if q.endswith(SUFFIX) else q
        cot = str((e.get("metadata") or {}).get("answer_cot") or "").strip()
        rationale = _LAST_HASHES.sub("", cot).strip()
        answer = (rationale + "\n" if rationale else "") + f"#### {e['answer']}"
        out.append({"id": f"{name}-{seed}-{i:06d}", "question": q.strip(), "answer": answer})
    return out


def documents(name: str, n: int, seed: int) -> list[str]:
    """n pretraining documents: question, newline, worked solution (with its "#### N" line)."""
    return [r["question"] + "\n" + r["answer"] for r in rows(name, n, seed)]
