"""rlearly: reinforcement learning during language-model pretraining, rebuilt small (arXiv 2606.04272).

The package is layered, lowest first (each folder one layer; imports point down only, tests/test_layers.py):
errors, extras, hub, files, seeds -> config -> lm -> data -> tasks -> sampling -> evaluation -> train -> study ->
results -> cli. The README's package map says what each module owns.

Modules that moved into the layers keep their old names for `from rlearly import <name>` (MOVED), so code
written against them runs unchanged; new code imports them where they live.
"""

__version__ = "0.1.0"

# old top-level module -> where it lives now
MOVED = {
    "model": "rlearly.lm.model", "losses": "rlearly.lm.losses", "tokenizer": "rlearly.lm.tokenizer",
    "runtime": "rlearly.lm.runtime", "checkpoint": "rlearly.lm.checkpoint",
    "vllm_backend": "rlearly.sampling.vllm_engine", "evaluate": "rlearly.evaluation.evaluate",
    "passk": "rlearly.evaluation.passk", "store": "rlearly.evaluation.store",
    "lmeval": "rlearly.evaluation.lmeval", "adversaries": "rlearly.evaluation.adversaries",
    "nanotron": "rlearly.train.nanotron", "analysis": "rlearly.results.analysis", "plots": "rlearly.results.plots",
    "completions": "rlearly.results.completions", "report": "rlearly.results.report",
    "claims": "rlearly.results.claims",
}


def __getattr__(name: str):
    """`from rlearly import analysis` (and the other MOVED names) imports the module from its new home."""
    if name in MOVED:
        import importlib

        return importlib.import_module(MOVED[name])
    raise AttributeError(f"module 'rlearly' has no attribute {name!r}")
