"""The `gsm8k` task: GSM8K rows {"question", "answer" ending in "#### N"}, from a local .jsonl/.json/.parquet file
or a hub id through `datasets.load_dataset`. A rationale's "#### N" line becomes "The answer is \\boxed{N}." (its
"<<48/2=24>>" calculator notes are dropped), the synthetic task's graded format."""
from __future__ import annotations

import re

from rlearly.errors import DataError
from rlearly.tasks.answers import boxed_contents, number_text, parse_number
from rlearly.tasks.base import TaskProblem, _field, _FileTask, register_task

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


