"""Scripted adversaries: completions written without solving anything, scored by the synthetic task's own
reward, and their exact pass@k, the floor under every score a study reports (docs/DESIGN.md §4, "Guessing must
not pay").

Each adversary is a random completion writer with a known distribution, registered by name:
  boxed_guess    "The answer is \\boxed{r}." with r uniform over the world's value range [2, max_value];
  copy_number    the same with r one of the question's numbers (uniform over the distinct ones);
  random_chain   true equations on the question's numbers in the order the story tells them, each with an
                 operation drawn uniformly among those whose result stays in [2, max_value] (a number
                 where none does is skipped), the last result boxed.
`success(problem, world)` is an adversary's exact probability of a correct completion under the world's
scoring, found by enumerating its completions through the task's reward (`random_chain` prunes a prefix
whose equations already fail the steps check, or merges equal running values under "answer" scoring);
`sample` draws one completion, so a test can score sampled guesses the way a model's samples are scored.
pass@k of an adversary is then exact: 1 − (1 − p)^k per problem, averaged over the split.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from rlearly.config import WorldConfig
from rlearly.data import graph
from rlearly.data.math_world import MathWorld, Problem, reward
from rlearly.errors import ConfigError

OPS = ("+", "-", "*", "/")


@dataclass(frozen=True)
class Adversary:
    name: str
    description: str
    success: Callable[[Problem, WorldConfig], float]  # exact probability that one completion is correct
    sample: Callable[[Problem, WorldConfig, np.random.Generator], str]  # one completion


ADVERSARIES: dict[str, Adversary] = {}


def register(adv: Adversary) -> Adversary:
    ADVERSARIES[adv.name] = adv
    return adv


def get_adversary(name: str) -> Adversary:
    if name not in ADVERSARIES:
        raise ConfigError(f"unknown adversary {name!r}; known: {', '.join(ADVERSARIES)}")
    return ADVERSARIES[name]


def _boxed(r: int) -> str:
    return f"The answer is \\boxed{{{r}}}."


def _numbers(problem: Problem) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", problem.question)]


def _guess_success(values, problem: Problem, world: WorldConfig) -> float:
    values = list(values)
    return sum(reward(_boxed(r), problem, world.scoring) for r in values) / len(values)


register(Adversary(
    "boxed_guess", "a boxed integer drawn uniformly from the world's value range",
    lambda p, w: _guess_success(range(2, w.max_value + 1), p, w),
    lambda p, w, rng: _boxed(int(rng.integers(2, w.max_value + 1)))))

register(Adversary(
    "copy_number", "a boxed number copied from the question (uniform over its distinct numbers)",
    lambda p, w: _guess_success(sorted(set(_numbers(p))), p, w),
    lambda p, w, rng: _boxed(int(rng.choice(sorted(set(_numbers(p))))))))


def _feasible(v: int, x: int, max_value: int) -> list[str]:
    """Operations whose result v op x is an integer in the world's range [2, max_value]."""
    return [op for op in OPS if (op != "/" or v % x == 0) and 2 <= graph.apply(v, op, x) <= max_value]


def _render_chain(claims) -> str:
    return " ".join(f"{a} {op} {b} = {c}." for a, op, b, c in claims) + " " + _boxed(claims[-1][3] if claims else 0)


def _chain_sample(problem: Problem, world: WorldConfig, rng: np.random.Generator) -> str:
    nums = _numbers(problem)
    v, claims = nums[0], []
    for x in nums[1:]:
        ops = _feasible(v, x, world.max_value)
        if ops:
            op = ops[int(rng.integers(len(ops)))]
            claims.append((v, op, x, graph.apply(v, op, x)))
            v = claims[-1][3]
    return _render_chain(claims) if claims else _boxed(v)


def _chain_success(problem: Problem, world: WorldConfig) -> float:
    nums, mv = _numbers(problem), world.max_value
    if world.scoring == "answer":  # the outcome depends on the running value alone: merge equal values
        dist = {nums[0]: 1.0}
        for x in nums[1:]:
            new: dict[int, float] = {}
            for v, p in dist.items():
                ops = _feasible(v, x, mv) or [None]
                for op in ops:
                    w = v if op is None else graph.apply(v, op, x)
                    new[w] = new.get(w, 0.0) + p / len(ops)
            dist = new
        return sum(p * reward(_boxed(v), problem, "answer") for v, p in dist.items())

    def walk(i: int, v: int, claims: list, p: float) -> float:
        if i == len(nums):
            text = _render_chain(claims) if claims else _boxed(v)
            return p * reward(text, problem, world.scoring)
        ops = _feasible(v, nums[i], mv)
        if not ops:
            return walk(i + 1, v, claims, p)
        total = 0.0
        for op in ops:  # a prefix whose equations are not the graph's steps fails whatever follows
            c = (v, op, nums[i], graph.apply(v, op, nums[i]))
            if graph.follows_prefix(claims + [c], problem.spec):
                total += walk(i + 1, c[3], claims + [c], p / len(ops))
        return total

    return walk(1, nums[0], [], 1.0)


register(Adversary(
    "random_chain", "true equations on the question's numbers in order, each with a random in-range operation",
    _chain_success, _chain_sample))


def success_probs(world: WorldConfig, split: str, adversary: str, max_problems: int | None = None) -> np.ndarray:
    """Exact per-problem probability that one completion of `adversary` is correct on `split`."""
    adv = get_adversary(adversary)
    problems = MathWorld(world).split(split)
    problems = problems[:max_problems] if max_problems else problems
    return np.array([adv.success(p, world) for p in problems])


def floor(world: WorldConfig, splits, ks, max_problems: int | None = None) -> pd.DataFrame:
    """Exact pass@k of every adversary on every split: rows (split, adversary, k, pass_at_k). The first
    `max_problems` problems of each split (the ones a study evaluates); all of them by default."""
    rows = []
    for split in splits:
        for name in ADVERSARIES:
            p = success_probs(world, split, name, max_problems)
            rows += [dict(split=split, adversary=name, k=int(k), pass_at_k=float(np.mean(1 - (1 - p) ** int(k))))
                     for k in ks]
    return pd.DataFrame(rows, columns=["split", "adversary", "k", "pass_at_k"])
