"""GSM-like arithmetic word problems with verifiable answers and many valid solutions (docs/DESIGN.md §4).

Owns: the problem generator (a small computation graph over named quantities told as a story), the
train/dev/test/hard splits (disjoint by canonical computation), the graded solutions (all distinct demos of a
problem: step orders x operand orders x phrasings, ending in `\\boxed{N}`), pretraining documents (same
steps, several closing styles, only `format_fraction` of them graded), answer extraction and the reward.

A problem's structure is one of
  chain: one person's count through n_ops events (+, -, *, exact /);
  sum:   2 or 3 people, each with their own events, combined by addition at the end;
  diff:  2 people, "how many more does A have than B" at the end (A may be told first or second).
n_ops counts every arithmetic operation, the final combine included; every person has at least one event
(so a count is never used as told). Every quantity and every intermediate result lies in [2, max_value]
(never 0 or 1, which keeps the stories grammatical).

Scoring (`world.scoring`): "steps" (default) rewards a solution whose equations are the problem's steps in
a valid order with the last result boxed (rlearly.data.graph.verify_steps), so no guess earns it;
"answer" rewards the last boxed integer alone, as GSM8K's graders do (a guess then scores 1 in
max_value − 1). `dev` is for validation during training and for tuning; only a frozen study's final
evaluation reads `test` and `hard` (EVAL_SPLITS).

Text layout of a math document / task example: `question + "\\n" + solution`.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from rlearly.config import WORLD_VERSION, WorldConfig  # noqa: F401  (WORLD_VERSION: config owns it)
from rlearly.data import sealed_record
from rlearly.data.graph import (Chain, Event, Spec, Step, apply, boxed_int, graph_steps, step_sets, topo_orders,  # noqa: F401
                                verify_steps)
from rlearly.errors import DataError
from rlearly.seeds import world_seed

SPLITS = ("train", "dev", "test", "hard", "dev_hard", "sealed", "sealed_hard")
EVAL_SPLITS = ("test", "hard", "sealed", "sealed_hard")  # read only by a frozen study's final evaluation (sealed*:
#                                                          rlearly.data.sealed)
_SPLIT_STREAM = {"train": 0, "test": 1, "hard": 2, "dev": 3}  # each split's random stream (fixed as splits are added;
#                         4 and 6: the sealed splits', 5: dev_hard's, rlearly.data.sealed_record)
DEV_HARD_PER_LEVEL = 100  # dev_hard: problems at each operation count from max_ops to hard_max_ops

NAMES = (("Ava", "f"), ("Emma", "f"), ("Lily", "f"), ("Zoe", "f"), ("Nora", "f"), ("Ella", "f"),
         ("Ruby", "f"), ("Ivy", "f"), ("Lucy", "f"), ("Anna", "f"), ("Ben", "m"), ("Sam", "m"),
         ("Leo", "m"), ("Max", "m"), ("Tom", "m"), ("Jack", "m"), ("Owen", "m"), ("Eli", "m"),
         ("Noah", "m"), ("Finn", "m"))
OBJECTS = ("marbles", "apples", "stickers", "books", "pencils", "cookies", "shells", "stamps", "cards",
           "coins", "toys", "balloons", "candles", "buttons", "eggs")
_PRONOUNS = {"f": ("she", "her"), "m": ("he", "his")}  # (subject, possessive)

# Story sentence and the "After ..." phrase a solution step may use, per operation. {P} is the subject
# slot ("She" / "Then she"), {Q} the possessive slot ("Her" / "Then her"), {p}/{q} their lower-case forms.
EVENT_TEMPLATES = {
    "+": (("{P} buys {n} more {o}.", "buying {n} more"),
          ("{P} finds {n} more {o}.", "finding {n} more"),
          ("{P} gets {n} more {o} from a friend.", "getting {n} more")),
    "-": (("{P} sells {n} {o}.", "selling {n}"),
          ("{P} loses {n} {o}.", "losing {n}"),
          ("{P} gives {n} {o} to a friend.", "giving away {n}")),
    "*": (("{P} buys more {o} until {p} has {n} times as many.", "buying more"),
          ("{Q} {o} grow to {n} times as many.", "the {o} grow")),
    "/": (("{P} splits {q} {o} into {n} equal piles and keeps one pile.", "splitting them into {n} piles"),
          ("{P} puts {q} {o} into {n} equal bags and keeps one bag.", "keeping one of {n} bags")),
}
_OP_WEIGHTS = {"+": 0.3, "-": 0.3, "*": 0.2, "/": 0.2}  # tried in a weighted order; infeasible ones skipped
_OPS = tuple(_OP_WEIGHTS)
_INV_WEIGHTS = 1.0 / np.array(list(_OP_WEIGHTS.values()))
_ADD_MAX = 20  # largest operand of + and -
_START_MAX = 30  # largest starting count (capped by max_value // 2)
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


@dataclass(frozen=True)
class Problem:
    id: str  # "<split>-00017"; pretraining problems: "pretrain-<hash>"
    split: str
    question: str
    answer: int
    n_ops: int
    key: str  # canonical computation (structure + numbers, not names/objects/wording)
    spec: Spec | None = field(default=None, repr=False)  # None for problems from outside this world


def _operands(v: int, op: str, max_value: int) -> list[int]:
    """Operands that keep the result of `v op n` an integer in [2, max_value]."""
    if op == "+":
        return list(range(2, min(_ADD_MAX, max_value - v) + 1))
    if op == "-":
        return list(range(2, min(_ADD_MAX, v - 2) + 1))
    if op == "*":
        return [m for m in range(2, 10) if v * m <= max_value]
    return [d for d in range(2, 10) if v % d == 0 and v // d >= 2]


def _gen_event(rng: np.random.Generator, v: int, max_value: int) -> Event | None:
    # weighted order without replacement (Efraimidis-Spirakis keys u**(1/w)); rng.choice(p=..,
    # replace=False) does the same but is ~20x slower and this runs for every event of every draw
    keys = rng.random(len(_OPS)) ** _INV_WEIGHTS
    for k in np.argsort(-keys):
        op = _OPS[k]
        cands = _operands(v, op, max_value)
        if cands:
            n = cands[int(rng.integers(len(cands)))]
            return Event(op, n, int(rng.integers(len(EVENT_TEMPLATES[op]))))
    return None


def _gen_chain(rng, n_events: int, max_value: int, name: str, gender: str) -> Chain | None:
    v = int(rng.integers(2, max(3, min(_START_MAX, max_value // 2)) + 1))
    start, events = v, []
    for _ in range(n_events):
        ev = _gen_event(rng, v, max_value)
        if ev is None:
            return None
        events.append(ev)
        v = apply(v, ev.op, ev.n)
    return Chain(name, gender, start, tuple(events))


def _gen_spec(rng: np.random.Generator, n_ops: int, max_value: int, min_people: int = 1,
              max_people: int = 3) -> Spec:
    """One random problem with exactly n_ops operations (resampled until every value is in range).
    Every person has at least one event, so n_ops = events + people − 1 >= 2·people − 1."""
    most = min(max_people, (n_ops + 1) // 2, 3)
    if most < min_people:
        raise DataError(f"{n_ops} operations cannot give {min_people} people an event each; raise world.min_ops")
    while True:
        n_chains = int(rng.integers(min_people, most + 1))
        n_events = n_ops - (n_chains - 1)
        counts = 1 + np.bincount(rng.integers(n_chains, size=n_events - n_chains), minlength=n_chains)
        people = np.argsort(rng.random(len(NAMES)))[:n_chains]  # distinct names
        chains = [_gen_chain(rng, int(counts[i]), max_value, *NAMES[people[i]]) for i in range(n_chains)]
        if any(c is None for c in chains):
            continue
        combine = "" if n_chains == 1 else ("+" if n_chains == 3 or rng.random() < 0.5 else "-")
        finals = [c.values()[-1] for c in chains]
        minuend = int(len(finals) > 1 and finals[1] > finals[0])  # a diff asks about the larger count, told first or second
        spec = Spec(OBJECTS[int(rng.integers(len(OBJECTS)))], tuple(chains), combine, minuend)
        if not ((combine == "+" and sum(finals) > max_value) or (combine == "-" and abs(finals[0] - finals[1]) < 2)):
            return spec


def _chain_key(c: Chain) -> str:
    return str(c.start) + "".join(f"{e.op}{e.n}" for e in c.events)


def problem_key(spec: Spec) -> str:
    """Canonical computation: the same numbers told with other names, objects, verbs or telling order share
    a key."""
    keys = [_chain_key(c) for c in spec.chains]
    if spec.combine == "+":
        keys = sorted(keys)  # addition does not care who is told first
    elif spec.combine == "-":
        keys = [keys[i] for i in spec.diff_order]  # minuend first
    return {"": "C", "+": "S", "-": "D"}[spec.combine] + ":" + "|".join(keys)


def spec_answer(spec: Spec) -> int:
    finals = [c.values()[-1] for c in spec.chains]
    if spec.combine == "-":
        x, y = spec.diff_order
        return finals[x] - finals[y]
    return sum(finals)  # one chain: its own count


def spec_n_ops(spec: Spec) -> int:
    return sum(len(c.events) for c in spec.chains) + len(spec.chains) - 1


def _slot(lead: bool, word: str) -> str:
    return f"Then {word}" if lead else word.capitalize()


def question_text(spec: Spec) -> str:
    parts = []
    for ch in spec.chains:
        sub, pos = _PRONOUNS[ch.gender]
        parts.append(f"{ch.name} has {ch.start} {spec.obj}.")
        for j, ev in enumerate(ch.events):
            tpl = EVENT_TEMPLATES[ev.op][ev.template][0]
            parts.append(tpl.format(P=_slot(j > 0, sub), Q=_slot(j > 0, pos), p=sub, q=pos, n=ev.n, o=spec.obj))
    names = [c.name for c in spec.chains]
    if spec.combine == "":
        parts.append(f"How many {spec.obj} does {names[0]} have now?")
    elif spec.combine == "-":
        x, y = spec.diff_order
        parts.append(f"How many more {spec.obj} does {names[x]} have than {names[y]}?")
    else:
        parts.append(f"How many {spec.obj} do {_and(names)} have together?")
    return " ".join(parts)


def _and(names) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def conclusion(spec: Spec, answer: int) -> str:
    names = [c.name for c in spec.chains]
    if spec.combine == "":
        return f"So {names[0]} has {answer} {spec.obj}."
    if spec.combine == "-":
        x, y = spec.diff_order
        return f"So {names[x]} has {answer} more {spec.obj} than {names[y]}."
    return f"So {_and(names)} have {answer} {spec.obj} together."


def graded_closing(spec: Spec, answer: int) -> str:
    """The one machine-checked ending that RL rewards and evaluation reads."""
    return conclusion(spec, answer) + f" The answer is \\boxed{{{answer}}}."


def plain_closings(spec: Spec, answer: int) -> list[str]:
    """Endings of pretraining documents that do NOT use the graded format (web-text styles)."""
    more = "more " if spec.combine == "-" else ""
    return [conclusion(spec, answer), f"Answer: {answer}", f"#### {answer}",
            f"That makes {answer} {more}{spec.obj}."]


def _plans(spec: Spec) -> list[tuple[list[Step], tuple[int, ...]]]:
    """(steps, order) for every valid way to sequence the computation."""
    return [(steps, order) for steps in step_sets(spec) for order in topo_orders(steps)]


def _step_variants(spec: Spec, st: Step, prev: Step | None) -> list[str]:
    """Every sentence that may tell step `st`; [0] is the canonical one."""
    exprs = [f"{st.a} {st.op} {st.b} = {st.c}"]
    if st.op in "+*" and st.a != st.b:  # commutative operand order
        exprs.append(f"{st.b} {st.op} {st.a} = {st.c}")
    o = spec.obj
    if st.kind == "event":
        ch = spec.chains[st.chain]
        after = EVENT_TEMPLATES[st.op][st.event.template][1].format(n=st.b, o=o)
        forms = ["{N} has {e} {o}.", "After " + after + ", {N} has {e} {o}.", "{e}."]
        if prev is not None and prev.chain == st.chain:  # a pronoun only right after the same person
            forms.append(_PRONOUNS[ch.gender][0].capitalize() + " now has {e} {o}.")
        return [f.format(N=ch.name, e=e, o=o) for f in forms for e in exprs]
    if st.kind == "diff":
        forms = [f"{st.names[0]} has {{e}} more {o} than {st.names[1]}.", "The difference is {e}.", "{e}."]
    elif st.kind == "partial":
        forms = [f"{_and(st.names)} have {{e}} {o}.", "{e}."]
    else:
        forms = [f"Together they have {{e}} {o}.", f"{_and(st.names)} have {{e}} {o} in total.", "{e}."]
    return [f.format(e=e) for f in forms for e in exprs]


def _plan_variants(spec: Spec, steps: list[Step], order: tuple[int, ...]) -> list[list[str]]:
    return [_step_variants(spec, steps[k], steps[order[i - 1]] if i else None) for i, k in enumerate(order)]


@lru_cache(maxsize=8192)
def _solutions(spec: Spec, cap: int) -> tuple[str, ...]:
    answer = spec_answer(spec)
    closing = graded_closing(spec, answer)
    plans = _plans(spec)
    variants: dict[int, list[list[str]]] = {}

    def render(p: int, choice) -> str:
        if p not in variants:
            variants[p] = _plan_variants(spec, *plans[p])
        return " ".join([vs[c] for vs, c in zip(variants[p], choice)] + [closing])

    out: dict[str, None] = {}  # insertion-ordered set
    if len(plans) <= cap:
        for p in range(len(plans)):
            render(p, ())  # fill the variant table to count the combinations
        if sum(int(np.prod([len(v) for v in variants[p]])) for p in variants) <= cap:
            for p in range(len(plans)):  # few enough: all of them, in a fixed order
                for choice in itertools.product(*(range(len(v)) for v in variants[p])):
                    out[render(p, choice)] = None
            return tuple(out)
    # Too many: the canonical solution first, then a seeded sample that visits plans round-robin
    # (so step orders are spread evenly) with random phrasing and operand order per step.
    rng = np.random.default_rng(world_seed("solutions", problem_key(spec), question_text(spec)))
    out[render(0, [0] * len(plans[0][1]))] = None
    perm = rng.permutation(len(plans))
    for attempt in range(40 * cap):
        if len(out) >= cap:
            break
        p = int(perm[attempt % len(plans)])
        render(p, ())
        out[render(p, [int(rng.integers(len(v))) for v in variants[p]])] = None
    return tuple(out)


def _random_plan(spec: Spec, rng: np.random.Generator) -> tuple[list[Step], list[int]]:
    """The steps of the computation and one valid order of them, drawn at random."""
    last = int(rng.integers(3)) if spec.combine == "+" and len(spec.chains) == 3 else 2
    steps = graph_steps(spec, last)
    order: list[int] = []
    while len(order) < len(steps):
        ready = [k for k, st in enumerate(steps) if k not in order and all(d in order for d in st.deps)]
        order.append(ready[int(rng.integers(len(ready)))])
    return steps, order


def random_solution_steps(spec: Spec, rng: np.random.Generator) -> str:
    """The steps of one solution drawn at random (a random valid order, phrasing and operand order)."""
    steps, order = _random_plan(spec, rng)
    sents = _plan_variants(spec, steps, tuple(order))
    return " ".join(vs[int(rng.integers(len(vs)))] for vs in sents)


def _merged_expr(a: int, ops: list[tuple[str, int]]) -> str:
    """One equation's left side for a run of events, evaluated left to right ("(11 - 2) * 5")."""
    expr, low = str(a), False  # low: the expression so far ends in a top-level + or -
    for op, b in ops:
        if op in "*/" and low:
            expr, low = f"({expr})", False
        expr, low = f"{expr} {op} {b}", op in "+-" or low
    return expr


def _teacher_steps(spec: Spec, rng: np.random.Generator, merge: float) -> str:
    """One solution as a stronger author writes it: a random valid order in which each event may be
    folded into the previous one of the same person (probability `merge`), so a single equation does
    several operations at once and the intermediate results are left out ("11 - 2 - 6 = 3")."""
    steps, order = _random_plan(spec, rng)
    runs: list[list[int]] = []
    for i, k in enumerate(order):
        st, prev = steps[k], steps[order[i - 1]] if i else None
        if runs and st.kind == "event" and prev.kind == "event" and prev.chain == st.chain and rng.random() < merge:
            runs[-1].append(k)
        else:
            runs.append([k])
    sents = []
    for j, run in enumerate(runs):
        first, st = steps[run[0]], steps[run[-1]]
        if len(run) == 1:
            prev = steps[runs[j - 1][-1]] if j else None
            vs = _step_variants(spec, st, prev)
            sents.append(vs[int(rng.integers(len(vs)))])
            continue
        e = f"{_merged_expr(first.a, [(steps[k].op, steps[k].b) for k in run])} = {st.c}"
        forms = [f"{spec.chains[st.chain].name} has {e} {spec.obj}.", f"{e}."]
        sents.append(forms[int(rng.integers(len(forms)))])
    return " ".join(sents)


@lru_cache(maxsize=8192)
def teacher_solutions(spec: Spec, cap: int, merge: float) -> tuple[str, ...]:
    """Up to `cap` distinct graded solutions in the teacher's style (_teacher_steps), seeded by the problem."""
    closing = graded_closing(spec, spec_answer(spec))
    rng = np.random.default_rng(world_seed("teacher", problem_key(spec), question_text(spec), merge))
    out: dict[str, None] = {}
    for _ in range(40 * cap):
        if len(out) >= cap:
            break
        out[_teacher_steps(spec, rng, merge) + " " + closing] = None
    return tuple(out)


def pick_demo(problem_id: str, solutions) -> str:
    """A problem's single demonstration among its solutions: stable per problem id, 'randomly chosen'."""
    return solutions[world_seed("demo", problem_id) % len(solutions)]


def extract_answer(text: str) -> int | None:
    """The integer inside the LAST `\\boxed{...}` of text; None when there is none or it is not an integer."""
    return boxed_int(text)


def extract_answer_flexible(text: str) -> int | None:
    """Diagnostics only: the boxed answer when a box exists, else the last integer anywhere in text."""
    if _BOXED.search(text):
        return extract_answer(text)
    ints = re.findall(r"-?\d+", text)
    return int(ints[-1]) if ints else None


SCORINGS = ("steps", "answer")


def is_correct(text: str, problem: Problem, scoring: str = "steps") -> bool:
    """"steps": the solution's equations are the problem's steps in a valid order and its last boxed integer
    is their result (graph.verify_steps); "answer": the last boxed integer equals the reference answer."""
    if scoring == "answer":
        return extract_answer(text) == problem.answer
    if scoring != "steps":
        raise DataError(f"unknown scoring {scoring!r}; known: {', '.join(SCORINGS)}")
    if problem.spec is None:
        raise DataError(f"problem {problem.id} has no computation graph to check steps against; use scoring 'answer'")
    return verify_steps(text, problem.spec)


def reward(text: str, problem: Problem, scoring: str = "steps") -> float:
    """Verifiable binary reward: 1.0 iff the text is correct under `scoring` (is_correct)."""
    return 1.0 if is_correct(text, problem, scoring) else 0.0


class MathWorld:
    """Splits, solutions and pretraining documents of the math world, all fixed by cfg.seed."""

    def __init__(self, cfg: WorldConfig):
        self.cfg = cfg
        self._splits: dict[str, list[Problem]] | None = None
        self._reserved: frozenset[str] = frozenset()
        self._sealed: dict[str, list[Problem]] = {}

    def _ops_range(self, hard: bool) -> tuple[int, int]:
        c = self.cfg
        return (c.hard_min_ops, c.hard_max_ops) if hard else (c.min_ops, c.max_ops)

    def make_problem(self, spec: Spec, split: str, pid: str) -> Problem:
        return Problem(pid, split, question_text(spec), spec_answer(spec), spec_n_ops(spec), problem_key(spec), spec)

    def _gen(self, rng: np.random.Generator, hard: bool) -> Spec:
        c = self.cfg
        lo, hi = self._ops_range(hard)
        return _gen_spec(rng, int(rng.integers(lo, hi + 1)), c.max_value, c.min_people, c.max_people)

    def _build_split(self, name: str, size: int, taken: set[str]) -> list[Problem]:
        lo, hi = self._ops_range(name == "hard")
        rng = np.random.default_rng([self.cfg.seed, 0x5B117, _SPLIT_STREAM[name]])
        out, attempts = [], 0
        while len(out) < size:
            attempts += 1
            if attempts > 200 * size + 10_000:
                raise DataError(f"could only make {len(out)} of {size} distinct '{name}' problems with "
                                f"{lo}-{hi} operations and max_value={self.cfg.max_value}; lower the split size")
            spec = self._gen(rng, name == "hard")
            key = problem_key(spec)
            if key in taken:
                continue
            taken.add(key)
            out.append(self.make_problem(spec, name, f"{name}-{len(out):05d}"))
        return out

    def _ensure_splits(self) -> dict[str, list[Problem]]:
        if self._splits is None:
            # Evaluation splits first, so they do not depend on n_train; train then avoids their keys.
            taken: set[str] = set()
            test = self._build_split("test", self.cfg.n_test, taken)
            hard = self._build_split("hard", self.cfg.n_hard, taken)
            dev = self._build_split("dev", self.cfg.n_dev, taken)
            self._reserved = frozenset(p.key for p in test + hard + dev)
            train = self._build_split("train", self.cfg.n_train, taken)
            self._splits = {"train": train, "dev": dev, "test": test, "hard": hard}
        return self._splits

    def split(self, name: str) -> list[Problem]:
        if name not in SPLITS:
            raise DataError(f"unknown math split {name!r}; known: {', '.join(SPLITS)}")
        if name not in self._sealed and name in ("sealed", "sealed_hard", "dev_hard"):  # made apart from the rest
            self._sealed[name] = self._dev_hard() if name == "dev_hard" else self._sealed_split(name)
        return self._sealed[name] if name in self._sealed else self._ensure_splits()[name]

    def levels(self) -> range:
        """The operation counts dev_hard spans: the hardest of train/dev/test to the hardest of `hard`."""
        return range(self.cfg.max_ops, self.cfg.hard_max_ops + 1)

    def sealed_candidates(self, ops: int | None = None):
        """A sealed split's stream of candidates, forever: (index, problem). `ops` None: the test split's difficulty
        (sealed); an operation count: exactly that many (sealed_hard, at the level chosen on dev_hard)."""
        stream = sealed_record.STREAM if ops is None else sealed_record.HARD_STREAM
        return self._candidates(stream, "sealed" if ops is None else "sealed_hard", ops)

    def _candidates(self, stream: int, split: str, ops: int | None):
        rng = np.random.default_rng([self.cfg.seed, 0x5B117, stream])
        c, i = self.cfg, 0
        while True:
            spec = self._gen(rng, False) if ops is None else _gen_spec(rng, ops, c.max_value, c.min_people,
                                                                       c.max_people)
            yield i, self.make_problem(spec, split, f"{split}-{i:06d}")
            i += 1

    def _dev_hard(self) -> list[Problem]:
        """DEV_HARD_PER_LEVEL problems at each of `levels()`, none a train/dev/test/hard problem: where the hard
        split's difficulty is chosen (rlearly.evaluation.hard_level). Tuning reads it as it reads dev; it is not
        kept out of pretraining (that would rename every run), and a corpus with world.hard_fraction > 0 may tell
        some of its problems."""
        taken = {p.key for s in ("train", "dev", "test", "hard") for p in self._ensure_splits()[s]}
        out = []
        for ops in self.levels():
            n = 0
            for i, p in self._candidates(sealed_record.DEV_HARD_STREAM + 100 * ops, "dev_hard", ops):
                if p.key not in taken:
                    taken.add(p.key)
                    out.append(dataclasses.replace(p, id=f"dev_hard-{ops}-{n:04d}"))
                    n += 1
                if n == DEV_HARD_PER_LEVEL:
                    break
                if i > 200 * DEV_HARD_PER_LEVEL + 10_000:
                    raise DataError(f"could only make {n} distinct dev_hard problems with {ops} operations")
        return out

    def _sealed_split(self, name: str) -> list[Problem]:
        """A sealed split regenerated from its committed record (rlearly.data.sealed makes it); an unsealed world,
        or a record whose problems no longer come out of the generator, is a DataError naming the way out."""
        f = sealed_record.record_path(self.cfg)
        if not f.is_file():
            raise DataError(f"this world has no sealed split ({f} is missing); `rlearly seal <study.yaml>` makes it")
        record = json.loads(f.read_text())
        if name == "sealed_hard":
            if "hard" not in record:
                raise DataError(f"{f} has no sealed_hard split: `rlearly hard-level` chooses its difficulty on "
                                "dev_hard, then `rlearly seal` makes it")
            record = record["hard"]
        want, out = set(record["indices"]), []
        for i, p in self.sealed_candidates(record.get("ops") if name == "sealed_hard" else None):
            if i in want:
                out.append(dataclasses.replace(p, id=f"{name}-{len(out):05d}"))
                if len(out) == len(want):
                    break
        if sealed_record.keys_digest(p.key for p in out) != record["keys_sha256"]:
            raise DataError(f"{f}: the world's generator no longer makes the {name} problems it recorded")
        return out

    def reserved_keys(self) -> frozenset[str]:
        """Keys of dev, test and hard problems: never shown in pretraining."""
        self._ensure_splits()
        return self._reserved

    def reward(self, text: str, problem: Problem) -> float:
        """The reward under this world's scoring (world.scoring)."""
        return reward(text, problem, self.cfg.scoring)

    @staticmethod
    def prompt(problem: Problem) -> str:
        """The exact prefix RL and evaluation feed the model."""
        return problem.question + "\n"

    def solutions(self, problem: Problem) -> list[str]:
        """All distinct graded demonstrations (capped at max_solutions), in a fixed order."""
        if problem.spec is None:
            raise DataError(f"problem {problem.id} has no computation graph: solutions exist only for "
                            "problems made by the synthetic math world")
        return list(_solutions(problem.spec, self.cfg.max_solutions))

    def one_demo(self, problem: Problem) -> str:
        """The single SFT demonstration: solutions()[sha256(problem.id) mod count] (stable, 'random')."""
        return pick_demo(problem.id, self.solutions(problem))

    def sample_pretrain_problem(self, rng: np.random.Generator, hard: bool = False) -> Problem:
        """A fresh problem for pretraining; dev, test and hard problems are rejected (train ones may appear)."""
        reserved = self.reserved_keys()
        for _ in range(10_000):
            spec = self._gen(rng, hard)
            key = problem_key(spec)
            if key not in reserved:
                return self.make_problem(spec, "pretrain", f"pretrain-{world_seed(key) % 10**10:010d}")
        raise DataError("every sampled pretraining problem is a dev/test/hard problem; raise world.max_value")

    def document_for(self, problem: Problem, rng: np.random.Generator, graded: bool | None = None) -> str:
        """A pretraining document for `problem`: random solution steps, closing graded with prob.
        format_fraction (or as `graded` says), else one of the plain styles."""
        if graded is None:
            graded = bool(rng.random() < self.cfg.format_fraction)
        if graded:
            closing = graded_closing(problem.spec, problem.answer)
        else:
            styles = plain_closings(problem.spec, problem.answer)
            closing = styles[int(rng.integers(len(styles)))]
        return self.prompt(problem) + random_solution_steps(problem.spec, rng) + " " + closing

    def pretrain_document(self, rng: np.random.Generator, hard: bool = False, emitted: list | None = None) -> str:
        problem = self.sample_pretrain_problem(rng, hard)
        if emitted is not None:
            emitted.append(problem.key)
        return self.document_for(problem, rng)

    def drill_document(self, rng: np.random.Generator, n_facts: int = 8) -> str:
        """Bare arithmetic facts in the solutions' notation ("17 + 5 = 22."), every value in
        [2, max_value]: the basic-math share of a pretraining mix (the paper's has such sources)."""
        facts = []
        while len(facts) < n_facts:
            v = int(rng.integers(2, self.cfg.max_value + 1))
            op = _OPS[int(rng.integers(len(_OPS)))]
            cands = _operands(v, op, self.cfg.max_value)
            if cands:
                n = cands[int(rng.integers(len(cands)))]
                a, b = (n, v) if op in "+*" and rng.random() < 0.5 else (v, n)  # both operand orders
                facts.append(f"{a} {op} {b} = {apply(v, op, n)}.")
        return " ".join(facts)
