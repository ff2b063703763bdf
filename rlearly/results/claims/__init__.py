"""The paper's claims (docs/PAPER.md §8) beside what a study measured: each claim is one registered unit that declares
what it needs (methods, arm roles, splits) and the rule of each of its parts (statistic, null, tolerance,
interval method), and computes every part's verdict from the study's tables and sample store, never from
wording.

A part is *held* (the interval lies where the claim says), *contradicted* (it lies on the other side),
*no significant effect* (neither) or *not measured* (the study lacks the runs, a branch never produced a
scored answer, or no interval could be computed). A claim is held only when every part is measured and
held; *partly held* when some part is held; *contradicted* when none is held and some part is
contradicted; *no significant effect* when the measured parts show none; *not measured* when nothing was.
Beside each claim stands the floor: what scripted guessing earns on the splits it reads (rlearly.evaluation.adversaries).
"""
from rlearly.results.claims import paper  # registers the ten claims
from rlearly.results.claims.render import (COUNT_KEYS, claims_frame, claims_results, claims_table, claims_text,
                                           headline, headline_of_counts, intervals_note, rules_frame, rules_table)
from rlearly.results.claims.rules import (CLAIMS, CONTRADICTED, FLAT_TOL, HELD, MIN_SCORED, NO_EFFECT, NOT_MEASURED,
                                          PARTLY, ROLES, VERDICTS, Claim, ClaimUnit, Part, Rule, Study, claim_verdict,
                                          claims, register)

__all__ = ["CLAIMS", "CONTRADICTED", "COUNT_KEYS", "FLAT_TOL", "HELD", "MIN_SCORED", "NOT_MEASURED", "NO_EFFECT",
           "PARTLY", "ROLES", "VERDICTS", "Claim", "ClaimUnit", "Part", "Rule", "Study", "claim_verdict", "claims",
           "claims_frame", "claims_results", "claims_table", "claims_text", "headline", "headline_of_counts",
           "intervals_note", "paper", "register", "rules_frame", "rules_table"]
