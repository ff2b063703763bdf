"""Task registry: prompts, few-shot formatting, answer extraction and the verifiable reward (docs/DESIGN.md §5).

Owns: `TaskProblem` (one problem of any task), the `Task` base class, the registry (`get_task`), the
one-demo / all-demo views of a task's demonstrations (`demonstrations`), and three tasks:
  synthetic  the embedded math world (rlearly.data.math_world), splits train/dev/test/hard;
  gsm8k      GSM8K rows {"question", "answer" ending in "#### N"}, from a local .jsonl/.json/.parquet
             file or a hub id through `datasets.load_dataset`;
  math       MATH / OpenMathInstruct rows {"problem", "solution" (answer in the last \\boxed{})} or
             {"problem", "generated_solution"?, "expected_answer"}.
Two more are imported when first asked for by name (MODULES): `openmath` (OpenMathInstruct-2 with the paper's
GSM subset, dedup and validation split) and `gsm_symbolic` (reasoning-gym's generated GSM8K variants, [data]
extra). One module per task (rlearly/tasks/<name>.py), the interface in base.py, answer parsing in answers.py;
tasks read rlearly.data, never the other way round.

Every task shares the math world's text layout: zero-shot prompt = question + "\\n"; a few-shot prompt puts
each exemplar as prompt + demo + "\\n\\n" before the problem's own prompt, exactly as
evaluate.fewshot_prefix does; a GSM8K rationale's "#### N" line becomes "The answer is \\boxed{N}." (its
"<<48/2=24>>" calculator notes are dropped), the synthetic task's graded format. The generation protocol
(`Task.multiline`, `Task.max_new_tokens`): by default a solution is ONE line (demos flattened, the sampler
stops at a newline); a multi-line protocol (task.multiline) keeps the lines and stops at EOS.
"""
from __future__ import annotations

import importlib

from rlearly.errors import ConfigError
from rlearly.tasks.answers import boxed_contents, last_boxed, number_text, parse_number
from rlearly.tasks.base import (_TASKS, Task, TaskProblem, _field, _FileTask, _one_line, demonstrations, read_rows,
                                register_task)
from rlearly.tasks.gsm8k import GSM8KTask
from rlearly.tasks.math import MathTask, math_equal, math_value, normalize_math
from rlearly.tasks.synthetic import SyntheticTask

__all__ = ["DEFAULT_TASK", "GSM8KTask", "MODULES", "MathTask", "SyntheticTask", "Task", "TaskProblem", "_FileTask", "_field",
           "_one_line", "boxed_contents", "check_task_config", "config_task", "demonstrations", "get_task", "known_tasks", "last_boxed",
           "math_equal", "math_value", "normalize_math", "number_text", "parse_number", "read_rows", "register_task", "task_class"]

# tasks imported when first asked for by name (their data need the hub or the [data] extra)
MODULES = {"openmath": "rlearly.tasks.openmath", "gsm_symbolic": "rlearly.tasks.gsm_symbolic"}


DEFAULT_TASK = "synthetic"  # config task.name's default; evaluation records older than task names are its


def known_tasks() -> tuple[str, ...]:
    return tuple(sorted({*_TASKS, *MODULES}))


def task_class(name: str) -> type[Task]:
    """A registered task's class (imported on first use); an unknown name lists the known ones."""
    if name not in _TASKS and name in MODULES:
        importlib.import_module(MODULES[name])  # registers it
    if name not in _TASKS:
        raise ConfigError(f"unknown task {name!r}; known tasks: {', '.join(known_tasks())}")
    return _TASKS[name]


def get_task(name: str, **kw) -> Task:
    """A task by name; keyword arguments go to its constructor. Unknown names list the known ones."""
    return task_class(name).build(**kw)


def config_task(tc, world) -> Task:
    """The task a config's branches train on: `tc` a config.TaskConfig, `world` its WorldConfig (for a task made
    from the world), with the generation protocol `tc` sets (task.multiline, task.max_new_tokens)."""
    return task_class(tc.name).from_config(tc, world).with_protocol(tc.multiline or None, tc.max_new_tokens or None)


def check_task_config(tc) -> None:
    """A ConfigError now, naming the problem, when a config's `task` section names an unknown task or asks of it
    what it cannot do (files or multi-line solutions of the synthetic world)."""
    task_class(tc.name).check_config(tc)


