"""The claims' verdicts as people read them: a table (styled, the verdict coloured), the rules table, what the
intervals resample, the headline, plain text for a terminal, and the numbers results.json records."""
from __future__ import annotations

import pandas as pd

from rlearly.results.analysis import fmt_tokens
from rlearly.results.claims.rules import CLAIMS, CONTRADICTED, HELD, NO_EFFECT, NOT_MEASURED, PARTLY, VERDICTS, Claim


def claims_frame(cls: list[Claim], power: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per claim; with the design's power table (rlearly.results.power), what this design could detect:
    the chance the rule holds when the paper's claim is true (power) and when it is false (size)."""
    rows = pd.DataFrame([{"#": c.id, "claim (docs/PAPER.md §8)": c.claim, "parts": c.test, "paper": c.paper,
                          "this study": c.measured, "guessing floor": c.floor, "verdict": c.verdict, "why": c.why}
                         for c in cls]).set_index("#")
    if power is None or power.empty:
        return rows
    from rlearly.results.power import claim_power

    p = claim_power(power).set_index("claim")
    said = {c: ("not testable at this design: " + r.untestable if r.untestable else
                f"{r.power:.2f} (size {r.size:.3f}{'' if r.fit else '; not fit'})") for c, r in p.iterrows()}
    return rows.assign(**{"power at this design": [said.get(i, "—") for i in rows.index]})


def rules_frame() -> pd.DataFrame:
    """One row per claim part: its statistic, null, tolerance and interval method (the summary's header)."""
    return pd.DataFrame([{"#": u.id, "part": r.part, "statistic": r.statistic, "null": r.null,
                          "tolerance": r.tolerance, "interval": r.interval}
                         for u in CLAIMS.values() for r in u.rules]).set_index(["#", "part"])


_VERDICT_COLORS = {HELD: "#d9f2d9", PARTLY: "#fff2cc", CONTRADICTED: "#f8d7da", NO_EFFECT: "#eeeeee",
                   NOT_MEASURED: "#ffffff"}


def _styled(df: pd.DataFrame, verdict_col: str | None = "verdict"):
    st = (df.style.set_properties(**{"text-align": "left", "white-space": "normal", "vertical-align": "top"})
          .set_table_styles([{"selector": "th", "props": [("text-align", "left")]}]))
    if verdict_col:
        st = st.map(lambda v: f"background-color: {_VERDICT_COLORS.get(v, 'transparent')}", subset=[verdict_col])
    return st


def claims_table(cls: list[Claim], power: pd.DataFrame | None = None):
    """claims_frame styled for reading: full text, left-aligned, the verdict cell coloured."""
    return _styled(claims_frame(cls, power))


def rules_table():
    return _styled(rules_frame(), None)


def intervals_note(tables: dict) -> str:
    """What the study's intervals resample, in one sentence (the summary's second line)."""
    p = tables["passk"]
    if p.empty:
        return "No evaluations."
    units = p.groupby(["method", "parent_tokens"])[["pretrain_seed", "seed"]].apply(lambda g: len(g.drop_duplicates()))
    runs = p.groupby(["method", "parent_tokens"])["pretrain_seed"].nunique()
    multi = units[units > 1]
    if multi.empty:
        return ("One seed everywhere: every interval covers problems (or documents) only, not seeds. One "
                "pretraining run: pretraining seeds are not in any interval (compare the study run with --seed 1).")
    where = "; ".join(f"{m} at {fmt_tokens(t)} " + (f"({n} units from {runs[m, t]} pretraining runs)"
                                                   if runs[m, t] > 1 else f"({n} seeds)") for (m, t), n in multi.items())
    tail = ("" if runs.max() > 1 else " One pretraining run per arm: pretraining seeds are not in any interval "
            "(compare the study run with --seed 1).")
    return (f"Several seeds: {where}: contrasts there resample those units (pretraining runs and branch seeds) and "
            f"the problems. Everywhere else one seed: the interval covers problems only.{tail}")


COUNT_KEYS = {HELD: "claims_held", PARTLY: "claims_partly_held", CONTRADICTED: "claims_contradicted",
              NO_EFFECT: "claims_no_effect", NOT_MEASURED: "claims_not_measured"}  # results.json's verdict counts


def headline(cls: list[Claim]) -> str:
    """'3 of 10 claims held (2 partly held, 1 contradicted, ...)': the summary's first line."""
    return headline_of_counts({v: sum(c.verdict == v for c in cls) for v in VERDICTS})


def headline_of_counts(counts: dict[str, int]) -> str:
    """headline's sentence from the number of claims with each verdict (the index reads them from results.json)."""
    rest = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if counts[v] and v != HELD)
    return f"{counts[HELD]} of {sum(counts.values())} claims held" + (f" ({rest})" if rest else "")


def claims_text(cls: list[Claim], tables: dict) -> str:
    """The verdicts as plain text for a terminal (`rlearly study claims`): the headline, what the intervals
    resample, then each claim's verdict, its parts' verdicts and values, and its guessing floor."""
    lines = [headline(cls), intervals_note(tables)]
    for c in cls:
        lines += ["", f"claim {c.id}: {c.verdict} - {c.claim}"]
        lines += [f"  {p.rule.part}: {p.verdict}" + (f" | {p.value}" if p.value else "") + (f" ({p.why})" if p.why else "")
                  for p in c.parts]
        lines.append(f"  floor: {c.floor}")
    return "\n".join(lines)


def claims_results(cls: list[Claim]) -> dict:
    verdicts = [c.verdict for c in cls]
    counts = {"claims_measured": sum(v != NOT_MEASURED for v in verdicts),
              **{key: verdicts.count(v) for v, key in COUNT_KEYS.items()}}
    return counts | {f"claim{c.id}.{k}": v for c in cls for k, v in c.stats.items()}
