"""The task interface (docs/DESIGN.md §5): one problem of any task (`TaskProblem`), a verifiable task (`Task`:
its splits, prompt, generation protocol, answer extraction, reward and the fingerprint of what it scores), the
one-demo / all-demo views of its demonstrations (`demonstrations`), `register_task`, and tasks read from a file
per split or a hub dataset (`read_rows`, `_FileTask`)."""
from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from rlearly.config import TaskConfig
from rlearly.errors import ConfigError, DataError


@dataclass(frozen=True)
class TaskProblem:
    id: str
    question: str
    answer: str | int  # reference answer: int (synthetic), canonical number text (gsm8k), LaTeX (math)
    solutions: tuple[str, ...] = ()  # every graded one-line demonstration known (SFT-Gold uses them all)
    demo: str | None = None  # the single demonstration (SFT, few-shot exemplars); default solutions[0]
    raw: object = field(default=None, compare=False, repr=False)  # the source object (math_world.Problem)

    def __post_init__(self):
        object.__setattr__(self, "solutions", tuple(self.solutions))
        if self.demo is None and self.solutions:
            object.__setattr__(self, "demo", self.solutions[0])


class Task:
    """A verifiable task. Subclasses set `name`, `splits` and implement `_load`, `extract`, `is_correct`."""

    name: str = ""
    splits: tuple[str, ...] = ()
    heldout: tuple[str, ...] = ("dev", "test")  # splits no training step may read (validation, final evaluation)
    validation_split: str = "dev"  # what a branch's quick validation samples (never test)
    # the generation protocol: one-line solutions stop at the first newline (rlearly's layout for every task by
    # default); multi-line ones keep their demonstrations' lines and stop at EOS, an answer ending at a blank line
    multiline: bool = False
    max_new_tokens: int = 160  # the evaluation's token budget per completion
    supports_multiline = True
    from_world = False  # made from a config's world.* settings (the synthetic world), not read from data

    # ---- how a config, a study plan and its stored results name this task (class-level: no data is loaded)

    @classmethod
    def build(cls, **kw) -> "Task":
        """The task built with constructor arguments `kw`; ones it does not take are a ConfigError naming them."""
        try:
            inspect.signature(cls).bind(**kw)
        except TypeError as e:
            raise ConfigError(f"task {cls.name!r}: {e}; it takes {list(inspect.signature(cls).parameters)}") from None
        return cls(**kw)

    @classmethod
    def from_config(cls, tc: TaskConfig, world) -> "Task":
        """The task a config's `task` section describes: its data files (`world`, the config's WorldConfig, is for
        tasks made from the world)."""
        cls.check_config(tc)
        return cls.build(**({"files": tc.file_map()} if tc.files else {}))

    @classmethod
    def check_config(cls, tc: TaskConfig) -> None:
        """A ConfigError naming what a `task` section asks of this task that it cannot do (before anything runs)."""
        if tc.multiline and not cls.supports_multiline:
            raise ConfigError(f"task {cls.name!r} has one-line solutions only (task.multiline)")

    @classmethod
    def eval_config(cls, files, train: TaskConfig) -> TaskConfig:
        """An evaluation on this task of models trained on `train`'s task: in the training task's generation
        protocol (task.multiline, task.max_new_tokens), the models' format."""
        return TaskConfig(cls.name, list(files), train.multiline, train.max_new_tokens)

    @classmethod
    def plan_protocol(cls, tc: TaskConfig, world, split: str) -> dict:
        """What a stored evaluation result must record to count as this task's on `split`: its name, data files and
        generation protocol (its fingerprint, task_id, needs its data, which a plan does not load)."""
        protocol = {"multiline": True} if tc.multiline else {}  # one line: as results were keyed before protocols
        protocol |= {"max_new_tokens": tc.max_new_tokens} if tc.max_new_tokens else {}
        return {"task": tc.name, "task_files": list(tc.files), **protocol}

    @classmethod
    def result_name(cls, split: str) -> str:
        """The name of an evaluation of this task on `split` (its file in a study's eval/ folder, its samples)."""
        return f"{cls.name}-{split}"

    @classmethod
    def node_label(cls) -> str:
        """What the key of a branch node trained on this task says about it."""
        return f" on {cls.name}"

    def with_protocol(self, multiline: bool | None = None, max_new_tokens: int | None = None) -> "Task":
        """This task with another generation protocol (before any problem is loaded: demonstrations keep their
        lines only under a multi-line one)."""
        if self._cache:
            raise RuntimeError("a task's generation protocol is set before its problems are loaded")
        if multiline and not self.supports_multiline:
            raise ConfigError(f"task {self.name!r} has one-line solutions only (task.multiline)")
        if multiline is not None:
            self.multiline = bool(multiline)
        if max_new_tokens:
            self.max_new_tokens = int(max_new_tokens)
        return self

    def stop_ids(self, tok) -> list[int]:
        """Where sampling stops: EOS and every newline token (one-line), or EOS alone (multi-line)."""
        return [tok.eos_id] if self.multiline else tok.line_stop_ids

    def answer_text(self, completion: str) -> str:
        """The part of a sampled completion that is scored and stored: its first line, or (multi-line)
        everything before the first blank line."""
        return completion.split("\n\n" if self.multiline else "\n", 1)[0]

    def rollout_text(self, completion: str) -> str:
        """What a training-time reward reads of a sampled completion: as sampled for one-line solutions (the stop
        token ends it), the answer text for multi-line ones (sampling ran on to EOS)."""
        return self.answer_text(completion) if self.multiline else completion

    def _layout(self, solution: str) -> str:
        """A demonstration in this protocol's layout: one line (whitespace runs joined), or its own lines."""
        return "\n".join(line.strip() for line in solution.strip().splitlines() if line.strip()) \
            if self.multiline else _one_line(solution)

    def __init__(self):
        self._cache: dict[str, list[TaskProblem]] = {}
        self._ids: dict[str, str] = {}

    def problems(self, split: str) -> list[TaskProblem]:
        """The problems of a split, in a fixed order (loaded once)."""
        if split not in self._cache:
            if self.splits and split not in self.splits:
                raise DataError(f"task {self.name!r} has no split {split!r}; known: {', '.join(self.splits)}")
            self._cache[split] = self._load(split)
        return self._cache[split]

    def _load(self, split: str) -> list[TaskProblem]:
        raise NotImplementedError

    @classmethod
    def check_training_split(cls, split: str, key: str = "rl.split / sft.split") -> None:
        """A ConfigError when `split` is held out (dev, test, hard): no training step may read it."""
        if split in cls.heldout:
            raise ConfigError(f"task {cls.name!r}: split {split!r} is held out for validation and evaluation "
                              f"and cannot be trained on; train on another split ({key})")

    def training_problems(self, split: str) -> list[TaskProblem]:
        """The problems a recipe trains on; a held-out split (dev, test, hard) is refused."""
        self.check_training_split(split)
        return self.problems(split)

    def scoring_identity(self) -> dict:
        """What decides a completion's score besides the problems (a scoring mode, a checker's options)."""
        return {"multiline": True} if self.multiline else {}  # one-line: as ids were before protocols existed

    def task_id(self, split: str) -> str:
        """`<name>-<16 hex>`: the sample store's key for this split, a fingerprint of what it scores (the
        task, its scoring identity and every problem's id, question and answer). Another dataset file,
        world or scoring gives another id, so no sample is ever scored as another task's."""
        if split not in self._ids:
            h = hashlib.sha256(json.dumps([self.name, self.scoring_identity(), split], sort_keys=True).encode())
            for p in self.problems(split):
                h.update(json.dumps([str(p.id), p.question, str(p.answer)]).encode())
            self._ids[split] = f"{self.name}-{h.hexdigest()[:16]}"
        return self._ids[split]

    def exemplars(self, k: int, split: str = "train") -> list[TaskProblem]:
        """The first k problems of `split`: the fixed few-shot exemplars."""
        return self.problems(split)[:k]

    def prompt(self, problem: TaskProblem, shots: Sequence[TaskProblem] = ()) -> str:
        """Zero-shot: question + "\\n". Few-shot: each shot as its prompt + demo + "\\n\\n", then that."""
        parts = []
        for s in shots:
            if not s.demo:
                raise DataError(f"few-shot exemplar {s.id!r} of task {self.name!r} has no demonstration")
            parts.append(s.question + "\n" + s.demo + "\n\n")
        return "".join(parts) + problem.question + "\n"

    def extract(self, completion: str):
        """The answer a completion commits to, or None."""
        raise NotImplementedError

    def is_correct(self, extracted, problem: TaskProblem) -> bool:
        raise NotImplementedError

    def reward(self, completion: str, problem: TaskProblem) -> float:
        """Verifiable binary reward: 1.0 iff the extracted answer matches the reference."""
        return 1.0 if self.is_correct(self.extract(completion), problem) else 0.0

    def teacher_demos(self, problems: Sequence[TaskProblem], merge: float) -> list[TaskProblem]:
        """The problems with demonstrations in a stronger author's style (sft.demo_merge); synthetic only."""
        raise ConfigError(f"sft.demo_merge={merge} needs the synthetic task, whose solutions can be re-told; "
                          f"task {self.name!r} has fixed demonstrations")


VIEWS = ("one", "all")


def demonstrations(problems: Sequence[TaskProblem], view: str = "one") -> list[tuple[TaskProblem, str]]:
    """(problem, demonstration) pairs: view "one" = each problem's single demo (SFT), "all" = every known
    solution (SFT-Gold, the paper's "repeated multi-solution" data)."""
    if view not in VIEWS:
        raise ConfigError(f"demonstration view {view!r} is unknown; known: {', '.join(VIEWS)}")
    return [(p, d) for p in problems for d in ((p.demo,) if view == "one" else p.solutions) if d]


# ---------------------------------------------------------------- registration

_TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    _TASKS[cls.name] = cls
    return cls


# ---------------------------------------------------------------- reading rows

_FILE_SUFFIXES = (".jsonl", ".json", ".parquet")


def read_rows(source: str, split: str, hub_config: str | None = None) -> tuple[str, list[dict]]:
    """(label, rows) from a local .jsonl/.json/.parquet file or, for anything else, a hub dataset id."""
    path = Path(source)
    if path.suffix in _FILE_SUFFIXES or path.is_file():
        if not path.is_file():
            raise DataError(f"dataset file {path} not found")
        label = str(path)
        if path.suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq
            try:
                return label, pq.read_table(path).to_pylist()
            except (pa.ArrowException, OSError, ValueError) as e:
                raise DataError(f"{label}: not a readable parquet file ({type(e).__name__})") from None
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json" and text.lstrip().startswith("["):
            try:
                rows = json.loads(text)
            except json.JSONDecodeError as e:
                raise DataError(f"{label}: invalid JSON ({e.msg} at line {e.lineno})") from None
            return label, rows
        rows = []
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise DataError(f"{label}: row {len(rows) + 1} (line {i}) is not valid JSON ({e.msg})") from None
        return label, rows
    from rlearly import hub
    hub.require(f"dataset {source!r}")
    try:
        import datasets
        ds = datasets.load_dataset(source, hub_config, split=split)
    except Exception as e:  # network, missing config, unknown id: all fixed the same way
        raise DataError(f"could not load {source!r} split {split!r} through datasets ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}); pass a local .jsonl/.parquet file") from None
    return f"{source}[{split}]", [dict(r) for r in ds]


def _field(label: str, i: int, row, name: str, required: bool = True):
    """Row field `name` as non-empty text (numbers are turned into text); None when optional and absent."""
    if not isinstance(row, dict):
        raise DataError(f"{label}: row {i} is a {type(row).__name__}, not an object")
    v = row.get(name)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        v = str(v)
    if v is None and not required:
        return None
    if not isinstance(v, str) or not v.strip():
        raise DataError(f"{label}: row {i}: field '{name}' is missing or empty")
    return v.strip()


def _one_line(text: str) -> str:
    return " ".join(text.split())


class _FileTask(Task):
    """A task read from a file per split (or a hub dataset when no file is given for a split)."""

    default_hub_id = ""
    default_hub_config: str | None = None

    def __init__(self, files: Mapping[str, str] | None = None, hub_id: str | None = None,
                 hub_config: str | None = None):
        super().__init__()
        self.files = {k: str(v) for k, v in (files or {}).items()}
        self.hub_id = hub_id or self.default_hub_id
        self.hub_config = hub_config if hub_config is not None else self.default_hub_config

    def problems(self, split: str) -> list[TaskProblem]:
        if split not in self._cache:
            label, rows = read_rows(self.files.get(split, self.hub_id), split, self.hub_config)
            if not rows:
                raise DataError(f"{label}: no rows")
            out = [self._parse(label, i, row, split) for i, row in enumerate(rows, 1)]
            seen = set()
            for i, p in enumerate(out, 1):
                if p.id in seen:
                    raise DataError(f"{label}: row {i}: field 'id' repeats {p.id!r}")
                seen.add(p.id)
            self._cache[split] = out
        return self._cache[split]

    def _parse(self, label: str, i: int, row: dict, split: str) -> TaskProblem:
        raise NotImplementedError

    @staticmethod
    def _id(label: str, i: int, row: dict, split: str) -> str:
        v = row.get("id", row.get("unique_id"))
        return f"{split}-{i - 1:05d}" if v is None or v == "" else str(v)


