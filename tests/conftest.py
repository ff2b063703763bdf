"""Shared fixtures: a tiny model and a tokenizer trained on a few sentences (seconds, no world needed)."""
import pytest
import torch

from rlearly.config import ModelConfig
from rlearly.lm.model import LlamaLM
from rlearly.lm.tokenizer import train_tokenizer

TEXTS = [f"Ava has {i} marbles. She buys {j} more. Ava has {i} + {j} = {i + j} marbles. The answer is \\boxed{{{i + j}}}."
         for i in range(12) for j in range(12)] + ["Mia works as a baker in Oslo.\n", "Tom lives in Rome."] * 10


@pytest.fixture(scope="session")
def tok():
    return train_tokenizer(TEXTS, 400)


def tiny_model(vocab: int, seed: int = 0, **kw) -> LlamaLM:
    torch.manual_seed(seed)
    cfg = ModelConfig(**{**dict(n_layer=2, n_head=4, n_kv_head=2, n_embd=32, ffn_hidden=64, max_seq_len=128), **kw})
    return LlamaLM(cfg, vocab)


@pytest.fixture
def model(tok):
    return tiny_model(tok.vocab_size)


@pytest.fixture(scope="session")
def tiny_pretrain_run(tmp_path_factory):
    """A tiny-preset pretraining run (a few seconds), shared by every test that needs a checkpoint."""
    from rlearly.config import load_config
    from rlearly.train import pretrain

    cfg = load_config(preset="tiny")
    out = tmp_path_factory.mktemp("pretrain") / "run"
    pretrain.run(cfg, out, show_progress=False)
    return cfg, out


@pytest.fixture(scope="session")
def tiny_ckpt(tiny_pretrain_run):
    from rlearly.train import pretrain

    return pretrain.list_checkpoints(tiny_pretrain_run[1])[-1]


def pytest_configure(config):
    # the test models are tiny: one thread avoids synchronisation overhead (and oversubscription when
    # another job shares the two cores), which is several times faster here
    torch.set_num_threads(1)
