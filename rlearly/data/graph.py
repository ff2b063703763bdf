"""A math problem's computation graph, and the check that a written solution follows it (docs/DESIGN.md §4).

Owns: the graph's types (`Spec`: people's chains of events and the combine the question asks for; `Chain`,
`Event`), `Step` (one operation of the graph: an event of a person, or a combine of people's counts), the steps
of a problem and every order of them that respects their dependencies, the parser of a solution's
equations, and `verify_steps`, the scorer of the world's "steps" scoring mode.

A solution is correct when its equations, read left to right, are exactly the graph's steps in an order
the dependencies allow: each equation arithmetically true, each one an operation of the story (an event
applied to that person's current count, or the combine the question asks for; + and * in either operand
order), none missing and none extra, and the last boxed integer equal to the last result. An equation of
several operations ("(11 - 2) * 5 = 45", a stronger author's folded steps) counts as its operations in
evaluation order. A guess, a copied number or a chain of true equations with random operations is not
such a solution, whatever its boxed answer: this is what makes the world's scores something guessing
cannot earn (iGSM, "Physics of Language Models 2.1", checks every step the same way).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_ARITH_CHARS = set("0123456789+-*/() ")
_RESULT = re.compile(r"\s*(-?\d+)")
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_INT = re.compile(r"[+-]?\d+")
_COMMUTATIVE = "+*"


@dataclass(frozen=True)
class Event:
    op: str  # one of + - * /
    n: int  # operand
    template: int  # index into EVENT_TEMPLATES[op]: story wording only, not part of the problem key


@dataclass(frozen=True)
class Chain:
    name: str
    gender: str  # "f" / "m", for pronouns
    start: int
    events: tuple[Event, ...]

    def values(self) -> list[int]:
        vals = [self.start]
        for ev in self.events:
            vals.append(apply(vals[-1], ev.op, ev.n))
        return vals


@dataclass(frozen=True)
class Spec:
    """The computation graph of a problem with its story choices (names, object)."""

    obj: str  # plural noun shared by every person in the problem
    chains: tuple[Chain, ...]  # in the order the story tells them
    combine: str  # "" (one chain), "+" (sum of all chains), "-" (one chain minus the other)
    minuend: int = 0  # a diff: the chain the question asks "how many more" about (told first or second)

    @property
    def structure(self) -> str:
        return {"": "chain", "+": "sum", "-": "diff"}[self.combine]

    @property
    def diff_order(self) -> tuple[int, int]:
        """A diff's (minuend, subtrahend) chain indices."""
        return self.minuend, 1 - self.minuend


@dataclass(frozen=True)
class Step:
    kind: str  # "event", "partial" (first sum of three people), "sum", "diff"
    chain: int  # index of the person for an event, -1 for a combine
    a: int
    op: str
    b: int
    c: int
    deps: tuple[int, ...]  # indices of steps whose results this one uses
    names: tuple[str, ...] = ()  # people a combine step is about
    event: Event | None = None


def apply(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b if op == "*" else a // b


def graph_steps(spec: Spec, last: int) -> list[Step]:
    """The graph's steps; for a 3-person sum, `last` is the person added after the other two."""
    steps, tail, finals = [], {}, []
    for i, ch in enumerate(spec.chains):
        vals = ch.values()
        for j, ev in enumerate(ch.events):
            deps = (len(steps) - 1,) if j else ()
            steps.append(Step("event", i, vals[j], ev.op, ev.n, vals[j + 1], deps, event=ev))
        tail[i] = (len(steps) - 1,) if ch.events else ()
        finals.append(vals[-1])
    names = tuple(c.name for c in spec.chains)
    if spec.combine == "-":
        x, y = spec.diff_order
        steps.append(Step("diff", -1, finals[x], "-", finals[y], finals[x] - finals[y], tail[x] + tail[y],
                          (names[x], names[y])))
    elif spec.combine == "+" and len(finals) == 2:
        steps.append(Step("sum", -1, finals[0], "+", finals[1], sum(finals), tail[0] + tail[1], names))
    elif spec.combine == "+":
        x, y = [i for i in range(3) if i != last]
        part = finals[x] + finals[y]
        steps.append(Step("partial", -1, finals[x], "+", finals[y], part, tail[x] + tail[y], (names[x], names[y])))
        steps.append(Step("sum", -1, part, "+", finals[last], part + finals[last], (len(steps) - 1,) + tail[last],
                          names))
    return steps


def step_sets(spec: Spec) -> list[list[Step]]:
    """The graph's steps once per way to associate the combine (three ways for a 3-person sum, else one)."""
    lasts = range(3) if spec.combine == "+" and len(spec.chains) == 3 else [2]
    return [graph_steps(spec, last) for last in lasts]


def topo_orders(steps: list[Step], cap: int = 256) -> list[tuple[int, ...]]:
    """Every order of the steps that respects their dependencies (at most `cap`), lexicographic."""
    out: list[tuple[int, ...]] = []

    def grow(prefix: list[int]):
        if len(out) >= cap:
            return
        if len(prefix) == len(steps):
            out.append(tuple(prefix))
            return
        for k, st in enumerate(steps):
            if k not in prefix and all(d in prefix for d in st.deps):
                grow(prefix + [k])

    grow([])
    return out


# ---------------------------------------------------------------- reading a solution's equations

class _Parser:
    """Integers, + - * / and parentheses with the usual precedence; each operation is recorded as
    (a, op, b, result) in evaluation order. Division must be exact. Raises ValueError on anything else."""

    def __init__(self, text: str):
        self.toks = re.findall(r"\d+|[-+*/()]", text)
        if "".join(self.toks) != text.replace(" ", ""):
            raise ValueError(text)
        self.i, self.ops = 0, []

    def parse(self) -> int:
        v = self._sum()
        if self.i != len(self.toks):
            raise ValueError("trailing tokens")
        return v

    def _peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else None

    def _sum(self) -> int:
        v = self._product()
        while self._peek() in ("+", "-"):
            op = self.toks[self.i]
            self.i += 1
            v = self._record(v, op, self._product())
        return v

    def _product(self) -> int:
        v = self._atom()
        while self._peek() in ("*", "/"):
            op = self.toks[self.i]
            self.i += 1
            v = self._record(v, op, self._atom())
        return v

    def _atom(self) -> int:
        t = self._peek()
        self.i += 1
        if t == "(":
            v = self._sum()
            if self._peek() != ")":
                raise ValueError("unclosed parenthesis")
            self.i += 1
            return v
        if t is None or not t.isdigit():
            raise ValueError(f"expected a number, got {t!r}")
        return int(t)

    def _record(self, a: int, op: str, b: int) -> int:
        if op == "/" and (b == 0 or a % b):
            raise ValueError("inexact division")
        c = apply(a, op, b)
        self.ops.append((a, op, b, c))
        return c


def equations(text: str) -> list[tuple[int, str, int, int]] | None:
    """The operations a text's equations claim, in order: each `expression = result` gives the operations of
    its expression in evaluation order. None when an equation cannot be read (no expression, no integer
    after '=', inexact division) or is false (the written result is not the expression's value)."""
    claims = []
    for m in re.finditer("=", text):
        j = m.start()
        while j > 0 and text[j - 1] in _ARITH_CHARS:
            j -= 1
        left = text[j:m.start()].strip()
        res = _RESULT.match(text, m.end())
        if not left or res is None:
            return None
        try:
            p = _Parser(left)
            value = p.parse()
        except ValueError:
            return None
        if not p.ops or value != int(res.group(1)):
            return None  # "12 = 12" claims no operation; "3 + 4 = 8" is false
        claims += p.ops
    return claims


def boxed_int(text: str) -> int | None:
    """The integer inside the last `\\boxed{...}`; None when there is none or it is not an integer."""
    boxes = _BOXED.findall(text)
    inner = boxes[-1].strip() if boxes else ""
    return int(inner) if _INT.fullmatch(inner) else None


def _matches(claim, st: Step) -> bool:
    a, op, b, c = claim
    return op == st.op and c == st.c and ((a, b) == (st.a, st.b) or (op in _COMMUTATIVE and (a, b) == (st.b, st.a)))


def _matched(claims, steps: list[Step]) -> bool:
    """Does each claim, in order, match a step not used yet whose dependencies are done (backtracking where
    two steps read the same numbers)? With as many claims as steps: they are the whole graph, in order."""
    def walk(i: int, done: frozenset) -> bool:
        if i == len(claims):
            return True
        return any(walk(i + 1, done | {k}) for k, st in enumerate(steps)
                   if k not in done and all(d in done for d in st.deps) and _matches(claims[i], st))

    return len(claims) <= len(steps) and walk(0, frozenset())


def follows_prefix(claims, spec: Spec) -> bool:
    """Can these claims begin a correct solution? (Adversaries' exact success probabilities prune with it.)"""
    return any(_matched(claims, steps) for steps in step_sets(spec))


def verify_steps(text: str, spec: Spec) -> bool:
    """The "steps" scoring: the text's equations are the graph's steps in a valid order and the last boxed
    integer is the last result (which is then the answer)."""
    claims = equations(text)
    if not claims or boxed_int(text) != claims[-1][3]:
        return False
    return any(len(claims) == len(steps) and _matched(claims, steps) for steps in step_sets(spec))
