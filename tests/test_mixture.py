"""The pretraining mixture: a real corpus through `datasets` (local files), packing, deterministic batches."""
import json
import re

import numpy as np
import pytest
import torch

from rlearly.config import load_config
from rlearly.data.mixture import Mixture, PretrainBatches, heldout_batches, pack
from rlearly.data.world import World
from rlearly.errors import DataError


def _corpus(tmp_path, rows):
    f = tmp_path / "corpus.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return f


def test_real_corpus_from_local_jsonl(tmp_path):
    f = _corpus(tmp_path, [{"text": f"real document number {i}."} for i in range(5)])
    cfg = load_config(preset="tiny", overrides=[f"data.corpus={f}", "data.corpus_fraction=1.0"])
    mix = Mixture(cfg, World(cfg.world))
    rng = np.random.default_rng(0)
    docs = [mix.document(rng) for _ in range(20)]
    assert set(docs) <= {f"real document number {i}." for i in range(5)} and len(set(docs)) > 1
    half = Mixture(load_config(preset="tiny", overrides=[f"data.corpus={f}", "data.corpus_fraction=0.5"]),
                   World(cfg.world))
    share = np.mean([half.document(rng).startswith("real document") for _ in range(400)])
    assert 0.4 < share < 0.6


@pytest.mark.parametrize("rows,needle", [
    ([{"body": "x"}], "has no column 'text' (columns: body)"),
    ([{"text": "fine"}, {"text": ""}], "row 1: field 'text' is not a non-empty string"),
])
def test_malformed_corpus_is_named(tmp_path, rows, needle):
    f = _corpus(tmp_path, rows)
    cfg = load_config(preset="tiny", overrides=[f"data.corpus={f}"])
    with pytest.raises(DataError, match=re.escape(needle)):
        Mixture(cfg, World(cfg.world))


def test_unknown_corpus_file_type(tmp_path):
    f = tmp_path / "corpus.xml"
    f.write_text("<doc/>")
    cfg = load_config(preset="tiny", overrides=[f"data.corpus={f}"])
    with pytest.raises(DataError, match="unknown extension"):
        Mixture(cfg, World(cfg.world))


def test_pack_rows_and_targets():
    x, y = pack([[1, 5, 6, 2], [1, 7, 8, 2]], rows=2, seq_len=3)
    # flat 1 5 6 2 1 7 8 2 -> rows (1 5 6 2), (1 7 8 2): inputs drop the last, targets drop the first
    assert x.tolist() == [[1, 5, 6], [1, 7, 8]] and y.tolist() == [[5, 6, 2], [7, 8, 2]]
    with pytest.raises(DataError, match="not enough tokens"):
        pack([[1, 2]], rows=2, seq_len=3)


def test_batches_are_a_pure_function_of_seed_and_step(tiny_pretrain_run):
    from rlearly.lm.tokenizer import Tokenizer

    cfg, run = tiny_pretrain_run
    tok = Tokenizer.load(run / "tokenizer")
    mix = Mixture(cfg, World(cfg.world))
    a, b = PretrainBatches(cfg, mix, tok), PretrainBatches(cfg, mix, tok)
    assert torch.equal(a.batch(3)[0], b.batch(3)[0]) and not torch.equal(a.batch(3)[0], a.batch(4)[0])
    x, y = a.batch(0)
    assert x.shape == (cfg.pretrain.batch_size, cfg.pretrain.seq_len) and torch.equal(x[:, 1:], y[:, :-1])
    assert (x == tok.bos_id).sum() >= 2  # documents start with BOS and are packed back to back
    hb = heldout_batches(["Ava has 3 toys."] * 3, tok, rows=2, seq_len=16, n_batches=2)
    assert len(hb) == 2 and hb[0][0].shape == (2, 16)  # few documents are cycled to fill the batches
