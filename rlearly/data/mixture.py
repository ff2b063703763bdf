"""The pretraining mixture: documents from the synthetic world and/or a real corpus, packed into batches.

The real corpus (`data.corpus`: a file, a hub id, reasoning-gym, or a weighted mixture file) is
rlearly.data.corpora's; `data.corpus_fraction` of the documents come from it, the rest from the world.

Batch `step` is a pure function of (seed, step): its documents are drawn from an RNG seeded with both,
so a resumed run sees exactly the batches an uninterrupted one would, with no iterator state to save.
Every document starts with BOS and ends with EOS; documents are packed back to back and cut into rows.
"""
from __future__ import annotations

import numpy as np
import torch

from rlearly.config import Config
from rlearly.data.corpora import open_corpus
from rlearly.data.world import World
from rlearly.errors import DataError
from rlearly.lm.tokenizer import Tokenizer


class Mixture:
    """Draws pretraining documents: the real corpus with prob. `data.corpus_fraction`, else the world."""

    def __init__(self, cfg: Config, world: World):
        self.world = world
        self.corpus = None if cfg.data.corpus == "synthetic" else open_corpus(cfg.data.corpus, cfg.data.text_field)
        self.corpus_fraction = cfg.data.corpus_fraction if self.corpus else 0.0

    def document(self, rng: np.random.Generator) -> str:
        if self.corpus is not None and rng.random() < self.corpus_fraction:
            return self.corpus.document(rng)
        return self.world.pretrain_document(rng)

    def tokenizer_corpus(self, n_docs: int, seed: int) -> list[str]:
        texts = self.world.tokenizer_corpus(n_docs, seed)
        if self.corpus is not None:
            rng = np.random.default_rng([seed, 7])
            texts += [self.corpus.document(rng) for _ in range(n_docs)]
        return texts


def pack(token_lists, rows: int, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate documents and cut into `rows` rows of seq_len+1; returns inputs and next-token targets."""
    need = rows * (seq_len + 1)
    flat = np.fromiter((t for ids in token_lists for t in ids), dtype=np.int64)
    if flat.size < need:
        raise DataError(f"not enough tokens to fill a batch ({flat.size} < {need})")
    buf = torch.from_numpy(flat[:need]).view(rows, seq_len + 1)
    return buf[:, :-1].contiguous(), buf[:, 1:].contiguous()


class PretrainBatches:
    """batch(step) -> (x, y) of shape (batch_size, seq_len), deterministic in (seed, step)."""

    def __init__(self, cfg: Config, mixture: Mixture, tok: Tokenizer):
        self.cfg, self.mixture, self.tok = cfg, mixture, tok
        self.rows, self.seq_len = cfg.pretrain.batch_size, cfg.pretrain.seq_len

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.cfg.seed, 0x5EED, step])
        need, have, docs = self.rows * (self.seq_len + 1), 0, []
        while have < need:  # documents are ~50-100 tokens: draw in chunks and tokenize in one call
            texts = [self.mixture.document(rng) for _ in range(32)]
            for ids in self.tok.encode_batch(texts):
                ids.append(self.tok.eos_id)
                docs.append(ids)
                have += len(ids)
        return pack(docs, self.rows, self.seq_len)


def heldout_batches(texts: list[str], tok: Tokenizer, rows: int, seq_len: int, n_batches: int):
    """Fixed evaluation batches from held-out documents (cycled if there are too few tokens)."""
    ids = [t + [tok.eos_id] for t in tok.encode_batch(texts)]
    total = sum(map(len, ids))
    need = n_batches * rows * (seq_len + 1)
    if total == 0:
        raise DataError("no held-out documents to evaluate on")
    ids = ids * (-(-need // total))
    x, y = pack(ids, n_batches * rows, seq_len)
    return list(zip(x.split(rows), y.split(rows)))
