"""Answers as text: exact plain numbers (GSM8K's "1,234", "$18", "2.50") and LaTeX \\boxed{} contents (MATH,
OpenMathInstruct), shared by the tasks that score them."""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction

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


