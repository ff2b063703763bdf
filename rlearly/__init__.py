"""rlearly: reinforcement learning during language-model pretraining, rebuilt small (arXiv 2606.04272)."""

__version__ = "0.1.0"
