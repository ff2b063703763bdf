"""The synthetic world (docs/DESIGN.md §4): ties the math world and the general world into one pretraining source.

Owns: the pretraining mixture dials of the world (math_fraction, hard_fraction; format_fraction lives in
the math world) and the corpus the tokenizer is trained on.
"""
from __future__ import annotations

import numpy as np

from rlearly.config import WorldConfig
from rlearly.data.general_world import GeneralWorld
from rlearly.data.math_world import MathWorld


class World:
    """`.math` (problems, splits, solutions, reward) and `.general` (facts, documents, probes)."""

    def __init__(self, cfg: WorldConfig):
        self.cfg = cfg
        self.math = MathWorld(cfg)
        self.general = GeneralWorld(cfg)

    def pretrain_document(self, rng: np.random.Generator, emitted: list | None = None) -> str:
        """A math document with prob. math_fraction (hard with prob. hard_fraction), else a general one. `emitted`
        collects the canonical key of each math problem told (rlearly.data.sealed)."""
        if rng.random() < self.cfg.math_fraction:
            if rng.random() < self.cfg.drill_fraction:
                return self.math.drill_document(rng)
            return self.math.pretrain_document(rng, hard=bool(rng.random() < self.cfg.hard_fraction), emitted=emitted)
        return self.general.document(rng)

    def tokenizer_corpus(self, n_docs: int, seed: int) -> list[str]:
        """Texts to train the tokenizer on: n_docs pretraining documents, then graded train demos and
        hard-difficulty pretraining problems (so the graded format and long problems are seen even when
        math_fraction or format_fraction is 0), then every probe's context with each option."""
        rng = np.random.default_rng([seed, 0x70C])
        texts = [self.pretrain_document(rng) for _ in range(n_docs)]
        n_math = max(1, n_docs // 10)
        m = self.math
        texts += [m.prompt(p) + m.one_demo(p) for p in m.split("train")[:n_math]]
        texts += [m.document_for(m.sample_pretrain_problem(rng, hard=True), rng, graded=True)
                  for _ in range(n_math)]
        texts += [pr.context + opt for pr in self.general.probes() for opt in pr.options]
        return texts
