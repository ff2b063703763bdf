"""The `math` task: MATH / OpenMathInstruct rows {"problem", "solution" (answer in the last \\boxed{})} or
{"problem", "generated_solution"?, "expected_answer"}, answers compared as LaTeX (math-verify when installed)."""
from __future__ import annotations

import re
from fractions import Fraction
from typing import Mapping

from rlearly.errors import DataError
from rlearly.tasks.answers import last_boxed, parse_number
from rlearly.tasks.base import TaskProblem, _field, _FileTask, register_task


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


