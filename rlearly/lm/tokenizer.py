"""Byte-level BPE tokenizer trained with Hugging Face `tokenizers`, digits split one per token; or any Hugging
Face fast tokenizer directory, its special tokens mapped by name.

Saved as `tokenizer.json` + `tokenizer_config.json` + `special_tokens_map.json` inside every checkpoint,
so `transformers.AutoTokenizer.from_pretrained(ckpt)` loads it. Encoding prepends BOS (every document
and every prompt starts with it, docs/DESIGN.md §4); decoding drops special tokens.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

from tokenizers import Regex, decoders, models, pre_tokenizers, processors, trainers
from tokenizers import Tokenizer as HFTokenizer

from rlearly.errors import CheckpointError

PAD, BOS, EOS = "<|pad|>", "<|bos|>", "<|eos|>"
SPECIALS = [PAD, BOS, EOS]  # ids 0, 1, 2


# where a Hugging Face tokenizer directory names none: its special tokens by the common conventions
FALLBACKS = {"bos": (BOS, "<s>", "<|begin_of_text|>", "<|endoftext|>"),
             "eos": (EOS, "</s>", "<|end_of_text|>", "<|endoftext|>", "<|im_end|>"),
             "pad": (PAD, "<pad>", "<|finetune_right_pad_id|>")}


class Tokenizer:
    """`hf` with its BOS, EOS and padding ids. `specials` names them ({"bos": "<s>", ...}, as a Hugging Face
    tokenizer directory's special_tokens_map.json does); unnamed ones are found by FALLBACKS; a tokenizer
    without BOS starts every text with EOS instead (GPT-2's convention), and one without padding pads with EOS."""

    def __init__(self, hf: HFTokenizer, specials: dict[str, str] | None = None):
        self.hf = hf
        ids = {}
        for role, names in FALLBACKS.items():
            named = (specials or {}).get(role)
            ids[role] = next((i for i in ([hf.token_to_id(named)] if named else [])
                              + [hf.token_to_id(t) for t in names] if i is not None), None)
        if ids["eos"] is None:
            raise CheckpointError(f"tokenizer has no end-of-text token (none named in special_tokens_map.json, and "
                                  f"none of {', '.join(FALLBACKS['eos'])})")
        self.eos_id = ids["eos"]
        self.bos_id = ids["bos"] if ids["bos"] is not None else self.eos_id
        self.pad_id = ids["pad"] if ids["pad"] is not None else self.eos_id

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size()

    def encode(self, text: str, bos: bool = True) -> list[int]:
        """Token ids of `text`, BOS first (unless bos=False); a tokenizer's own template is not applied, so every
        tokenizer starts a text the same way."""
        ids = self.hf.encode(text, add_special_tokens=False).ids
        return [self.bos_id, *ids] if bos else ids

    def encode_batch(self, texts: list[str], bos: bool = True) -> list[list[int]]:
        head = [self.bos_id] if bos else []
        return [head + e.ids for e in self.hf.encode_batch(texts, add_special_tokens=False)]

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
        name = self.hf.id_to_token
        specials = {"bos_token": name(self.bos_id), "eos_token": name(self.eos_id), "pad_token": name(self.pad_id)}
        (out / "special_tokens_map.json").write_text(json.dumps(specials, indent=2))
        config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": model_max_length,
                  "add_bos_token": True, "clean_up_tokenization_spaces": False, **specials}
        (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))

    @classmethod
    def load(cls, ckpt_dir: str | Path) -> "Tokenizer":
        """A tokenizer directory: rlearly's own or any Hugging Face fast tokenizer (tokenizer.json), with its
        special tokens as special_tokens_map.json or tokenizer_config.json name them."""
        path = Path(ckpt_dir) / "tokenizer.json"
        if not path.is_file():
            raise CheckpointError(f"no tokenizer.json in {ckpt_dir} (a Hugging Face fast tokenizer is needed; "
                                  "slow tokenizers such as tokenizer.model alone are not read)")
        try:
            hf = HFTokenizer.from_file(str(path))
        except Exception as e:  # the Rust error text is long; name the file instead
            raise CheckpointError(f"{path} is not a valid tokenizer file ({type(e).__name__})") from None
        return cls(hf, _named_specials(Path(ckpt_dir)))


def _named_specials(folder: Path) -> dict[str, str]:
    """{"bos"|"eos"|"pad": token text} as special_tokens_map.json (first) or tokenizer_config.json name them."""
    out: dict[str, str] = {}
    for name in ("tokenizer_config.json", "special_tokens_map.json"):  # the later file wins
        f = folder / name
        try:
            data = json.loads(f.read_text()) if f.is_file() else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CheckpointError(f"{f} is not valid JSON") from None
        for role in ("bos", "eos", "pad"):
            tok = data.get(f"{role}_token")
            tok = tok.get("content") if isinstance(tok, dict) else tok
            if isinstance(tok, str) and tok:
                out[role] = tok
    return out


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
