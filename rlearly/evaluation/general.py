"""General capability (docs/DESIGN.md §5): held-out general-text NLL and multiple-choice cloze probes scored by
log-likelihood, as lm-eval-harness scores zero-shot tasks, and a branch's change in them against its base.

    continuation_logprobs    log p(continuation | context) for (context, continuation) pairs, batched
    score_probes             per probe: each option's log-likelihood and the picks by it (acc, acc_norm)
    general_capability       held-out NLL and probe accuracy, overall and per probe kind (per item on request)
    general_delta            branch - base of every number
"""
from __future__ import annotations

import numpy as np
import torch

from rlearly.config import WorldConfig
from rlearly.data.general_world import GeneralWorld
from rlearly.errors import RlearlyError
from rlearly.lm.model import LlamaLM
from rlearly.lm.runtime import device_of, to_device
from rlearly.lm.tokenizer import Tokenizer


@torch.no_grad()
def continuation_logprobs(model: LlamaLM, pairs, batch_size: int = 64) -> list[float]:
    """log p(cont | ctx) summed over cont's tokens, for each (ctx ids, cont ids) pair.

    Right-padded batches, sorted by length (causal attention: padding after a row never changes it). A pair
    longer than max_seq_len + 1 tokens loses its first tokens (context first) to fit.
    """
    model.eval()
    L = model.cfg.max_seq_len
    seqs = [((list(ctx) + list(cont))[-(L + 1):], len(cont)) for ctx, cont in pairs]
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i][0]))
    out = [0.0] * len(seqs)
    for s in range(0, len(order), batch_size):
        chunk = order[s:s + batch_size]
        T = max(len(seqs[i][0]) for i in chunk) - 1
        if T < 1:
            continue
        x = torch.zeros(len(chunk), T, dtype=torch.long)
        y = torch.zeros(len(chunk), T, dtype=torch.long)
        mask = torch.zeros(len(chunk), T)
        for r, i in enumerate(chunk):
            ids, m = seqs[i]
            x[r, :len(ids) - 1], y[r, :len(ids) - 1] = torch.tensor(ids[:-1]), torch.tensor(ids[1:])
            mask[r, len(ids) - 1 - min(m, len(ids) - 1):len(ids) - 1] = 1.0
        x, y, mask = to_device((x, y, mask), device_of(model))
        lp = (-(model(x, y, reduction="none") * mask).sum(1)).tolist()  # (B,): one transfer
        for r, i in enumerate(chunk):
            out[i] = lp[r]
    return out


def score_probes(model: LlamaLM, tok: Tokenizer, probes, batch_size: int = 64) -> list[dict]:
    """Per probe: log-likelihood and token count of each option given the context, and the picks by
    log-likelihood (`pred`) and by log-likelihood per option token (`pred_norm`)."""
    pairs, lens = [], []
    for pr in probes:
        ctx = tok.encode(pr.context)
        for opt in pr.options:
            cont = tok.encode(opt, bos=False)
            pairs.append((ctx, cont))
            lens.append(len(cont))
    lls = continuation_logprobs(model, pairs, batch_size)
    out, j = [], 0
    for pr in probes:
        k = len(pr.options)
        ll, nt = lls[j:j + k], lens[j:j + k]
        j += k
        norm = [a / max(b, 1) for a, b in zip(ll, nt)]
        out.append({"id": pr.id, "kind": pr.kind, "answer": pr.answer, "loglik": ll, "tokens": nt,
                    "pred": int(np.argmax(ll)), "pred_norm": int(np.argmax(norm))})
    return out


def probe_margin(scored: dict) -> float:
    """A scored probe's log-likelihood margin: its correct option's minus the best wrong option's (nats)."""
    ll, a = scored["loglik"], scored["answer"]
    return float(ll[a] - max(v for i, v in enumerate(ll) if i != a))


def general_capability(model: LlamaLM, tok: Tokenizer, world, *, n_docs: int | None = None,
                       batch_size: int = 64, items: bool = False, probe_split: str = "test") -> dict:
    """Held-out general-text NLL (nats/token over BOS + document + EOS) and cloze-probe accuracy
    (acc: highest log-likelihood option; acc_norm: highest per option token), overall and per kind, and the probes'
    mean margin: the correct option's log-likelihood minus the best wrong option's (nats; > 0 where acc counts the
    probe right). The margin moves continuously where accuracy, an argmax, barely moves.

    `world` is a data.world.World, a GeneralWorld or a WorldConfig. Keys: heldout_nll, probe_acc,
    probe_acc_norm, probe_margin, probe_acc.<kind>, probe_acc_norm.<kind>. With `items=True` the per-item values
    come too, under "items": "doc_nll" (each document's NLL scaled so that their mean is heldout_nll),
    "probe_correct" (1/0 per probe, mean = probe_acc) and "probe_margin" (per probe), in the world's fixed order,
    for paired bootstraps.
    `probe_split` "dev": the probes for choices about the world (GeneralWorld.probes).
    """
    g = GeneralWorld(world) if isinstance(world, WorldConfig) else getattr(world, "general", world)
    docs = [tok.encode(d) + [tok.eos_id] for d in g.heldout_documents(n_docs)]
    lps = continuation_logprobs(model, [(d[:1], d[1:]) for d in docs], batch_size)
    n_tok = max(sum(min(len(d), model.cfg.max_seq_len + 1) - 1 for d in docs), 1)
    out = {"heldout_nll": -sum(lps) / n_tok}
    scored = score_probes(model, tok, g.probes(probe_split), batch_size)
    for kind in [None, *sorted({s["kind"] for s in scored})]:
        group = [s for s in scored if kind is None or s["kind"] == kind]
        suffix = "" if kind is None else f".{kind}"
        out["probe_acc" + suffix] = float(np.mean([s["pred"] == s["answer"] for s in group]))
        out["probe_acc_norm" + suffix] = float(np.mean([s["pred_norm"] == s["answer"] for s in group]))
    margins = [probe_margin(s) for s in scored]
    out["probe_margin"] = float(np.mean(margins))
    if items:
        out["items"] = {"doc_nll": [-lp * len(docs) / n_tok for lp in lps],
                        "probe_correct": [int(s["pred"] == s["answer"]) for s in scored], "probe_margin": margins}
    return out


def general_delta(base: dict, branch: dict) -> dict:
    """branch − base for every number of general_capability (NLL: lower is better; accuracies: higher)."""
    if set(base) != set(branch):
        raise RlearlyError(f"general capability results differ in keys: {sorted(set(base) ^ set(branch))}")
    return {k: float(branch[k]) - float(base[k]) for k in base}
