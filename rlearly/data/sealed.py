"""The sealed split: test-like problems that no pretraining run within BOUND has seen, made once, read by one frozen
study (issue 37).

Why. The `test` split has been read by many runs, and settings were chosen while reading it; it can no longer judge a
frozen design without doubt. `test` and `hard` keep their names and problems (every result cached under them stays
valid); `sealed` is a fresh draw at the test split's difficulty.

Made. Candidates come from the world's own random stream for the split (as every split's), with the test split's
generator. A candidate is dropped when its canonical computation (math_world.problem_key) is a train, dev, test,
hard or dev_hard problem, or one that a pretraining corpus emits: every pretraining run of the given configs, at every
pretraining seed below BOUND's and up to BOUND's tokens (the corpora are seeded, so what they emit can be
enumerated: each step's documents are a prefix of its seeded stream, and drawing until a lower bound on the tokens
fills the batch gives a superset of them). Dropping takes easy problems more often (they repeat more), so the kept
ones fill quotas per stratum (operation count x structure) in the test split's proportions, and the record says the
share dropped in each. The tokenizer's training text is not counted: no model trains on it.

sealed_hard. With the level `rlearly hard-level` chose on dev_hard (the operation count where the main base's
pass@k_max lies in [0.1, 0.5]: rlearly.evaluation.hard_level), the record also holds `hard`: world.n_hard problems
with exactly that many operations, from their own stream, under the same exclusions (dev_hard and sealed too).
Claim 9 judged on the sealed split reads it in place of `hard`, which no model here reaches.

Kept. A record per world family (the world fields that make problems), committed in studies/sealed/<family>.json:
the kept candidates' indices in the stream (the split is regenerated from them), a digest of their keys, the bound,
the configs whose corpora were enumerated (their hashes at seed 0) and the dropped shares. A study whose pretraining
lies beyond it is refused when it would read the split (`check_covered`).

Read once. reports/SEALED.json (tracked) holds the hash of the one study spec that reads `sealed` and the commit it
first ran at; rlearly.study's runner writes it at that study's first run and refuses any other spec. The same spec
again (a replication from a fresh clone) may read it.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np

from rlearly.data.sealed_record import FAMILY_FIELDS, HARD_STREAM, STREAM, family, keys_digest
from rlearly.data.sealed_record import record_path as _record_path
from rlearly.errors import ConfigError, DataError
from rlearly.files import REPO

BOUND = {"pretrain_seeds": 8, "tokens": 10_000_000}  # seeds 0..7, up to 10M tokens: every shipped study's runs
LEDGER = REPO / "reports" / "SEALED.json"


def record_path(world) -> Path:
    """The committed record of the world's sealed split (studies/sealed/<family>.json)."""
    from rlearly.data import sealed_record

    return _record_path(world, sealed_record.RECORDS)
_TOKEN_LOWER_BOUND = re.compile(r"\d|'?[A-Za-z]+|[^\sA-Za-z\d]+")  # a digit, a word ('s with it), a run of
#                                                                   punctuation: each at least one token


def stratum(problem) -> str:
    """A problem's stratum: its operation count and structure (one chain, a sum, a difference)."""
    return f"{problem.n_ops}-{problem.spec.structure}"


def emitted_keys(cfg, seeds: int = BOUND["pretrain_seeds"], tokens: int | None = None, log=None) -> set[str]:
    """A superset of the keys of the math problems the pretraining corpus of `cfg` tells, for pretraining seeds
    0..seeds-1, up to `tokens` (default: cfg's, at most BOUND's). Only the synthetic corpus can be enumerated."""
    from rlearly.data.world import World

    if cfg.data.corpus != "synthetic":
        raise ConfigError(f"data.corpus={cfg.data.corpus!r}: only the synthetic world's corpus can be enumerated")
    tokens = min(tokens or cfg.pretrain.tokens, BOUND["tokens"])
    world = World(cfg.world)
    rows, seq = cfg.pretrain.batch_size, cfg.pretrain.seq_len
    need, steps = rows * (seq + 1), math.ceil(tokens / (rows * seq))
    keys: set[str] = set()
    for seed in range(seeds):
        for step in range(steps):
            rng = np.random.default_rng([seed, 0x5EED, step])  # data.mixture.PretrainBatches' stream
            have = 0
            while have < need:  # as the batch draws, 32 documents at a time; tokens counted from below
                for _ in range(32):
                    emitted: list = []
                    text = world.pretrain_document(rng, emitted)
                    keys.update(emitted)
                    have += len(_TOKEN_LOWER_BOUND.findall(text)) + 1  # + EOS (BOS, if any, is slack)
        if log:
            log(f"seed {seed}: {len(keys):,} problem keys so far")
    return keys


def make(configs, size: int | None = None, log=print, hard_ops: int | None = None) -> dict:
    """The record of a sealed split for the world family of `configs` (every pretraining config a study uses; one
    family), excluding every other split and their corpora within BOUND. With `hard_ops` (the level chosen on
    dev_hard: rlearly.evaluation.hard_level), also `hard`: sealed_hard, world.n_hard problems with exactly that many
    operations, under the same exclusions."""
    from rlearly.data.math_world import MathWorld

    families = {family(c.world) for c in configs}
    if len(families) != 1:
        raise ConfigError(f"the configs span {len(families)} world families; a sealed split belongs to one")
    world = MathWorld(configs[0].world)
    test = world.split("test")
    size = size or len(test)
    excluded = {p.key for s in ("train", "dev", "test", "hard", "dev_hard") for p in world.split(s)}
    in_splits = len(excluded)
    corpora: dict = {}  # configs whose pretraining draws the same documents: one enumeration, at the most tokens
    for c in configs:
        key = json.dumps([dataclasses.asdict(c.world), c.data.corpus, c.pretrain.batch_size, c.pretrain.seq_len],
                         sort_keys=True)
        corpora[key] = max(corpora.get(key, c), c, key=lambda x: x.pretrain.tokens)
    for c in corpora.values():
        log(f"enumerating the corpus of config {c.hash()} ({min(c.pretrain.tokens, BOUND['tokens']):,} tokens, "
            f"{BOUND['pretrain_seeds']} seeds)")
        excluded |= emitted_keys(c, log=log)
    shares = Counter(stratum(p) for p in test)
    quota = {s: round(size * n / len(test)) for s, n in shares.items()}
    quota[max(quota, key=quota.get)] += size - sum(quota.values())  # rounding: the largest stratum absorbs it
    kept, seen, dropped = [], Counter(), Counter()
    for i, p in world.sealed_candidates():
        if i > 200 * size + 100_000:  # checked first: a stratum the corpora cover wholly would never fill
            short = ", ".join(f"{s} {n}" for s, n in quota.items() if n)
            raise DataError(f"could only seal {len(kept)} of {size} problems (short: {short}): the corpora cover "
                            "too much of the world")
        s = stratum(p)
        if quota.get(s, 0) == 0:
            continue
        seen[s] += 1
        if p.key in excluded:
            dropped[s] += 1
            continue
        excluded.add(p.key)  # no repeats within the split either
        kept.append((i, p))
        quota[s] -= 1
        if len(kept) == size:
            break
    hard = _hard(world, hard_ops, excluded) if hard_ops is not None else None
    return {"family": family(configs[0].world), "world": {f: getattr(configs[0].world, f) for f in FAMILY_FIELDS},
            "stream": STREAM, "size": size, "indices": [i for i, _ in kept],
            "keys_sha256": keys_digest(p.key for _, p in kept),
            "bound": BOUND, "configs": sorted({dataclasses.replace(c, seed=0).hash() for c in configs}),
            "excluded_keys": len(excluded) - len(kept), "keys_in_other_splits": in_splits,
            "strata": {s: {"test": shares[s], "kept": sum(stratum(p) == s for _, p in kept), "candidates": seen[s],
                           "dropped": dropped[s], "dropped_share": round(dropped[s] / max(seen[s], 1), 4)}
                       for s in sorted(shares)},
            "dropped_share": round(sum(dropped.values()) / max(sum(seen.values()), 1), 4),
            **({"hard": hard} if hard else {})}


def _hard(world, ops: int, excluded: set) -> dict:
    """sealed_hard: world.n_hard problems with exactly `ops` operations, none in `excluded` (updated)."""
    size, kept, dropped = world.cfg.n_hard, [], 0
    for i, p in world.sealed_candidates(ops):
        if i > 200 * size + 100_000:
            raise DataError(f"could only seal {len(kept)} of {size} problems with {ops} operations")
        if p.key in excluded:
            dropped += 1
            continue
        excluded.add(p.key)
        kept.append((i, p))
        if len(kept) == size:
            break
    return {"ops": ops, "stream": HARD_STREAM, "size": size, "indices": [i for i, _ in kept],
            "keys_sha256": keys_digest(p.key for _, p in kept), "dropped": dropped,
            "dropped_share": round(dropped / (dropped + len(kept)), 4)}


def check_covered(configs) -> dict:
    """The record covering every pretraining config a study would read `sealed` with, or a ConfigError naming the
    first config it does not cover (a seed at or above the bound, more tokens, or a corpus never enumerated)."""
    records = {}
    for c in configs:
        f = record_path(c.world)
        if not f.is_file():
            raise ConfigError(f"eval split 'sealed': this world has no sealed split ({f}); `rlearly seal <study>` makes "
                              "it, before any evaluation")
        record = records.setdefault(f, json.loads(f.read_text()))
        base = dataclasses.replace(c, seed=0)
        if c.seed >= record["bound"]["pretrain_seeds"] or c.pretrain.tokens > record["bound"]["tokens"] or \
                base.hash() not in record["configs"]:
            raise ConfigError(f"eval split 'sealed': pretraining config {c.hash()} (seed {c.seed}, "
                              f"{c.pretrain.tokens:,} tokens) lies beyond what {f.name} excludes (seeds < "
                              f"{record['bound']['pretrain_seeds']}, ≤ {record['bound']['tokens']:,} tokens, configs "
                              f"{', '.join(record['configs'])})")
    return records
