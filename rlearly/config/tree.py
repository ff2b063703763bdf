"""The config tree: one typed dataclass per section (model, world, data, pretrain, sft, rl, branch, task,
runtime), each field with its help text; the whole `Config` with its YAML form and content hash; the size presets.

Fields are `setting(default, help)`; `execution(...)` marks one that says where or how fast a result is computed
(left out of the hash); `late(noop, ...)` one added within a schema (left out of the hash at its no-op value).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml

from rlearly.errors import ConfigError

# The config schema (rlearly.config's docstring). Schema 1 is every config written before schemas existed (no
# `schema` key); it hashes exactly as those did.
SCHEMA = 1
# The synthetic world's generator: bumped whenever the same WorldConfig would generate other problems, solutions or
# scores. It is part of the config hash and of the synthetic task's fingerprint, so no run or sample of an older
# world is reused.
WORLD_VERSION = 2


def setting(default, help: str):
    """A field of the config tree with its help text (`rlearly config --fields`, docs/CONFIG.md)."""
    if isinstance(default, list):  # a mutable default: each config gets its own
        return field(default_factory=lambda: list(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


def execution(default, help: str):
    """A field that says where or how fast a result is computed, not what it is (the device): recorded in
    config.yaml and each artifact's meta.json, left out of the hash, so a study made on a laptop is reused on a
    GPU node and a node planned on a login node without a GPU keeps its name on the GPU node that runs it."""
    return field(default=default, metadata={"execution": True, "help": help})


def late(noop, help: str, *, default=None):
    """A field added within a schema: `noop` is the value that reproduces the code from before it existed, and
    must be its default (checked at import). Configs at that value hash as if the field did not exist."""
    if isinstance(noop, list):  # a mutable no-op (an empty list): each config gets its own
        return field(default_factory=lambda: list(noop), metadata={"late": noop, "help": help})
    return field(default=noop if default is None else default, metadata={"late": noop, "help": help})


@dataclass
class ModelConfig:
    n_layer: int = setting(4, "transformer blocks")
    n_head: int = setting(4, "query heads")
    n_kv_head: int = setting(4, "key/value heads (< n_head = grouped-query attention)")
    n_embd: int = setting(128, "residual width")
    ffn_hidden: int = setting(352, "SwiGLU hidden width (~8/3 * n_embd, rounded)")
    max_seq_len: int = setting(512, "longest context (RoPE has no learned table; this bounds the KV cache)")
    rope_theta: float = setting(10000.0, "RoPE base frequency")
    norm_eps: float = setting(1e-5, "RMSNorm epsilon")
    tie_embeddings: bool = setting(False, "the paper's OLMo2 unties input and output embeddings")
    init_std: float = setting(0.02, "std of the normal initialisation of every weight matrix")
    family: str = late("llama", "architecture family (rlearly.lm.families): llama, olmo2 (the paper's: QK-norm, norms "
                       "after attention and MLP), qwen2 (q/k/v biases), qwen3 (QK-norm per head), gpt_neox (Pythia)")
    head_size: int = late(0, "width of one attention head; 0: n_embd / n_head (Qwen3 names its own)")
    rotary_fraction: float = late(1.0, "share of each head's dimensions RoPE rotates (GPT-NeoX/Pythia: 0.25)")

    def __post_init__(self):
        _positive(self, "n_layer", "n_head", "n_kv_head", "n_embd", "ffn_hidden", "max_seq_len")  # model.family: the
        # model checks it against rlearly.lm.families' registry when built (config sits below lm)
        if self.head_size < 0:
            raise ConfigError(f"model.head_size={self.head_size} must be >= 0 (0: n_embd / n_head)")
        if not self.head_size and self.n_embd % self.n_head:
            raise ConfigError(f"model.n_embd={self.n_embd} must be divisible by model.n_head={self.n_head}")
        if self.n_head % self.n_kv_head:
            raise ConfigError(f"model.n_head={self.n_head} must be divisible by model.n_kv_head={self.n_kv_head}")
        if not 0 < self.rotary_fraction <= 1:
            raise ConfigError(f"model.rotary_fraction={self.rotary_fraction} must lie in (0, 1]")
        if self.rotary_dims % 2 or not self.rotary_dims:
            raise ConfigError(f"model head size {self.head_dim} x rotary_fraction {self.rotary_fraction} = "
                              f"{self.head_dim * self.rotary_fraction:g} dimensions: RoPE needs an even number")

    @property
    def head_dim(self) -> int:
        return self.head_size or self.n_embd // self.n_head

    @property
    def rotary_dims(self) -> int:
        """The dimensions of each head RoPE rotates (the first ones; Hugging Face's int() of the product)."""
        return int(self.head_dim * self.rotary_fraction)


@dataclass
class WorldConfig:
    """The embedded synthetic world (docs/DESIGN.md §4): GSM-like math problems and a general knowledge world."""

    seed: int = setting(1234, "fixes entities, facts and the train/test/hard splits")
    math_fraction: float = setting(0.3, "share of pretraining documents that are math problems with solutions")
    hard_fraction: float = setting(0.0, "share of pretraining math documents drawn at hard difficulty")
    format_fraction: float = setting(0.1, "share of pretraining math documents ending in the graded \\boxed{} format")
    drill_fraction: float = setting(0.0, "share of pretraining math documents that are bare arithmetic facts")
    min_ops: int = setting(3,
                           "train/dev/test difficulty: number of arithmetic operations (the final combine included)")
    max_ops: int = setting(5, "most operations on train/dev/test")
    hard_min_ops: int = setting(6, "fewest operations on the hard split (the MATH analogue)")
    hard_max_ops: int = setting(7, "most operations on the hard split")
    max_value: int = setting(30, "every quantity and intermediate result stays in [2, max_value]")
    min_people: int = setting(2, "fewest people per problem, each with >= 1 event: two or three people need two "
                                 "running counts, so no chain of guessed operations on the question's numbers solves it")
    max_people: int = setting(3, "most people per problem (1 = one chain of events)")
    scoring: str = setting("steps",
                           "'steps': the equations must be the problem's steps (no guess earns it); 'answer' the "
                           "boxed integer alone (rlearly.data.math_world.is_correct)")
    n_train: int = setting(2000, "train split: the RL prompts and SFT problems")
    n_dev: int = setting(300, "validation during training and every tuning choice (never test or hard)")
    n_test: int = setting(500, "test split: the GSM8K analogue, read only by a frozen study's final evaluation")
    n_hard: int = setting(300, "hard split: the MATH analogue")
    max_solutions: int = setting(24, "cap on distinct demonstrations per problem (SFT-Gold)")
    n_people: int = setting(60, "entities of the general world, each with consistent facts")
    people_zipf: float = late(0.0, "popularity: person i is the subject of a share of documents ∝ (i+1)^-s")
    n_probe_heldout_docs: int = setting(200, "held-out general documents for the general-capability NLL")

    def __post_init__(self):
        if self.people_zipf < 0:
            raise ConfigError(f"world.people_zipf={self.people_zipf} must be >= 0 (0 = every person equally common)")
        for name in ("math_fraction", "hard_fraction", "format_fraction", "drill_fraction"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"world.{name}={v} must lie in [0, 1]")
        _positive(self, "min_ops", "max_ops", "hard_min_ops", "hard_max_ops", "max_value", "n_people", "max_solutions",
                  "min_people", "max_people", "n_train", "n_dev", "n_test", "n_hard")
        if not self.min_people <= self.max_people <= 3:
            raise ConfigError(f"world.min_people={self.min_people} and world.max_people={self.max_people} must satisfy "
                              "1 <= min_people <= max_people <= 3")
        if self.min_ops > self.max_ops or self.hard_min_ops > self.hard_max_ops:
            raise ConfigError("world.min_ops must be <= world.max_ops (and hard_min_ops <= hard_max_ops)")
        need = 2 * self.min_people - 1  # every person has an event, and people - 1 combines
        if min(self.min_ops, self.hard_min_ops) < need:
            raise ConfigError(f"world.min_ops and world.hard_min_ops must be >= {need}: {self.min_people} people "
                              "need an event each and a combine between them")
        _known("world.scoring", self.scoring, ("steps", "answer"))
        if self.max_value < 20:
            raise ConfigError(f"world.max_value={self.max_value} is too small to make problems (need >= 20)")


@dataclass
class DataConfig:
    """Where pretraining text comes from: the synthetic world, or a real corpus through `datasets`."""

    corpus: str = setting("synthetic", "'synthetic', a local file (.jsonl/.json/.parquet/.txt) or a hub dataset id")
    text_field: str = setting("text", "column holding the document text for a real corpus")
    corpus_fraction: float = setting(1.0, "with a real corpus: share of documents from it (rest: synthetic world)")
    vocab_size: int = setting(1024, "byte-level BPE vocabulary, special tokens included")
    tokenizer_docs: int = setting(4000, "documents used to train the tokenizer")

    def __post_init__(self):
        if not 0.0 <= self.corpus_fraction <= 1.0:
            raise ConfigError(f"data.corpus_fraction={self.corpus_fraction} must lie in [0, 1]")
        if self.vocab_size < 300:
            raise ConfigError(f"data.vocab_size={self.vocab_size} must be >= 300 (256 bytes + specials + merges)")
        _positive(self, "tokenizer_docs")


@dataclass
class PretrainConfig:
    tokens: int = setting(2_000_000, "total training tokens; the cosine schedule ends here")
    batch_size: int = setting(8, "sequences per step (more steps beat bigger batches at this scale)")
    seq_len: int = setting(256, "tokens per sequence (documents packed, each starting with BOS)")
    lr: float = setting(5e-3, "peak learning rate")
    min_lr_ratio: float = setting(0.1, "cosine decays to this x peak at `tokens` (paper: 0.1)")
    warmup_tokens: int = setting(40_000, "linear warmup (paper: 2% of tokens)")
    weight_decay: float = setting(0.1, "AdamW weight decay, not applied to embeddings or norms")
    beta1: float = setting(0.9, "AdamW beta1")
    beta2: float = setting(0.95, "AdamW beta2 (paper: 0.95)")
    grad_clip: float = setting(1.0, "gradient-norm clip")
    checkpoints: list[int] = setting([], "token counts to save checkpoints at; empty = `n_checkpoints` log-spaced")
    n_checkpoints: int = setting(6, "checkpoints of the log-spaced schedule (when `checkpoints` is empty)")
    first_checkpoint_tokens: int = setting(200_000, "where the log-spaced schedule starts")
    eval_every: int = setting(100, "steps between held-out loss evaluations")
    eval_batches: int = setting(4, "batches of held-out math / general text per evaluation")
    save_every: int = setting(200, "steps between resumable trainer-state saves (besides checkpoints)")
    threads: int = setting(0, "torch threads; 0 = all cores (runtime.threads, when set, wins)")
    engine: str = late("rlearly",
                       "nanotron: the run is nanotron's (exported config, `nanotron_launch`, converted back)")
    nanotron_launch: str = execution("",
                                     "the command that trains, {config} = the exported nanotron.yaml, e.g. 'torchrun "
                                     "--nproc_per_node 8 run_train.py --config-file {config}'")

    def __post_init__(self):
        _positive(self, "tokens", "batch_size", "seq_len", "eval_every", "eval_batches", "save_every", "n_checkpoints")
        _known("pretrain.engine", self.engine, ("rlearly", "nanotron"))
        if self.lr <= 0:
            raise ConfigError(f"pretrain.lr={self.lr} must be > 0")
        if any(t <= 0 or t > self.tokens for t in self.checkpoints):
            raise ConfigError(f"pretrain.checkpoints must lie in (0, pretrain.tokens={self.tokens}]")

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len

    @property
    def total_steps(self) -> int:
        return -(-self.tokens // self.tokens_per_step)

    def checkpoint_steps(self) -> list[int]:
        """Steps after which a checkpoint is saved; the last step is always one (the final model).
        Without an explicit list: `n_checkpoints` log-spaced steps from `first_checkpoint_tokens` to the end."""
        total = self.total_steps
        if self.checkpoints:
            # a checkpoint at `tokens` is the final step (not the step before it, when tokens / batch rounds down)
            steps = {total if t >= self.tokens else max(1, min(total, round(t / self.tokens_per_step)))
                     for t in self.checkpoints}
        else:
            first = max(1, min(total, round(self.first_checkpoint_tokens / self.tokens_per_step)))
            n = self.n_checkpoints
            ratio = (total / first) ** (1 / max(n - 1, 1))
            steps = {min(total, round(first * ratio**i)) for i in range(n)}
        return sorted(steps | {total})


@dataclass
class SFTConfig:
    """Supervised fine-tuning on demonstrations (paper §3.2): NLL on response tokens only."""

    steps: int = setting(60, "optimizer steps (unless `epochs` is set)")
    epochs: float = late(0.0,
                         "passes over the demonstrations instead of `steps` (SFT and SFT-Gold then train as many "
                         "epochs each; parallel averaging's SFT half sees at least as many demos)")
    batch_size: int = setting(32, "examples per step (epochs over the demos in a seeded order)")
    lr: float = setting(1e-4, "constant after warmup (paper: 4e-5, constant)")
    warmup_steps: int = setting(0, "linear learning-rate warmup steps")
    weight_decay: float = setting(0.01, "AdamW weight decay (the paper's SFT and RL setting)")
    beta1: float = setting(0.9, "AdamW beta1")
    beta2: float = setting(0.999, "AdamW beta2")
    grad_clip: float = setting(1.0, "gradient-norm clip")
    loss_agg: str = setting("token-mean", "aggregation of the token losses: one of AGG_MODES (rlearly.lm.losses.aggregate)")
    split: str = setting("train", "problems whose demonstrations are trained on (same prompts as RL)")
    demo_merge: float = late(0.0,
                             "synthetic task: demos by a stronger author, who folds each step of a person into the "
                             "previous one with this probability (one equation, several operations)")

    def __post_init__(self):
        _positive(self, "steps", "batch_size")
        if not 0.0 <= self.demo_merge <= 1.0:
            raise ConfigError(f"sft.demo_merge={self.demo_merge} must lie in [0, 1]")
        if self.epochs < 0:
            raise ConfigError(f"sft.epochs={self.epochs} must be >= 0 (0 = train sft.steps steps)")
        if self.lr <= 0:
            raise ConfigError(f"sft.lr={self.lr} must be > 0")
        _known("sft.loss_agg", self.loss_agg, AGG_MODES)


AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm", "token-sum")  # rlearly.lm.losses.aggregate


@dataclass
class RLConfig:
    """GRPO with a verifiable binary reward (paper §3.1, VeRL settings scaled down)."""

    steps: int = setting(60, "rollout batches")
    prompts_per_step: int = setting(16, "training prompts per rollout batch")
    group_size: int = setting(8, "rollouts per prompt (G)")
    temperature: float = setting(1.0, "rollout temperature (paper: 1.0; evaluation uses 0.6)")
    top_p: float = setting(1.0, "rollout nucleus (1.0: the whole distribution, as the paper's rollouts)")
    max_new_tokens: int = setting(128, "longest rollout, in tokens (a longer one is cut and counted as truncated)")
    lr: float = setting(1e-4, "constant after warmup (paper: 1e-6 at 1B scale)")
    warmup_steps: int = setting(0, "linear learning-rate warmup steps")
    weight_decay: float = setting(0.01, "AdamW weight decay (paper: 0.01)")
    beta1: float = setting(0.9, "AdamW beta1")
    beta2: float = setting(0.999, "AdamW beta2")
    grad_clip: float = setting(1.0, "gradient-norm clip (paper: 1.0)")
    mini_batches: int = setting(1, "optimizer updates per rollout batch, each on whole prompt groups (paper: 4)")
    epochs: int = setting(1, "passes over each rollout batch (paper: 1)")
    filter_groups: bool = late(False, "update on groups with unequal rewards only (DAPO's filter, no resampling)")
    format_score: float = late(0.0, "reward of a wrong answer in the graded format (paper's launch scripts: 0.1)")
    clip_low: float = setting(0.2, "ratio clipped to [1 - clip_low, 1 + clip_high]")
    clip_high: float = setting(0.2, "upper clip of the ratio: 1 + clip_high (DAPO's clip-higher: above clip_low)")
    dual_clip: float = setting(3.0, "bound on the loss of negative-advantage tokens (VeRL c=3); 0 = off")
    loss_agg: str = setting("token-mean",
                            "token-mean (paper), seq-mean-token-mean, seq-mean-token-sum-norm (Dr.GRPO)")
    normalize_std: bool = setting(True, "divide group-centred rewards by the group std (GRPO) or not (Dr.GRPO)")
    kl_coef: float = setting(0.0, "beta of the k3 KL to the start checkpoint (paper: 0.001)")
    kl_estimator: str = setting("k3", "estimator of the KL term: k1, k2 or k3 (the low-variance one the paper uses)")
    split: str = setting("train", "the task split whose problems are the RL prompts (never dev, test or hard)")
    backend: str = setting("torch", "the sampling engine of the rollouts (rlearly.sampling: torch, or vllm: GPU, [gpu] "
                                    "extra; weights pushed after each update)")
    # the vLLM engine (rl.backend: vllm), each at vLLM's own default when left at its no-op value
    vllm_memory: float = late(0.0, "gpu_memory_utilization: the device's share for weights and KV cache (CPU: RAM's)")
    vllm_dtype: str = late("auto", "dtype of the engine's weights (auto: config.json's, float32 here)")
    vllm_max_seqs: int = late(0, "max_num_seqs: sequences decoded at once")
    vllm_tp: int = late(1, "tensor_parallel_size")
    vllm_eager: bool = late(False, "enforce_eager: no CUDA graphs or torch.compile (faster start, slower decode)")

    def __post_init__(self):
        _positive(self, "steps", "prompts_per_step", "group_size", "max_new_tokens", "mini_batches", "epochs")
        if not 0.0 <= self.format_score < 1.0:
            raise ConfigError(f"rl.format_score={self.format_score} must lie in [0, 1): a correct answer scores 1")
        if self.lr <= 0:
            raise ConfigError(f"rl.lr={self.lr} must be > 0")
        _known("rl.loss_agg", self.loss_agg, AGG_MODES)
        _known("rl.kl_estimator", self.kl_estimator, ("k1", "k2", "k3"))
        if not 0.0 <= self.vllm_memory <= 1.0:
            raise ConfigError(f"rl.vllm_memory={self.vllm_memory} must lie in [0, 1] (0: vLLM's default)")
        _known("rl.vllm_dtype", self.vllm_dtype, ("auto", "float32", "bfloat16", "float16"))
        if self.vllm_max_seqs < 0 or self.vllm_tp < 1:
            raise ConfigError("rl.vllm_max_seqs must be >= 0 (0: vLLM's default) and rl.vllm_tp >= 1")
        if self.prompts_per_step % self.mini_batches:  # a mini-batch holds whole groups
            raise ConfigError(f"rl.mini_batches={self.mini_batches} must divide rl.prompts_per_step={self.prompts_per_step}")


@dataclass
class BranchConfig:
    """Settings shared by every post-training recipe, and the mixing of RL with SFT."""

    parallel_rl_weight: float = setting(0.5,
                                        "parallel averaging: theta = w * theta_RL + (1 - w) * theta_SFT (paper: 1/2)")
    combined_sft_weight: float = setting(0.5, "combined: one optimizer on lambda * L_SFT + (1 - lambda) * L_RL")
    interleave_block: int = setting(10, "interleaved: alternate blocks of this many SFT then RL steps")
    save_every: int = setting(20, "steps between resumable states and intermediate checkpoints")
    eval_every: int = setting(20, "steps between quick validation pass@k measurements (0 = off)")
    eval_problems: int = setting(64, "dev problems in the quick validation")
    eval_n: int = setting(8, "samples per problem in the quick validation (temperature 0.6, top-p 0.95)")
    patience: int = late(0,
                         "stop once dev validation pass@1 has not beaten its best by `min_delta` for this many "
                         "validations in a row (the paper trains 'until convergence'); 0 = all steps")
    min_delta: float = late(0.0, "the rise in validation pass@1 that counts as progress")
    no_signal_steps: int = late(0,
                                "RL alone: stop after this many first steps in which no group's rollouts got "
                                "differing rewards (a zero policy gradient: the start solves none of them); 0 = off")
    base: str = late("", "the suite checkpoint a branch starts from, <model id>@<commit>#<weights' id> (set by a "
                     "study's base section: rlearly.study.suite)")

    def __post_init__(self):
        for name in ("parallel_rl_weight", "combined_sft_weight"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"branch.{name}={getattr(self, name)} must lie in [0, 1]")
        _positive(self, "interleave_block", "save_every", "eval_problems", "eval_n")
        if self.patience < 0 or self.min_delta < 0 or self.no_signal_steps < 0:
            raise ConfigError("branch.patience, branch.min_delta and branch.no_signal_steps must be >= 0")


@dataclass
class TaskConfig:
    """The task branches train on (SFT demonstrations, RL prompts and reward) and validate on (rlearly.tasks)."""

    name: str = late("synthetic", "a registered task; synthetic: the world of this config (world.*)")
    files: list[str] = late([], "local data files as 'split=path' (e.g. train=gsm8k_train.jsonl); default: its hub")
    multiline: bool = late(False, "multi-line solutions: demonstrations keep their lines, sampling stops at EOS")
    max_new_tokens: int = late(0, "the evaluation's token budget per completion (0: the task's, 160)")

    def __post_init__(self):
        bad = [f for f in self.files if not isinstance(f, str) or "=" not in f or not f.split("=", 1)[1]]
        if bad:
            raise ConfigError(f"task.files entry {bad[0]!r} must look like split=path (e.g. train=data/train.jsonl)")
        if self.max_new_tokens < 0:
            raise ConfigError(f"task.max_new_tokens={self.max_new_tokens} must be >= 0 (0: the task's own)")

    def file_map(self) -> dict[str, str]:
        return dict(f.split("=", 1) for f in self.files)


# sections added within schema 1: at their no-op values they are left out of the hash, as if absent
NEW_SECTIONS = ("task", "runtime")
DEVICE_HELP = "auto | cpu | cuda | cuda:<i> (or another kind rlearly.lm.runtime registers)"
DTYPES = ("fp32", "bf16", "auto")
SHARDING = ("none", "fsdp")


@dataclass
class RuntimeConfig:
    """Where and in what precision stages compute (rlearly.lm.runtime resolves it once per process)."""

    device: str = execution("auto", "auto = cuda where torch sees a GPU (cuda:LOCAL_RANK under torchrun), else cpu")
    dtype: str = late("fp32", "bf16: matmuls under bf16 autocast; master weights, norms, log-probs, losses in fp32; "
                      "auto: bf16 where the device computes it fast (a CPU with AMX or AVX512-BF16, a GPU with "
                      "bf16), else fp32 (a study resolves it once, when it is loaded)")
    micro_batches: int = execution(1,
                                   "gradient accumulation: each batch (pretraining, SFT) or GRPO mini-batch in this "
                                   "many parts, each weighted by its share of the tokens (or rows)")
    activation_checkpointing: bool = execution(False, "recompute each block's activations in the backward pass")
    logit_chunk: int = execution(0,
                                 "SFT and GRPO losses: the LM head and log-probs this many positions at a time, "
                                 "recomputed in backward, so no (tokens x vocabulary) tensor is held (0: all)")
    shard: str = execution("none",
                           "fsdp: under torchrun, FSDP2 shards weights, gradients and AdamW state over the ranks "
                           "(pretraining); none: every rank holds the whole model (DDP-style)")
    threads: int = execution(0, "torch threads of a stage (0: pretrain.threads, whose 0 is all cores)")
    compile: bool = execution(False, "pretraining's step and the GRPO loss's blocks through torch.compile (the first "
                              "step compiles, 15-50 s; inductor caches it on disk)")

    def __post_init__(self):
        import re

        _positive(self, "micro_batches")
        if self.threads < 0:
            raise ConfigError(f"runtime.threads={self.threads} must be >= 0 (0: pretrain.threads)")
        if self.logit_chunk < 0:
            raise ConfigError(f"runtime.logit_chunk={self.logit_chunk} must be >= 0 (0: no chunking)")
        if not re.fullmatch(r"auto|[a-z][a-z0-9_]*(:\d+)?", self.device):  # the kind is checked where it resolves
            raise ConfigError(f"runtime.device={self.device!r} must be one of {DEVICE_HELP}")
        _known("runtime.dtype", self.dtype, DTYPES)
        _known("runtime.shard", self.shard, SHARDING)


@dataclass
class Config:
    preset: str = setting("small", "the size preset applied before the rest (tiny, small, medium, large)")
    seed: int = setting(0, "training seed (initialisation, data order, sampling); the world has its own seed")
    model: ModelConfig = field(default_factory=ModelConfig)
    world: WorldConfig = field(default_factory=WorldConfig)
    data: DataConfig = field(default_factory=DataConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    branch: BranchConfig = field(default_factory=BranchConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        """The config as YAML, with the schema it was written under first (load_config reads it back)."""
        return yaml.safe_dump({"schema": SCHEMA, **self.to_dict()}, sort_keys=False)

    def hash(self) -> str:
        """Content hash of the resolved config (12 hex chars): names run directories and lineage. It covers the
        config schema (SCHEMA) and the world generator's version, so results of older code are never reused;
        late options (`late(...)` fields) count only when set away from their no-op value, so adding one does
        not rename every finished run."""
        d = {**self.to_dict(), "world_version": WORLD_VERSION}
        if SCHEMA > 1:  # schema 1 (no schema recorded) hashes as configs did before schemas existed
            d["schema"] = SCHEMA
        for key, noop in late_options().items():
            section, name = key.split(".")
            if d[section][name] == noop:
                del d[section][name]
        for key in execution_options():
            section, name = key.split(".")
            del d[section][name]
        for section in NEW_SECTIONS:
            if not d[section]:
                del d[section]
        blob = json.dumps(d, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


@functools.lru_cache(maxsize=1)
def late_options() -> dict[str, Any]:
    """Every late option of the current schema, as {"section.name": its no-op value}."""
    hints = typing.get_type_hints(Config)
    return {f"{sec.name}.{f.name}": f.metadata["late"] for sec in dataclasses.fields(Config)
            if dataclasses.is_dataclass(hints[sec.name]) for f in dataclasses.fields(hints[sec.name])
            if "late" in f.metadata}


@functools.lru_cache(maxsize=1)
def execution_options() -> list[str]:
    """Every execution option ("section.name"), never part of a config hash."""
    hints = typing.get_type_hints(Config)
    return [f"{sec.name}.{f.name}" for sec in dataclasses.fields(Config) if dataclasses.is_dataclass(hints[sec.name])
            for f in dataclasses.fields(hints[sec.name]) if "execution" in f.metadata]


def describe() -> list[dict]:
    """Every key of the config tree, in order: dotted name, type, default, kind ("late": left out of the hash at its
    no-op value; "execution": never in the hash; "": an ordinary setting) and its help text."""
    hints, defaults, rows = typing.get_type_hints(Config), Config().to_dict(), []
    for sec in dataclasses.fields(Config):
        if not dataclasses.is_dataclass(hints[sec.name]):
            rows.append(dict(key=sec.name, type=hints[sec.name].__name__, default=defaults[sec.name], kind="",
                             help=sec.metadata.get("help", "")))
            continue
        types = typing.get_type_hints(hints[sec.name])
        for f in dataclasses.fields(hints[sec.name]):
            kind = "late" if "late" in f.metadata else "execution" if "execution" in f.metadata else ""
            tp = types[f.name]
            rows.append(dict(key=f"{sec.name}.{f.name}", type=getattr(tp, "__name__", str(tp)),
                             default=defaults[sec.name][f.name], kind=kind, help=f.metadata.get("help", "")))
    return rows


def markdown_fields() -> str:
    """describe() as the Markdown table of docs/CONFIG.md (`rlearly config --fields`)."""
    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")
    lines = ["| key | type | default | | help |", "|---|---|---|---|---|"]
    lines += [f"| `{r['key']}` | {r['type']} | `{cell(r['default'])}` | {r['kind']} | {cell(r['help'])} |"
              for r in describe()]
    return "\n".join(lines) + "\n"


def _check_late_options() -> None:
    """At import: a late option's default must be its no-op value, or configs written before it existed (which
    lack the key) would load with another behaviour than the one they ran with. Change a default by bumping
    SCHEMA instead (every late option then becomes an ordinary field)."""
    defaults = Config().to_dict()
    for key, noop in late_options().items():
        section, name = key.split(".")
        if defaults[section][name] != noop:
            raise AssertionError(f"late option {key}: default {defaults[section][name]!r} != no-op {noop!r}; "
                                 "bump config.SCHEMA instead")


# Size presets: a dial that sets the rest. `tiny` runs in seconds for tests; `small` is the default
# study's model (≈1M parameters, docs/DESIGN.md §10); `medium`/`large` are the wider/deeper models of the
# data-composition-vs-scale experiment.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "model": dict(n_layer=2, n_head=2, n_kv_head=2, n_embd=32, ffn_hidden=64, max_seq_len=512),
        "data": dict(vocab_size=512, tokenizer_docs=600),
        "world": dict(n_train=64, n_dev=16, n_test=32, n_hard=16, n_people=12, n_probe_heldout_docs=16),
        "pretrain": dict(tokens=16_384, batch_size=8, seq_len=128, lr=3e-3, warmup_tokens=1024,
                         n_checkpoints=2, first_checkpoint_tokens=8192, eval_every=8, eval_batches=1,
                         save_every=4),
        "sft": dict(steps=4, batch_size=8),
        "rl": dict(steps=3, prompts_per_step=4, group_size=4, max_new_tokens=48),
        "branch": dict(save_every=2, eval_every=2, eval_problems=8, eval_n=4, interleave_block=2),
    },
    "small": {},
    "medium": {"model": dict(n_layer=6, n_head=6, n_kv_head=6, n_embd=192, ffn_hidden=512)},
    "large": {"model": dict(n_layer=8, n_head=8, n_kv_head=8, n_embd=256, ffn_hidden=704)},
}


def _known(name: str, value: str, known) -> None:
    if value not in known:
        raise ConfigError(f"{name}={value!r} is unknown; known: {', '.join(known)}")


def _positive(obj, *names: str) -> None:
    section = type(obj).__name__.replace("Config", "").lower()
    for n in names:
        v = getattr(obj, n)
        if v <= 0:
            raise ConfigError(f"{section}.{n}={v} must be > 0")


_check_late_options()
