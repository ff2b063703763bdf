"""Task registry: prompts, few-shot formatting, answer extraction and the verifiable reward (docs/DESIGN.md §5).

Owns: `TaskProblem` (one problem of any task), the `Task` base class, the registry (`get_task`), the
one-demo / all-demo views of a task's demonstrations (`demonstrations`), and three tasks:
  synthetic  the embedded math world (rlearly.data.math_world), splits train/dev/test/hard;
  gsm8k      GSM8K rows {"question", "answer" ending in "#### N"}, from a local .jsonl/.json/.parquet
             file or a hub id through `datasets.load_dataset`;
  math       MATH / OpenMathInstruct rows {"problem", "solution" (answer in the last \\boxed{})} or
             {"problem", "generated_solution"?, "expected_answer"}.
Two more live in their own modules, imported when first asked for by name (MODULES): `openmath`
(OpenMathInstruct-2 with the paper's GSM subset, dedup and validation split; rlearly.data.openmath) and
`gsm_symbolic` (reasoning-gym's generated GSM8K variants, [data] extra; rlearly.data.gym).

Every task shares the math world's text layout: zero-shot prompt = question + "\\n"; a few-shot prompt puts
each exemplar as prompt + demo + "\\n\\n" before the problem's own prompt, exactly as
evaluate.fewshot_prefix does; a GSM8K rationale's "#### N" line becomes "The answer is \\boxed{N}." (its
"<<48/2=24>>" calculator notes are dropped), the synthetic task's graded format. The generation protocol
(`Task.multiline`, `Task.max_new_tokens`): by default a solution is ONE line (demos flattened, the sampler
stops at a newline); a multi-line protocol (task.multiline) keeps the lines and stops at EOS.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Mapping, Sequence

from rlearly.config import WorldConfig
from rlearly.data import math_world as mw
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

    supports_multiline = True

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

    def training_problems(self, split: str) -> list[TaskProblem]:
        """The problems a recipe trains on; a held-out split (dev, test, hard) is refused."""
        if split in self.heldout:
            raise ConfigError(f"task {self.name!r}: split {split!r} is held out for validation and evaluation "
                              f"and cannot be trained on; train on another split (rl.split / sft.split)")
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


# ---------------------------------------------------------------- registry

_TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    _TASKS[cls.name] = cls
    return cls


# tasks defined in their own modules (subclasses of the tasks here), imported when first asked for by name, so
# this module imports nothing of rlearly.data but the math world (no cycle: those modules import this one)
MODULES = {"openmath": "rlearly.data.openmath", "gsm_symbolic": "rlearly.data.gym"}


def known_tasks() -> tuple[str, ...]:
    return tuple(sorted({*_TASKS, *MODULES}))


def get_task(name: str, **kw) -> Task:
    """A task by name; keyword arguments go to its constructor. Unknown names list the known ones."""
    if name not in _TASKS and name in MODULES:
        importlib.import_module(MODULES[name])  # registers it
    if name not in _TASKS:
        raise ConfigError(f"unknown task {name!r}; known tasks: {', '.join(known_tasks())}")
    cls = _TASKS[name]
    try:
        inspect.signature(cls).bind(**kw)
    except TypeError as e:
        raise ConfigError(f"task {name!r}: {e}; it takes {list(inspect.signature(cls).parameters)}") from None
    return cls(**kw)


def config_task(tc, world) -> Task:
    """The task a config's branches train on: `tc` a config.TaskConfig, `world` its WorldConfig (synthetic),
    with the generation protocol `tc` sets (task.multiline, task.max_new_tokens)."""
    task = SyntheticTask(world=world) if tc.name == "synthetic" else \
        get_task(tc.name, **({"files": tc.file_map()} if tc.files else {}))
    return task.with_protocol(tc.multiline or None, tc.max_new_tokens or None)


# ---------------------------------------------------------------- synthetic

@register_task
class SyntheticTask(Task):
    """The embedded math world: prompt, reward and extraction are math_world's own."""

    name = "synthetic"
    supports_multiline = False  # the world's solutions are one line
    splits = mw.SPLITS
    heldout = ("dev", *mw.EVAL_SPLITS)

    def __init__(self, world: WorldConfig | mw.MathWorld | None = None):
        super().__init__()
        if world is None:
            world = WorldConfig()
        if isinstance(world, WorldConfig):
            world = mw.MathWorld(world)
        elif not isinstance(world, mw.MathWorld):
            world = getattr(world, "math", world)  # a data.world.World holds its MathWorld as .math
            if not isinstance(world, mw.MathWorld):
                raise ConfigError(f"synthetic task needs a WorldConfig or MathWorld, got {type(world).__name__}")
        self.world = world

    def _load(self, split: str) -> list[TaskProblem]:
        w = self.world
        return [TaskProblem(p.id, p.question, p.answer, tuple(w.solutions(p)), w.one_demo(p), raw=p)
                for p in w.split(split)]

    def scoring_identity(self) -> dict:
        return {"world_version": mw.WORLD_VERSION, "scoring": self.world.cfg.scoring}

    def extract(self, completion: str) -> int | None:
        return mw.extract_answer(completion)

    def is_correct(self, extracted, problem: TaskProblem) -> bool:
        return extracted is not None and extracted == problem.answer

    def reward(self, completion: str, problem: TaskProblem) -> float:
        if isinstance(problem.raw, mw.Problem):
            return self.world.reward(completion, problem.raw)
        return super().reward(completion, problem)

    def teacher_demos(self, problems: Sequence[TaskProblem], merge: float) -> list[TaskProblem]:
        """Each problem's solutions re-told by mw.teacher_solutions (steps of one person folded into one
        equation with probability `merge`); the single demo is picked as one_demo picks it."""
        out = []
        for p in problems:
            sols = mw.teacher_solutions(p.raw.spec, self.world.cfg.max_solutions, merge)
            out.append(TaskProblem(p.id, p.question, p.answer, sols, mw.pick_demo(p.id, sols), raw=p.raw))
        return out


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


# ---------------------------------------------------------------- numbers and boxes

_THOUSANDS = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?")
_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")


def parse_number(text: str) -> Fraction | None:
    """An exact value of a plain number: "1,234", "-3", "2.50", "$18", "7." ; None otherwise."""
    s = text.strip().replace("\\$", "").replace("$", "").replace(" ", "")
    s = s[:-1] if s.endswith(".") else s  # a sentence's full stop: "18." -> "18"
    if _THOUSANDS.fullmatch(s):
        s = s.replace(",", "")
    if not _DECIMAL.fullmatch(s):
        return None
    try:
        return Fraction(Decimal(s))
    except (InvalidOperation, ValueError):  # pragma: no cover - the regex admits only valid decimals
        return None


def number_text(x: Fraction) -> str:
    """Canonical text of a number: "1234", "-3", "2.5" (a terminating decimal) or "1/3"."""
    if x.denominator == 1:
        return str(x.numerator)
    d = Decimal(x.numerator) / Decimal(x.denominator)
    return format(d.normalize(), "f") if Fraction(d) == x else f"{x.numerator}/{x.denominator}"


def boxed_contents(text: str) -> list[tuple[int, str]]:
    """(position, content) of every \\boxed{...} / \\fbox{...} in text, braces balanced (nesting allowed)."""
    out = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        if depth == 0:
            out.append((m.start(), text[m.end():j - 1].strip()))
    return out


def last_boxed(text: str) -> str | None:
    """Content of the last complete \\boxed{...} (nested braces handled), or None."""
    boxes = boxed_contents(text)
    return boxes[-1][1] if boxes else None


# ---------------------------------------------------------------- gsm8k

_HASHES = re.compile(r"####\s*([^\n]*)")
_CALC = re.compile(r"<<[^<>]*>>")


@register_task
class GSM8KTask(_FileTask):
    """GSM8K: reference after "#### " in the answer text; completions answer with "#### N" or \\boxed{N}."""

    name = "gsm8k"
    splits = ("train", "test")
    default_hub_id = "openai/gsm8k"
    default_hub_config = "main"

    def _parse(self, label, i, row, split):
        q = _field(label, i, row, "question")
        a = _field(label, i, row, "answer")
        m = list(_HASHES.finditer(a))
        ref = parse_number(m[-1].group(1)) if m else None
        if ref is None or a[m[-1].end():].strip():
            raise DataError(f"{label}: row {i}: field 'answer' must end with '#### <number>', got ...{a[-40:]!r}")
        n = number_text(ref)
        rationale = self._layout(_CALC.sub("", a[:m[-1].start()]))
        demo = (rationale + ("\n" if self.multiline else " ") if rationale else "") + f"The answer is \\boxed{{{n}}}."
        return TaskProblem(self._id(label, i, row, split), q, n, (demo,), raw=row)

    def extract(self, completion: str) -> str | None:
        """The last "#### N" or \\boxed{N} of the completion as canonical number text (commas, "$",
        trailing ".0" and "." removed); None when the last answer marker holds no plain number."""
        marks = [(m.start(), m.group(1)) for m in _HASHES.finditer(completion)] + boxed_contents(completion)
        if not marks:
            return None
        raw = max(marks)[1].strip()
        x = parse_number(raw)
        if x is None and raw:
            x = parse_number(raw.split()[0])  # "#### 42 apples" -> 42
        return None if x is None else number_text(x)

    def is_correct(self, extracted, problem: TaskProblem) -> bool:
        if extracted is None:
            return False
        a, b = parse_number(str(extracted)), parse_number(str(problem.answer))
        return a is not None and a == b


# ---------------------------------------------------------------- math

def _strip_text_units(s: str) -> str:
    r"""Drop a trailing unit "\text{ cm}" (with an optional ^2) after a number; unwrap a lone \text{X}."""
    whole = re.fullmatch(r"\\(?:text|textbf|mbox|mathrm)\{([^{}]*)\}", s)
    if whole:
        return whole.group(1)
    return re.sub(r"(?<=[\d}])\s*\\(?:text|mbox|mathrm)\{[^{}]*\}(\^\{?\d\}?)?\s*$", "", s)


def normalize_math(ans: str) -> str:
    """A conservative canonical form of a MATH answer (layout only: never changes the value)."""
    s = str(ans).strip()
    s = s.replace("\\$", "").strip("$").strip()
    s = re.sub(r"\\(?:left|right)(?![A-Za-z])", "", s)
    s = re.sub(r"\\[dt]frac(?![A-Za-z])", r"\\frac", s)
    s = re.sub(r"\\[!,;: ]", "", s).replace("~", " ").replace("{,}", ",")
    s = re.sub(r"\^\s*\{?\\circ\}?", "", s).replace("°", "")
    s = s.replace("\\%", "").replace("%", "")
    s = _strip_text_units(s.strip())
    s = re.sub(r"\s+", "", s)
    s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac(\d)\{", r"\\frac{\1}{", s)
    s = re.sub(r"\\frac\{([^{}]*)\}(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", s)
    return s.rstrip(".")


def math_value(s: str) -> Fraction | None:
    r"""Exact value of a normalised integer, decimal, a/b or \frac{a}{b} (signed); None for anything else."""
    x = parse_number(s)
    if x is not None:
        return x
    m = (re.fullmatch(r"([+-]?)\\frac\{([+-]?\d+)\}\{([+-]?\d+)\}", s)
         or re.fullmatch(r"([+-]?)([+-]?\d+)/([+-]?\d+)", s))
    if m and int(m.group(3)) != 0:
        x = Fraction(int(m.group(2)), int(m.group(3)))
        return -x if m.group(1) == "-" else x
    return None


def _split_top(s: str) -> tuple[str, list[str]] | None:
    """("()", items) for a bracketed tuple/interval "(a,b)" split at top-level commas; None otherwise."""
    if len(s) < 2 or s[0] not in "([" or s[-1] not in ")]":
        return None
    items, depth, cur = [], 0, ""
    for ch in s[1:-1]:
        depth += (ch in "([{") - (ch in ")]}")
        if depth < 0:
            return None
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    return (s[0] + s[-1], items + [cur]) if depth == 0 else None


def math_equal(pred, gold) -> bool:
    """Normaliser verdict: equal text after `normalize_math`, or equal exact values, or equal elementwise
    tuples/intervals with the same brackets. Anything it cannot read is unequal (never a false positive)."""
    if pred is None or gold is None:
        return False
    a, b = normalize_math(pred), normalize_math(gold)
    if not a or not b:
        return False
    if a == b:
        return True
    va, vb = math_value(a), math_value(b)
    if va is not None and vb is not None:
        return va == vb
    ta, tb = _split_top(a), _split_top(b)
    if ta and tb and ta[0] == tb[0] and len(ta[1]) == len(tb[1]) > 1:
        return all(math_equal(x, y) for x, y in zip(ta[1], tb[1]))
    return False


def _math_verify_equal(pred: str, gold: str) -> bool:
    try:
        from math_verify import parse, verify
    except ImportError:
        return False
    try:
        return bool(verify(parse("\\boxed{" + gold + "}"), parse("\\boxed{" + pred + "}")))
    except Exception:  # math_verify timeouts (signals) and parser failures count as "not equal"
        return False


@register_task
class MathTask(_FileTask):
    """MATH / OpenMathInstruct: the answer is the last \\boxed{} of the solution (or expected_answer)."""

    name = "math"
    splits = ()  # whatever splits the files / hub dataset have
    default_hub_id = "DigitalLearningGmbH/MATH-lighteval"

    def __init__(self, files: Mapping[str, str] | None = None, hub_id: str | None = None,
                 hub_config: str | None = None, use_math_verify: bool = True):
        super().__init__(files, hub_id, hub_config)
        self.use_math_verify = use_math_verify

    def _parse(self, label, i, row, split):
        q = _field(label, i, row, "problem")
        sol_field = "solution" if row.get("solution") is not None else "generated_solution"
        sol = _field(label, i, row, sol_field, required=False)
        ans = _field(label, i, row, "expected_answer", required=False)
        if ans is None:
            if sol is None:
                raise DataError(f"{label}: row {i}: field 'solution' is missing or empty (and no expected_answer)")
            ans = last_boxed(sol)
            if not ans:
                raise DataError(f"{label}: row {i}: field 'solution' has no \\boxed{{}} answer "
                                "(and no expected_answer)")
        sols = ()
        if sol is not None:
            demo = self._layout(sol)
            if last_boxed(demo) is None:
                demo += f" The answer is \\boxed{{{ans}}}."
            sols = (demo,)
        return TaskProblem(self._id(label, i, row, split), q, ans, sols, raw=row)

    def scoring_identity(self) -> dict:
        return {**super().scoring_identity(), "math_verify": self.use_math_verify}

    def extract(self, completion: str) -> str | None:
        return last_boxed(completion) or None

    def is_correct(self, extracted, problem: TaskProblem) -> bool:
        if extracted is None:
            return False
        if math_equal(extracted, problem.answer):
            return True
        return self.use_math_verify and _math_verify_equal(str(extracted), str(problem.answer))

