"""The `synthetic` task: the embedded math world (rlearly.data.math_world), splits train/dev/test/hard; prompt,
reward and extraction are the world's own."""
from __future__ import annotations

import dataclasses
import json
from typing import Sequence

from rlearly.config import TaskConfig, WorldConfig
from rlearly.data import math_world as mw
from rlearly.errors import ConfigError
from rlearly.tasks.base import Task, TaskProblem, register_task


@register_task
class SyntheticTask(Task):
    """The embedded math world: prompt, reward and extraction are math_world's own."""

    name = "synthetic"
    supports_multiline = False  # the world's solutions are one line
    from_world = True
    splits = mw.SPLITS
    heldout = ("dev", "dev_hard", *mw.EVAL_SPLITS)
    _plan_ids: dict = {}  # (world, split) -> task id, for plans: the world's problems are generated once per process

    @classmethod
    def from_config(cls, tc: TaskConfig, world) -> "SyntheticTask":
        cls.check_config(tc)
        return cls(world=world)

    @classmethod
    def check_config(cls, tc: TaskConfig) -> None:
        if tc.files or tc.multiline:
            raise ConfigError("task.files and task.multiline: the synthetic task is made from the world.* settings "
                              "(one-line solutions), not from files")

    @classmethod
    def eval_config(cls, files, train: TaskConfig) -> TaskConfig:
        """The world's own one-line protocol, whatever the training task's."""
        return TaskConfig(cls.name, list(files))

    @classmethod
    def plan_protocol(cls, tc: TaskConfig, world, split: str) -> dict:
        """The task id in this world: it fingerprints the problems, and the world needs no data to make them."""
        key = (json.dumps(dataclasses.asdict(world), sort_keys=True), split)
        if key not in SyntheticTask._plan_ids:
            SyntheticTask._plan_ids[key] = cls(world=world).task_id(split)
        return {"task_id": SyntheticTask._plan_ids[key]}

    @classmethod
    def result_name(cls, split: str) -> str:
        return split  # the names of the studies from before tasks existed

    @classmethod
    def node_label(cls) -> str:
        return ""  # idem

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


