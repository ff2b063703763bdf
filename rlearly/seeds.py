"""Every derivation of a seed from a hash, one home each. Each keeps the formula it was born with: runs, stored
samples and world problems already on disk were drawn with these numbers, so a formula never changes (a golden
test per derivation, tests/test_seeds.py). Python's hash() is salted per process; sha256 is not.

    world_seed(*parts)            the synthetic world's generator: solutions, a stronger author's re-tellings, the
                                  single demonstration of a problem, pretraining problems' ids (64 bits)
    branch_seed(*parts)           a branch's sampling streams: RL's rollouts at a step, its quick validation (63 bits)
    sample_key(problem, index)    one evaluation sample's random stream (with the evaluation's seed), whatever else
                                  shares its batch (63 bits)
    vllm_sample_seed(seed, key)   vLLM's per-request seed for a sample key under a seed (63 bits)
"""
from __future__ import annotations

import hashlib


def _u64(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def world_seed(*parts) -> int:
    """A 64-bit seed from the parts' text joined by \\x1f (rlearly.data.math_world)."""
    return _u64("\x1f".join(map(str, parts)))


def branch_seed(*parts) -> int:
    """A 63-bit seed from the parts' repr() (rlearly.train: rollouts, validation)."""
    return _u64(repr(parts)) >> 1


def sample_key(problem_id: str, sample_index: int) -> int:
    """63-bit key of one evaluation sample's random stream, stable across processes and batch layouts."""
    return _u64(f"{problem_id}\x1f{int(sample_index)}") >> 1


def vllm_sample_seed(seed: int, key: int) -> int:
    """vLLM's per-request seed for sample `key` under `seed` (63 bits, stable across processes)."""
    return _u64(f"{int(seed)}\x1f{int(key)}") >> 1
