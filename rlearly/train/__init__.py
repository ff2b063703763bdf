"""Training: pretraining (`pretrain`) and the post-training recipes (`branch`).

The recipes' names live here, away from torch, so that the command line and study specs check a method
before anything heavy is imported."""
from __future__ import annotations

import difflib

from rlearly.errors import ConfigError

METHODS = ("sft", "sft_gold", "rl", "sft_rl", "sft_gold_rl", "parallel", "combined", "interleaved")
ALIASES = {"grpo": "rl", "sft_grpo": "sft_rl", "sft_gold_grpo": "sft_gold_rl", "sft-rl": "sft_rl",
           "sft-gold": "sft_gold", "sft-gold-rl": "sft_gold_rl"}  # the paper's and TRL's words for the same recipes


def method_name(name: str, where: str = "") -> str:
    """The recipe `name` means (an alias such as `grpo` gives `rl`); an unknown one fails naming the closest."""
    if name in METHODS:
        return name
    if name in ALIASES:
        return ALIASES[name]
    close = difflib.get_close_matches(str(name), [*METHODS, *ALIASES], n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"{where}unknown method {name!r}; known: {', '.join(METHODS)} (aliases: "
                      f"{', '.join(f'{a}={m}' for a, m in ALIASES.items())}){hint}")
