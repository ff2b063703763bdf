"""Byte-level BPE tokenizer trained with Hugging Face `tokenizers`, digits split one per token.

Saved as `tokenizer.json` + `tokenizer_config.json` + `special_tokens_map.json` inside every checkpoint,
so `transformers.AutoTokenizer.from_pretrained(ckpt)` loads it. Encoding prepends BOS (every document
and every prompt starts with it, docs/DESIGN.md §4); decoding drops special tokens.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import Regex, decoders, models, pre_tokenizers, processors, trainers

from rlearly.errors import CheckpointError

PAD, BOS, EOS = "<|pad|>", "<|bos|>", "<|eos|>"
SPECIALS = [PAD, BOS, EOS]  # ids 0, 1, 2


class Tokenizer:
    def __init__(self, hf: HFTokenizer):
        self.hf = hf
        self.pad_id, self.bos_id, self.eos_id = (hf.token_to_id(t) for t in SPECIALS)
        if None in (self.pad_id, self.bos_id, self.eos_id):
            raise CheckpointError("tokenizer lacks the special tokens <|pad|>, <|bos|>, <|eos|>")

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size()

    def encode(self, text: str, bos: bool = True) -> list[int]:
        return self.hf.encode(text, add_special_tokens=bos).ids

    def encode_batch(self, texts: list[str], bos: bool = True) -> list[list[int]]:
        return [e.ids for e in self.hf.encode_batch(texts, add_special_tokens=bos)]

    def decode(self, ids) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=True)

    @functools.cached_property
    def line_stop_ids(self) -> list[int]:
        """EOS and every token holding a newline: where a one-line solution ends. Computed once per tokenizer
        (it decodes the whole vocabulary)."""
        return [self.eos_id, *self.ids_containing("\n")]

    def ids_containing(self, text: str) -> list[int]:
        """Ids of every token whose decoded text contains `text` (e.g. newline stop tokens)."""
        return sorted(i for i in self.hf.get_vocab().values() if text in self.hf.decode([i], skip_special_tokens=False))

    def save(self, out_dir: str | Path, model_max_length: int) -> None:
        out = Path(out_dir)
        self.hf.save(str(out / "tokenizer.json"))
        specials = {"bos_token": BOS, "eos_token": EOS, "pad_token": PAD}
        (out / "special_tokens_map.json").write_text(json.dumps(specials, indent=2))
        config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": model_max_length,
                  "add_bos_token": True, "clean_up_tokenization_spaces": False, **specials}
        (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))

    @classmethod
    def load(cls, ckpt_dir: str | Path) -> "Tokenizer":
        path = Path(ckpt_dir) / "tokenizer.json"
        if not path.is_file():
            raise CheckpointError(f"no tokenizer.json in {ckpt_dir}")
        try:
            return cls(HFTokenizer.from_file(str(path)))
        except Exception as e:  # the Rust error text is long; name the file instead
            raise CheckpointError(f"{path} is not a valid tokenizer file ({type(e).__name__})") from None


def train_tokenizer(texts: list[str], vocab_size: int) -> Tokenizer:
    """Train a byte-level BPE on `texts`. Deterministic for the same texts and vocab size."""
    hf = HFTokenizer(models.BPE())
    # GPT-2 style byte-level split, then one digit per token: " 19" -> "Ġ1", "9". The leading space stays
    # on the first digit, so a number is never preceded by a bare space token that carries no content
    hf.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        pre_tokenizers.Split(Regex("Ġ?[0-9]"), behavior="isolated"),
    ])
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    hf.train_from_iterator(texts, trainer, length=len(texts))
    bos_id = hf.token_to_id(BOS)
    hf.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B",
                                                      special_tokens=[(BOS, bos_id)])
    return Tokenizer(hf)
