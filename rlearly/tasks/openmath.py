"""OpenMathInstruct-2 with the paper's splits (docs/PAPER.md §2 "Post-training data"), as the `openmath` task.

Owns turning raw OpenMathInstruct-2 rows {"problem", "generated_solution", "expected_answer",
"problem_source"} (a local .jsonl/.json/.parquet file, or the hub's nvidia/OpenMathInstruct-2 streamed)
into problems with every known solution:
  subset "gsm"   the paper's GSM8K setting: problem_source in {gsm8k, augmented_gsm8k};
  subset "all"   the MATH setting: every row;
  dedup          rows are grouped by their exact problem text (stripped); a problem's solutions keep the
                 rows' order, so its first solution is the one deduplication would keep;
  validation     `n_validation` problems (1,000 in the paper) drawn with numpy's default_rng(seed=42);
                 subset "all" holds out that many GSM-source and that many MATH-source problems;
  train          the rest, in first-appearance order (about 80K problems for the GSM subset).
The two views of the demonstrations are rlearly.tasks.demonstrations(problems, view): "one" (SFT: the
first solution per problem) and "all" (SFT-Gold: every solution, ~23 per problem in OMI-2). Solutions are
flattened to one line as every task's demos are (rlearly.tasks); the reference is `expected_answer`.
The paper prompts with its instruction (PAPER_INSTRUCTION) after the problem; `instruction=""` (default)
keeps rlearly's shared layout, question + "\\n".
"""
from __future__ import annotations

import hashlib
from typing import Mapping, Sequence

import numpy as np

from rlearly.errors import DataError
from rlearly.tasks.answers import last_boxed
from rlearly.tasks.base import TaskProblem, _field, read_rows, register_task
from rlearly.tasks.math import MathTask

HUB_ID = "nvidia/OpenMathInstruct-2"
GSM_SOURCES = ("gsm8k", "augmented_gsm8k")
MATH_SOURCES = ("math", "augmented_math")
SUBSETS = ("gsm", "all")
PAPER_INSTRUCTION = "Let's think step by step and output the final answer within \\boxed{}."


def group_problems(rows: list[dict], label: str, subset: str = "gsm") -> list[dict]:
    """Rows of `subset` grouped by problem text: [{"problem", "answer", "source", "solutions"}] in order of
    first appearance; a malformed row is a DataError naming its row and field."""
    if subset not in SUBSETS:
        raise DataError(f"openmath subset {subset!r} is unknown; known: {', '.join(SUBSETS)}")
    groups: dict[str, dict] = {}
    for i, row in enumerate(rows, 1):
        source = _field(label, i, row, "problem_source")
        if subset == "gsm" and source not in GSM_SOURCES:
            continue
        problem = _field(label, i, row, "problem")
        solution = _field(label, i, row, "generated_solution")
        answer = _field(label, i, row, "expected_answer", required=False) or last_boxed(solution)
        if not answer:
            raise DataError(f"{label}: row {i}: field 'expected_answer' is missing and the solution has no "
                            "\\boxed{} answer")
        g = groups.setdefault(problem, {"problem": problem, "answer": answer, "source": source, "solutions": []})
        g["solutions"].append(solution)
    return list(groups.values())


def split_validation(groups: list[dict], n_validation: int, seed: int = 42,
                     subset: str = "gsm") -> tuple[list[dict], list[dict]]:
    """(train, validation): `n_validation` problems held out at random (per source family for "all")."""
    rng = np.random.default_rng(seed)
    families = [GSM_SOURCES, MATH_SOURCES] if subset == "all" else [None]
    held: set[int] = set()
    for fam in families:
        idx = [i for i, g in enumerate(groups) if fam is None or g["source"] in fam]
        if len(idx) <= n_validation:
            what = "problems" if fam is None else f"{'/'.join(fam)} problems"
            raise DataError(f"openmath: only {len(idx)} {what}, need more than n_validation={n_validation} "
                            "(the paper holds out 1,000 of ~80K; a smaller file needs a smaller n_validation)")
        held.update(int(idx[j]) for j in rng.choice(len(idx), size=n_validation, replace=False))
    train = [g for i, g in enumerate(groups) if i not in held]
    return train, [groups[i] for i in sorted(held)]


def problem_id(problem: str) -> str:
    """A stable id from the problem text (the sample store keys on it)."""
    return "omi-" + hashlib.sha1(problem.encode()).hexdigest()[:12]


@register_task
class OpenMathTask(MathTask):
    """OpenMathInstruct-2 problems with the paper's subset, dedup and validation split; MATH-style reward."""

    name = "openmath"
    splits = ("train", "validation")
    heldout = ("validation",)
    validation_split = "validation"

    def __init__(self, files: Mapping[str, str] | Sequence[str] | str | None = None, hub_id: str | None = None,
                 hub_split: str = "train", subset: str = "gsm", n_validation: int = 1000, seed: int = 42,
                 instruction: str = "", use_math_verify: bool = True):
        super().__init__(None, hub_id or HUB_ID, None, use_math_verify)
        if isinstance(files, str):
            files = [files]
        self.sources = list(dict.fromkeys((files or {}).values() if isinstance(files, Mapping) else files or []))
        if subset not in SUBSETS:
            raise DataError(f"openmath subset {subset!r} is unknown; known: {', '.join(SUBSETS)}")
        self.hub_split, self.subset, self.n_validation, self.seed = hub_split, subset, n_validation, seed
        self.instruction = instruction

    def problems(self, split: str) -> list[TaskProblem]:
        if split not in self.splits:
            raise DataError(f"task {self.name!r} has no split {split!r}; known: {', '.join(self.splits)}")
        if not self._cache:
            label, rows = self._raw_rows()
            groups = group_problems(rows, label, self.subset)
            train, val = split_validation(groups, self.n_validation, self.seed, self.subset)
            self._cache = {"train": [self._problem(g) for g in train], "validation": [self._problem(g) for g in val]}
        return self._cache[split]

    def _problem(self, g: dict) -> TaskProblem:
        demos = []
        for sol in g["solutions"]:
            demo = self._layout(sol)
            demos.append(demo if last_boxed(demo) is not None else demo + f" The answer is \\boxed{{{g['answer']}}}.")
        question = g["problem"] + (" " + self.instruction if self.instruction else "")
        return TaskProblem(problem_id(g["problem"]), question, g["answer"], tuple(demos), raw=g)

    def _raw_rows(self) -> tuple[str, list[dict]]:
        """Every raw row: the local files in order, or the hub split (streamed; GSM rows kept as they come)."""
        if self.sources:
            rows, labels = [], []
            for src in self.sources:
                label, got = read_rows(src, self.hub_split)
                rows += got
                labels.append(label)
            return (labels[0] if len(labels) == 1 else "+".join(labels)), rows
        return f"{self.hub_id}[{self.hub_split}]", _stream_hub(self.hub_id, self.hub_split, self.subset)


def _stream_hub(hub_id: str, split: str, subset: str) -> list[dict]:
    import datasets

    from rlearly import hub
    hub.require(f"dataset {hub_id!r}")

    try:
        ds = datasets.load_dataset(hub_id, split=split, streaming=True)
        return [dict(r) for r in ds if subset == "all" or r.get("problem_source") in GSM_SOURCES]
    except Exception as e:  # network, unknown id or split: all fixed the same way
        first = str(e).splitlines()[0] if str(e) else ""
        raise DataError(f"could not stream {hub_id!r} split {split!r} through datasets ({type(e).__name__}: "
                        f"{first}); pass a local .jsonl/.parquet file of its rows") from None
