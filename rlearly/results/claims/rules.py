"""The verdict machinery of the claims: the verdict vocabulary, a claim's rules and parts, the registry a claim
joins with `register`, the interval tests that turn a statistic's interval into a part's verdict, what a claim reads
of a study (`Study`), and `claims()`, which judges every registered claim on a study.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from rlearly.errors import RlearlyError
from rlearly.results.analysis import contrast, fmt_tokens, k_max, load_tables, seed_mean
from rlearly.study import ROLES

HELD, CONTRADICTED, NO_EFFECT, NOT_MEASURED = "held", "contradicted", "no significant effect", "not measured"
PARTLY = "partly held"

VERDICTS = (HELD, PARTLY, CONTRADICTED, NO_EFFECT, NOT_MEASURED)

FLAT_TOL = 0.02  # claims 1 and 5: "no gain" / "not ahead" means within 2 points of pass@1 (paper: +1-3 pp at 2B)

MIN_SCORED = 0.05  # a branch whose samples carry a scored (boxed) answer less often measures nothing
MEASURABLE = 0.05  # a "no gain" part is judged only where the base's pass@k_max reaches this: below it both sides
#                   score ~0 and an interval of [0, 0] would pass any "no effect" test (the paper's earliest base had
#                   pass@32 14%)
NI_MARGIN = 0.02  # "≥" as non-inferiority: A may trail B by less than this (points of pass@k) and still count
PEAK_TOL = 0.03  # claim 8 "about the same peak": the paper's peaks differ by at most 2.3 pp of pass@1 (PAPER.md §6)
SEALED_SPLITS = {"test": "sealed", "hard": "sealed_hard"}  # what a judgement on the sealed split reads instead
JUMP_SHARE = 1 / 3  # a "large" gain: at least this share of the last checkpoint's (paper: +13 of +40 pp at 4B of 20B)


@dataclass(frozen=True)
class Rule:
    """One part of a claim: what is computed and when it counts as held."""
    part: str
    statistic: str
    null: str
    tolerance: str
    interval: str


@dataclass
class Part:
    rule: Rule
    verdict: str = NOT_MEASURED
    value: str = ""  # the measured statistic
    why: str = ""


@dataclass
class Claim:
    """One claim of docs/PAPER.md §8 beside this study's statistics; `stats` go to results.json (null = not measured)."""
    id: int
    claim: str
    paper: str
    parts: list[Part]
    verdict: str = NOT_MEASURED
    floor: str = ""
    why: str = ""
    stats: dict = field(default_factory=dict)

    @property
    def measured(self) -> str:
        return " · ".join(p.value for p in self.parts if p.value) or "—"

    @property
    def test(self) -> str:
        return "; ".join(p.rule.part for p in self.parts)


@dataclass(frozen=True)
class ClaimUnit:
    id: int
    claim: str
    paper: str  # the paper's corresponding numbers (docs/PAPER.md §1, §5, §6, §8; GSM8K unless said)
    rules: tuple[Rule, ...]
    measure: Callable  # (study, {part name: Part}) -> stats dict; sets the parts' verdicts
    methods: tuple[str, ...] = ()  # main-arm methods it reads (base included)
    roles: tuple[str, ...] = ()  # arm roles it reads
    splits: tuple[str, ...] = ("test",)  # splits its statistics are computed on


CLAIMS: dict[int, ClaimUnit] = {}


def register(id: int, claim: str, paper: str, rules: tuple[Rule, ...], methods=(), roles=(), splits=("test",)):
    """Decorator: the function measures the claim's parts."""
    def wrap(fn):
        bad = set(roles) - set(ROLES)
        if bad:
            raise ValueError(f"claim {id}: unknown role(s) {sorted(bad)}")
        CLAIMS[id] = ClaimUnit(id, claim, paper, rules, fn, tuple(methods), tuple(roles), tuple(splits))
        return fn
    return wrap


# ---------------------------------------------------------------- verdict helpers

def _set(part: Part, verdict: str, why: str = "") -> None:
    part.verdict, part.why = verdict, why


def _interval(low: float, high: float) -> bool:
    return bool(np.isfinite(low) and np.isfinite(high))


def sig_verdict(low: float, high: float) -> str:
    """'A > B': held when the CI lies above 0, contradicted below 0. The claims and the power check
    (rlearly.results.power) decide with these same functions."""
    return NOT_MEASURED if not _interval(low, high) else HELD if low > 0 else CONTRADICTED if high < 0 else NO_EFFECT


def at_most_verdict(low: float, high: float, tol: float) -> str:
    """'A is not more than tol above B': held when the CI lies below +tol, contradicted when it lies above."""
    if not _interval(low, high):
        return NOT_MEASURED
    return HELD if high <= tol else CONTRADICTED if low > tol else NO_EFFECT


def within_verdict(low: float, high: float, tol: float) -> str:
    """'no effect' as an equivalence test: held when the CI lies inside ±tol, contradicted when outside."""
    if not _interval(low, high):
        return NOT_MEASURED
    return HELD if -tol <= low and high <= tol else CONTRADICTED if low > tol or high < -tol else NO_EFFECT


def beyond_verdict(low: float, high: float, tol: float) -> str:
    """'A is more than tol above B': held when the CI lies above +tol, contradicted when it lies at or below it."""
    if not _interval(low, high):
        return NOT_MEASURED
    return HELD if low > tol else CONTRADICTED if high <= tol else NO_EFFECT


def non_inferior_verdict(low: float, high: float, margin: float) -> str:
    """'A ≥ B' as non-inferiority: held when the CI of A − B lies above −margin, contradicted below it."""
    if not _interval(low, high):
        return NOT_MEASURED
    return HELD if low > -margin else CONTRADICTED if high < -margin else NO_EFFECT


def all_verdict(verdicts: list[str]) -> str:
    """A part that must hold at each of several places: held at all; contradicted at any; else no effect."""
    if not verdicts or NOT_MEASURED in verdicts:
        return NOT_MEASURED
    return CONTRADICTED if CONTRADICTED in verdicts else HELD if all(v == HELD for v in verdicts) else NO_EFFECT


def _sig(part: Part, low: float, high: float) -> None:
    v = sig_verdict(low, high)
    _set(part, v, "no interval: the stored samples are missing or do not match the tables" if v == NOT_MEASURED else "")


def _at_most(part: Part, low: float, high: float, tol: float) -> None:
    v = at_most_verdict(low, high, tol)
    _set(part, v, "no interval" if v == NOT_MEASURED else "")


def _within(part: Part, low: float, high: float, tol: float) -> None:
    v = within_verdict(low, high, tol)
    _set(part, v, "no interval" if v == NOT_MEASURED else "")


def _all(part: Part, verdicts: list[str], what: str = "checkpoint") -> None:
    v = all_verdict(verdicts)
    why = {NOT_MEASURED: part.why or f"not measured at every {what}",
           CONTRADICTED: f"contradicted at {verdicts.count(CONTRADICTED)} of {len(verdicts)} {what}s",
           HELD: f"at all {len(verdicts)} {what}s"}.get(v, f"held at {verdicts.count(HELD)} of {len(verdicts)} {what}s")
    _set(part, v, why)


def _non_inferior(part: Part, low: float, high: float, margin: float) -> None:
    v = non_inferior_verdict(low, high, margin)
    _set(part, v, "no interval" if v == NOT_MEASURED else "")


def claim_verdict(parts: list[Part]) -> str:
    got = [p.verdict for p in parts]
    if all(v == NOT_MEASURED for v in got):
        return NOT_MEASURED
    if all(v == HELD for v in got):
        return HELD
    if HELD in got:
        return PARTLY
    if CONTRADICTED in got:
        return CONTRADICTED
    return NO_EFFECT


def _ci(low, high) -> str:
    return f"[{low:+.3f}, {high:+.3f}]" if np.isfinite(low) and np.isfinite(high) else "[no CI]"


def _row(r) -> str:
    """'+0.050 [+0.010, +0.090]', with what the interval resampled where it is more than the problems."""
    several = max(r.get("seeds_a", 1) or 1, r.get("seeds_b", 1) or 1) > 1
    return f"{r['diff']:+.3f} {_ci(r['low'], r['high'])}" + (f" ({r['covers']})" if several else "")


def _series(d: pd.DataFrame) -> str:
    return "; ".join(f"{fmt_tokens(r['parent_tokens'])}: {_row(r)}" for _, r in d.iterrows())


# ---------------------------------------------------------------- what the claims read

class Study:
    """The tables, checkpoints, k_max, arm roles, the adversaries' floor and cached contrasts of one study."""

    def __init__(self, study_root, tables: dict, split: str = "test", every: dict | None = None):
        self.root, self.tables, self.split = study_root, tables, split
        self.every = every if every is not None else tables  # the tables of every arm
        self.passk = tables["passk"]
        main = self.passk[self.passk["split"] == split] if not self.passk.empty else self.passk
        self.methods = set(main["method"]) if not main.empty else set()
        self.ckpts = sorted(main["parent_tokens"].unique()) if not main.empty else []
        self.km = k_max(self.passk, split) if not main.empty else None
        self.solved_any = bool(not main.empty and main["pass_at_k"].max() > 0)
        arms = self.every.get("arms", pd.DataFrame())
        self.roles = {} if arms.empty else {r.role: r.label for r in arms.itertuples() if isinstance(r.role, str)}
        self.floor_table = tables.get("floor", pd.DataFrame())
        self._cache = {}

    def read_split(self, split: str) -> str:
        """The split a claim registered on `split` reads in this judgement: a study judged on `sealed` reads its
        hard claim on `sealed_hard` (made at the level chosen on dev_hard), one judged on `test` reads `hard`."""
        return SEALED_SPLITS.get(split, split) if self.split == "sealed" else split

    def has(self, *methods) -> bool:
        return all(m in self.methods for m in methods)

    def contrast(self, method: str, against: str = "base", k: int = 1) -> pd.DataFrame:
        if (method, against) not in self._cache:
            self._cache[method, against] = contrast(self.root, self.passk, method, against, sorted({1, self.km}),
                                                    self.split)
        d = self._cache[method, against]
        return d[d["k"] == k].sort_values("parent_tokens").reset_index(drop=True)

    def mean_at(self, method: str, k: int) -> pd.Series:
        d = seed_mean(self.passk, self.split)
        return d[(d["method"] == method) & (d["k"] == k)].set_index("parent_tokens")["pass_at_k"]

    def scored_rate(self, method: str, parent_tokens) -> float:
        """Share of a method's samples (all its seeds) at a checkpoint that carry a scored answer."""
        p = self.passk
        r = p[(p["method"] == method) & (p["parent_tokens"] == parent_tokens) & (p["split"] == self.split)]
        return float(r["format_rate"].mean()) if "format_rate" in r and r["format_rate"].notna().any() else math.nan

    def measurable(self, parent_tokens, k: int | None = None) -> bool:
        """Does the base at this checkpoint reach MEASURABLE on pass@k (default k_max)? Below it a flat contrast
        is two zeros, not evidence of no effect."""
        v = self.mean_at("base", k or self.km).get(parent_tokens)
        return v is not None and np.isfinite(v) and v >= MEASURABLE

    def floor(self, split: str, k: int) -> float | None:
        """The best adversary's exact pass@k on `split` (main arm), or None if the table lacks it."""
        f = self.floor_table
        if f.empty:
            return None
        r = f[(f["split"] == split) & (f["k"] == k)]
        return float(r["pass_at_k"].max()) if len(r) else None


# ---------------------------------------------------------------- the claims (docs/PAPER.md §8)

def _missing(unit: ClaimUnit, s: Study) -> str:
    split_methods = {}
    for split in map(s.read_split, unit.splits):
        p = s.every["passk"]
        p = p[(p["split"] == split)] if not p.empty else p
        split_methods[split] = set(p["method"]) if not p.empty else set()
    need = [m for m in unit.methods if m not in s.methods]
    need_roles = [r for r in unit.roles if r not in s.roles]
    need_splits = [sp for sp, ms in split_methods.items() if not ms]
    out = []
    if need:
        out.append("methods " + ", ".join(need))
    if need_roles:
        out.append("arms with role " + ", ".join(need_roles))
    if need_splits:
        out.append("evaluations on " + ", ".join(need_splits))
    return "needs " + "; ".join(out) if out else ""


def _floor_text(unit: ClaimUnit, s: Study) -> tuple[str, dict]:
    parts, stats = [], {}
    for split in map(s.read_split, unit.splits):
        f1, fk = s.floor(split, 1), s.floor(split, s.km) if s.km else None
        if f1 is None or fk is None:
            continue
        parts.append(f"{split}: pass@1 {f1:.3f}, pass@{s.km} {fk:.3f}")
        stats |= {f"floor.{split}.pass1": f1, f"floor.{split}.passkmax": fk}
    return "; ".join(parts) or "not computed", stats


def claims(study_root, tables: dict | None = None, split: str = "test") -> list[Claim]:
    """Every registered claim with its parts' statistics and verdicts. `tables`: the main arm's (default
    load_tables); arms' tables are read from every arm's (load_tables(arm=None))."""
    tables = tables if tables is not None else load_tables(study_root)
    every = load_tables(study_root, arm=None)
    s = Study(study_root, tables, split, every)
    out = []
    for unit in CLAIMS.values():
        parts = {r.part: Part(r) for r in unit.rules}
        cl = Claim(unit.id, unit.claim, unit.paper, list(parts.values()))
        cl.floor, floor_stats = _floor_text(unit, s)
        need = _missing(unit, s)
        if need:
            cl.why = need
        else:
            try:
                cl.stats = unit.measure(s, parts) or {}
            except RlearlyError as e:  # its tables lack what a part reads (e.g. an arm without training metrics)
                for p in cl.parts:
                    _set(p, NOT_MEASURED, p.why or str(e))
            if not s.solved_any:  # every interval is [0, 0]: nothing to judge
                for p in cl.parts:
                    _set(p, NOT_MEASURED)
                cl.why = "no checkpoint or branch solved any problem (pass@k = 0 everywhere)"
            else:
                cl.why = "; ".join(f"{p.rule.part}: {p.verdict}" + (f" ({p.why})" if p.why else "") for p in cl.parts)
        cl.verdict = claim_verdict(cl.parts)
        cl.stats = {**cl.stats, **floor_stats}
        out.append(cl)
    return out
