"""Evaluation: held-out NLL and greedy accuracy on the math task (pass@k and diagnostics build on these).
"""
from __future__ import annotations

import torch

from rlearly.data.math_world import reward
from rlearly.model import LlamaLM
from rlearly.sampling import generate
from rlearly.tokenizer import Tokenizer


@torch.no_grad()
def heldout_nll(model: LlamaLM, batches) -> float:
    """Mean next-token NLL (nats/token) over fixed (x, y) batches."""
    model.eval()
    losses = [model(x, y).item() for x, y in batches]
    return sum(losses) / len(losses)


def fewshot_prefix(math_world, shots: int) -> str:
    """`shots` worked train examples in the graded format, as the base model's in-context exemplars."""
    train = math_world.split("train")
    return "".join(math_world.prompt(p) + math_world.one_demo(p) + "\n\n" for p in train[:shots])


@torch.no_grad()
def greedy_accuracy(model: LlamaLM, tok: Tokenizer, math_world, split: str = "test", n_problems: int = 100,
                    shots: int = 2, max_new_tokens: int = 96, batch_size: int = 64) -> float:
    """Fraction of the first `n_problems` of `split` answered correctly by greedy decoding, few-shot."""
    problems = math_world.split(split)[:n_problems]
    prefix = fewshot_prefix(math_world, shots)
    stop = [tok.eos_id, *tok.ids_containing("\n")]  # a solution is one line
    correct = 0
    for i in range(0, len(problems), batch_size):
        chunk = problems[i:i + batch_size]
        prompts = [tok.encode(prefix + math_world.prompt(p)) for p in chunk]
        room = model.cfg.max_seq_len - max(map(len, prompts))
        if room < 8:
            raise ValueError(f"few-shot prompts fill model.max_seq_len={model.cfg.max_seq_len}; use fewer shots")
        outs = generate(model, prompts, max_new_tokens=min(max_new_tokens, room), temperature=0.0,
                        stop_ids=stop, pad_id=tok.pad_id)
        for p, c in zip(chunk, outs):
            correct += reward(tok.decode(c.tokens), p) > 0
    return correct / max(1, len(problems))
