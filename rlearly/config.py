"""One typed config tree for every stage, with strict loading, YAML round-trip and dotted overrides.

A config is a tree of dataclasses. Loading is strict: an unknown key or a value of the wrong type raises
`ConfigError` naming the dotted field. Overrides such as `pretrain.lr=1e-4` work the same from the CLI,
a study YAML and a notebook's parameters (`load_config(overrides=[...])`).

A *preset* is a named set of overrides applied first (`tiny` for tests, `small` for the default study,
`medium`/`large` for the model-scale experiment); anything given after it wins.

Configs age through a *schema*: SCHEMA is bumped whenever the same settings would build other results (a
default changed, a key renamed, a recipe's code changed what it computes). It is part of every config hash, so
no run of older code is reused, and `config.yaml` records it. A file of an older schema loads through MIGRATIONS
(renamed keys, explicitly); a key renamed since is an error naming its new name. Within one schema an option
may be added as `late(...)`: at its no-op value it is left out of the hash, so adding it renames no run.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from rlearly.errors import ConfigError

# The config schema (module docstring). Schema 1 is every config written before schemas existed (no `schema`
# key); it hashes exactly as those did.
SCHEMA = 1
# Keys renamed by the schema that renamed them: {schema: {old dotted key: new dotted key}}. A file of schema s
# is migrated through every entry above s, in order.
MIGRATIONS: dict[int, dict[str, str]] = {}


def execution(default):
    """A field that says where or how fast a result is computed, not what it is (the device): recorded in
    config.yaml and each artifact's meta.json, left out of the hash, so a study made on a laptop is reused on a
    GPU node and a node planned on a login node without a GPU keeps its name on the GPU node that runs it."""
    return field(default=default, metadata={"execution": True})


def late(noop, *, default=None):
    """A field added within a schema: `noop` is the value that reproduces the code from before it existed, and
    must be its default (checked at import). Configs at that value hash as if the field did not exist."""
    if isinstance(noop, list):  # a mutable no-op (an empty list): each config gets its own
        return field(default_factory=lambda: list(noop), metadata={"late": noop})
    return field(default=noop if default is None else default, metadata={"late": noop})


@dataclass
class ModelConfig:
    n_layer: int = 4  # transformer blocks
    n_head: int = 4  # query heads
    n_kv_head: int = 4  # key/value heads (< n_head = grouped-query attention)
    n_embd: int = 128  # residual width
    ffn_hidden: int = 352  # SwiGLU hidden width (~8/3 * n_embd, rounded)
    max_seq_len: int = 512  # longest context (RoPE has no learned table; this bounds the KV cache)
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = False  # the paper's OLMo2 unties input and output embeddings
    init_std: float = 0.02

    def __post_init__(self):
        _positive(self, "n_layer", "n_head", "n_kv_head", "n_embd", "ffn_hidden", "max_seq_len")
        if self.n_embd % self.n_head:
            raise ConfigError(f"model.n_embd={self.n_embd} must be divisible by model.n_head={self.n_head}")
        if self.n_head % self.n_kv_head:
            raise ConfigError(f"model.n_head={self.n_head} must be divisible by model.n_kv_head={self.n_kv_head}")
        if (self.n_embd // self.n_head) % 2:
            raise ConfigError("model head size (n_embd / n_head) must be even for RoPE")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


@dataclass
class WorldConfig:
    """The embedded synthetic world (docs/DESIGN.md §4): GSM-like math problems and a general knowledge world."""

    seed: int = 1234  # fixes entities, facts and the train/test/hard splits
    math_fraction: float = 0.3  # share of pretraining documents that are math problems with solutions
    hard_fraction: float = 0.0  # share of pretraining math documents drawn at hard difficulty
    format_fraction: float = 0.1  # share of pretraining math documents ending in the graded \boxed{} format
    drill_fraction: float = 0.0  # share of pretraining math documents that are bare arithmetic facts
    min_ops: int = 3  # train/dev/test difficulty: number of arithmetic operations (the final combine included)
    max_ops: int = 5
    hard_min_ops: int = 6  # the `hard` split (MATH analogue)
    hard_max_ops: int = 7
    max_value: int = 30  # every quantity and intermediate result stays in [2, max_value]
    min_people: int = 2  # people per problem, each with >= 1 event: 2-3 people need two running counts, so no
    max_people: int = 3  # chain of guessed operations on the question's numbers is a solution (1 = one chain)
    scoring: str = "steps"  # "steps": the equations must be the problem's steps (no guess earns it); "answer"
    #                         the boxed integer alone (rlearly.data.math_world.is_correct)
    n_train: int = 2000  # RL/SFT prompts
    n_dev: int = 300  # validation during training and every tuning choice (never test or hard)
    n_test: int = 500  # GSM8K analogue
    n_hard: int = 300  # MATH analogue
    max_solutions: int = 24  # cap on distinct demonstrations per problem (SFT-Gold)
    n_people: int = 60  # entities of the general world, each with consistent facts
    people_zipf: float = late(0.0)  # popularity: person i is the subject of a share of documents ∝ (i+1)^-s
    n_probe_heldout_docs: int = 200  # held-out general documents for the general-capability NLL

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

    corpus: str = "synthetic"  # "synthetic", a local file (.jsonl/.json/.parquet/.txt) or a hub dataset id
    text_field: str = "text"  # column holding the document text for a real corpus
    corpus_fraction: float = 1.0  # with a real corpus: share of documents from it (rest: synthetic world)
    vocab_size: int = 1024  # byte-level BPE vocabulary, special tokens included
    tokenizer_docs: int = 4000  # documents used to train the tokenizer

    def __post_init__(self):
        if not 0.0 <= self.corpus_fraction <= 1.0:
            raise ConfigError(f"data.corpus_fraction={self.corpus_fraction} must lie in [0, 1]")
        if self.vocab_size < 300:
            raise ConfigError(f"data.vocab_size={self.vocab_size} must be >= 300 (256 bytes + specials + merges)")
        _positive(self, "tokenizer_docs")


@dataclass
class PretrainConfig:
    tokens: int = 2_000_000  # total training tokens; the cosine schedule ends here
    batch_size: int = 8  # sequences per step (more steps beat bigger batches at this scale)
    seq_len: int = 256  # tokens per sequence (documents packed, each starting with BOS)
    lr: float = 5e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # cosine decays to this x peak at `tokens` (paper: 0.1)
    warmup_tokens: int = 40_000  # linear warmup (paper: 2% of tokens)
    weight_decay: float = 0.1  # not applied to embeddings or norms
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    checkpoints: list[int] = field(default_factory=list)  # token counts; empty = `n_checkpoints` log-spaced
    n_checkpoints: int = 6
    first_checkpoint_tokens: int = 200_000  # where the log-spaced schedule starts
    eval_every: int = 100  # steps between held-out loss evaluations
    eval_batches: int = 4  # batches of held-out math / general text per evaluation
    save_every: int = 200  # steps between resumable trainer-state saves (besides checkpoints)
    threads: int = 0  # torch threads; 0 = all cores
    engine: str = late("rlearly")  # nanotron: the run is nanotron's (exported config, `nanotron_launch`, converted back)
    nanotron_launch: str = execution("")  # the command that trains, {config} = the exported nanotron.yaml, e.g.
    #                                       "torchrun --nproc_per_node 8 run_train.py --config-file {config}"

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

    steps: int = 60  # optimizer steps (unless `epochs` is set)
    epochs: float = late(0.0)  # passes over the demonstrations instead of `steps` (SFT and SFT-Gold then train as
    #                            many epochs each; parallel averaging's SFT half sees at least as many demos)
    batch_size: int = 32  # examples per step (epochs over the demos in a seeded order)
    lr: float = 1e-4  # constant after warmup (paper: 4e-5, constant)
    warmup_steps: int = 0
    weight_decay: float = 0.01  # paper's SFT/RL AdamW setting
    beta1: float = 0.9
    beta2: float = 0.999
    grad_clip: float = 1.0
    loss_agg: str = "token-mean"  # one of AGG_MODES (rlearly.losses.aggregate)
    split: str = "train"  # problems whose demonstrations are trained on (same prompts as RL)
    demo_merge: float = late(0.0)  # synthetic task: demos by a stronger author, who folds each step of a person into
    #                          the previous one with this probability (one equation, several operations)

    def __post_init__(self):
        _positive(self, "steps", "batch_size")
        if not 0.0 <= self.demo_merge <= 1.0:
            raise ConfigError(f"sft.demo_merge={self.demo_merge} must lie in [0, 1]")
        if self.epochs < 0:
            raise ConfigError(f"sft.epochs={self.epochs} must be >= 0 (0 = train sft.steps steps)")
        if self.lr <= 0:
            raise ConfigError(f"sft.lr={self.lr} must be > 0")
        _known("sft.loss_agg", self.loss_agg, AGG_MODES)


AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm", "token-sum")  # rlearly.losses.aggregate
RL_BACKENDS = ("torch", "vllm")  # rollout samplers (rlearly.sampling, rlearly.vllm_backend)


@dataclass
class RLConfig:
    """GRPO with a verifiable binary reward (paper §3.1, VeRL settings scaled down)."""

    steps: int = 60  # rollout batches
    prompts_per_step: int = 16
    group_size: int = 8  # rollouts per prompt (G)
    temperature: float = 1.0  # rollout temperature (paper: 1.0; evaluation uses 0.6)
    top_p: float = 1.0
    max_new_tokens: int = 128
    lr: float = 1e-4  # constant after warmup (paper: 1e-6 at 1B scale)
    warmup_steps: int = 0
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.999
    grad_clip: float = 1.0
    mini_batches: int = 1  # optimizer updates per rollout batch, each on whole prompt groups (paper: 4)
    epochs: int = 1  # passes over each rollout batch (paper: 1)
    filter_groups: bool = late(False)  # update on groups with unequal rewards only (DAPO's filter, no resampling)
    format_score: float = late(0.0)  # reward of a wrong answer in the graded format (paper's launch scripts: 0.1)
    clip_low: float = 0.2  # ratio clipped to [1 - clip_low, 1 + clip_high]
    clip_high: float = 0.2
    dual_clip: float = 3.0  # bound on the loss of negative-advantage tokens (VeRL c=3); 0 = off
    loss_agg: str = "token-mean"  # token-mean (paper), seq-mean-token-mean, seq-mean-token-sum-norm (Dr.GRPO)
    normalize_std: bool = True  # divide group-centred rewards by the group std (GRPO) or not (Dr.GRPO)
    kl_coef: float = 0.0  # beta of the k3 KL to the start checkpoint (paper: 0.001)
    kl_estimator: str = "k3"
    split: str = "train"
    backend: str = "torch"  # rollout sampler: torch, or vllm (GPU, `[gpu]` extra; weights pushed after each update)
    # the vLLM engine (rl.backend: vllm), each at vLLM's own default when left at its no-op value
    vllm_memory: float = late(0.0)  # gpu_memory_utilization: the device's share for weights and KV cache (CPU: RAM's)
    vllm_dtype: str = late("auto")  # dtype of the engine's weights (auto: config.json's, float32 here)
    vllm_max_seqs: int = late(0)  # max_num_seqs: sequences decoded at once
    vllm_tp: int = late(1)  # tensor_parallel_size
    vllm_eager: bool = late(False)  # enforce_eager: no CUDA graphs or torch.compile (faster start, slower decode)

    def __post_init__(self):
        _positive(self, "steps", "prompts_per_step", "group_size", "max_new_tokens", "mini_batches", "epochs")
        if not 0.0 <= self.format_score < 1.0:
            raise ConfigError(f"rl.format_score={self.format_score} must lie in [0, 1): a correct answer scores 1")
        if self.lr <= 0:
            raise ConfigError(f"rl.lr={self.lr} must be > 0")
        _known("rl.loss_agg", self.loss_agg, AGG_MODES)
        _known("rl.kl_estimator", self.kl_estimator, ("k1", "k2", "k3"))
        _known("rl.backend", self.backend, RL_BACKENDS)
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

    parallel_rl_weight: float = 0.5  # parallel averaging: theta = w * theta_RL + (1 - w) * theta_SFT (paper: 1/2)
    combined_sft_weight: float = 0.5  # combined: one optimizer on lambda * L_SFT + (1 - lambda) * L_RL
    interleave_block: int = 10  # interleaved: alternate blocks of this many SFT then RL steps
    save_every: int = 20  # steps between resumable states and intermediate checkpoints
    eval_every: int = 20  # steps between quick validation pass@k measurements (0 = off)
    eval_problems: int = 64  # dev problems in the quick validation
    eval_n: int = 8  # samples per problem in the quick validation (temperature 0.6, top-p 0.95)
    patience: int = late(0)  # stop once dev validation pass@1 has not beaten its best by `min_delta` for this
    #                          many validations in a row (the paper trains "until convergence"); 0 = all steps
    min_delta: float = late(0.0)  # the rise in validation pass@1 that counts as progress
    no_signal_steps: int = late(0)  # RL alone: stop after this many first steps in which no group's rollouts got
    #                                 differing rewards (a zero policy gradient: the start solves none of them); 0 = off

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

    name: str = late("synthetic")  # a registered task; synthetic: the world of this config (world.*)
    files: list[str] = late([])  # local data files as "split=path" (e.g. train=gsm8k_train.jsonl); default: its hub
    multiline: bool = late(False)  # multi-line solutions: demonstrations keep their lines, sampling stops at EOS
    max_new_tokens: int = late(0)  # the evaluation's token budget per completion (0: the task's, 160)

    def __post_init__(self):
        bad = [f for f in self.files if not isinstance(f, str) or "=" not in f or not f.split("=", 1)[1]]
        if bad:
            raise ConfigError(f"task.files entry {bad[0]!r} must look like split=path (e.g. train=data/train.jsonl)")
        if self.name == "synthetic" and (self.files or self.multiline):
            raise ConfigError("task.files and task.multiline: the synthetic task is made from the world.* settings "
                              "(one-line solutions), not from files")
        if self.max_new_tokens < 0:
            raise ConfigError(f"task.max_new_tokens={self.max_new_tokens} must be >= 0 (0: the task's own)")

    def file_map(self) -> dict[str, str]:
        return dict(f.split("=", 1) for f in self.files)


# sections added within schema 1: at their no-op values they are left out of the hash, as if absent
NEW_SECTIONS = ("task", "runtime")
DEVICE_HELP = "auto | cpu | cuda | cuda:<i>"
DTYPES = ("fp32", "bf16")
SHARDING = ("none", "fsdp")


@dataclass
class RuntimeConfig:
    """Where and in what precision stages compute (rlearly.runtime resolves it once per process)."""

    device: str = execution("auto")  # auto = cuda where torch sees a GPU (cuda:LOCAL_RANK under torchrun), else cpu
    dtype: str = late("fp32")  # bf16: matmuls under bf16 autocast; master weights, norms, log-probs, losses in fp32
    micro_batches: int = execution(1)  # gradient accumulation: each batch (pretraining, SFT) or GRPO mini-batch
    #                                    in this many parts, each weighted by its share of the tokens (or rows)
    activation_checkpointing: bool = execution(False)  # recompute each block's activations in the backward pass
    logit_chunk: int = execution(0)  # SFT and GRPO losses: the LM head and log-probs this many positions at a time,
    #                                  recomputed in backward, so no (tokens x vocabulary) tensor is held (0: all)
    shard: str = execution("none")  # fsdp: under torchrun, FSDP2 shards weights, gradients and AdamW state over the
    #                                 ranks (pretraining); none: every rank holds the whole model (DDP-style)
    threads: int = execution(0)  # torch threads of a stage (0: pretrain.threads, whose 0 is all cores)
    compile: bool = execution(False)  # pretraining's step through torch.compile (the first step compiles, ~30 s)

    def __post_init__(self):
        import re

        _positive(self, "micro_batches")
        if self.threads < 0:
            raise ConfigError(f"runtime.threads={self.threads} must be >= 0 (0: pretrain.threads)")
        if self.logit_chunk < 0:
            raise ConfigError(f"runtime.logit_chunk={self.logit_chunk} must be >= 0 (0: no chunking)")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise ConfigError(f"runtime.device={self.device!r} must be one of {DEVICE_HELP}")
        _known("runtime.dtype", self.dtype, DTYPES)
        _known("runtime.shard", self.shard, SHARDING)


@dataclass
class Config:
    preset: str = "small"  # the size preset applied before the rest (see PRESETS)
    seed: int = 0  # training seed (init, data order); the world has its own seed
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
        from rlearly.data.math_world import WORLD_VERSION  # another generator = another world, whatever the config

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


def load_config(path: str | Path | None = None, overrides: list[str] | dict | None = None,
                preset: str | None = None) -> Config:
    """Resolve a Config: defaults <- preset <- YAML file <- overrides (dotted `a.b=v` strings or a dict)."""
    raw = migrate(read_yaml_mapping(path, "config"), path) if path is not None else {}
    for key, value in _overrides_to_pairs(overrides):
        _check_not_renamed(key)
        _set_dotted(raw, key, value)
    name = preset or raw.get("preset", "small")
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    merged = _deep_merge(PRESETS[name], raw)
    merged["preset"] = name
    return from_dict(Config, merged)


def migrate(raw: dict, where="config") -> dict:
    """A config mapping of its recorded schema (none: 1) brought to SCHEMA: renamed keys moved, in order."""
    schema = raw.pop("schema", 1)
    if not isinstance(schema, int) or isinstance(schema, bool) or not 1 <= schema <= SCHEMA:
        raise ConfigError(f"{where}: config schema {schema!r} is not one this rlearly reads (1 to {SCHEMA}); "
                          "a newer rlearly wrote it")
    for version in range(schema + 1, SCHEMA + 1):
        for old, new in MIGRATIONS.get(version, {}).items():
            value = _pop_dotted(raw, old)
            if value is not _MISSING:
                _set_dotted(raw, new, value)
    return raw


def stored_schema(path: str | Path) -> int:
    """The schema a config file was written under (1 when it records none)."""
    return read_yaml_mapping(path, "config").get("schema", 1)


_MISSING = object()


def _pop_dotted(raw: dict, key: str):
    *parents, last = key.split(".")
    node = raw
    for part in parents:
        node = node.get(part)
        if not isinstance(node, dict):
            return _MISSING
    return node.pop(last, _MISSING)


def _check_not_renamed(key: str) -> None:
    for version, renames in MIGRATIONS.items():
        if key in renames:
            raise ConfigError(f"config key '{key}' was renamed to '{renames[key]}' (config schema {version})")


def read_yaml_mapping(path: str | Path, what: str) -> dict:
    """A YAML file holding a mapping; a missing file, bad YAML or another type is one clear error."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} file not found: {p}")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{p} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p} must hold a mapping of {what} keys, got {type(raw).__name__}")
    return raw


def from_dict(cls, data: dict, prefix: str = ""):
    """Build dataclass `cls` from a dict, strictly: unknown keys and wrong types name the field."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"did you mean '{prefix}{close[0]}'? " if close else ""
            raise ConfigError(f"unknown config key '{prefix}{key}' ({hint}known in {prefix.rstrip('.') or 'top level'}: "
                              f"{', '.join(sorted(names))})")
    kwargs = {k: _coerce(hints[k], v, f"{prefix}{k}") for k, v in data.items()}
    return cls(**kwargs)


def _coerce(tp, value, name: str):
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, name + ".")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, name)
            except ConfigError:
                pass
        raise ConfigError(f"config key '{name}' has wrong type: expected {tp}, got {value!r}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"config key '{name}' must be one of {typing.get_args(tp)}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{name}' must be a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_coerce(item, v, f"{name}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{name}' must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, str):  # PyYAML reads 2e6 (no dot) as a string
                try:
                    value = float(value)
                except ValueError:
                    pass
            if isinstance(value, float) and value.is_integer():  # 3.0e6 in YAML is a float
                return int(value)
            raise ConfigError(f"config key '{name}' must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # PyYAML reads 1e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{name}' must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key '{name}' must be a string, got {value!r}")
        return value
    raise ConfigError(f"config key '{name}': unsupported type {tp}")  # a bug in the config tree, not input


def _overrides_to_pairs(overrides) -> list[tuple[str, Any]]:
    if not overrides:
        return []
    if isinstance(overrides, dict):
        return list(overrides.items())
    pairs = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, text = item.split("=", 1)
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        pairs.append((key.strip(), value))
    return pairs


def _set_dotted(raw: dict, key: str, value) -> None:
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key!r}: {part!r} is not a section")
    node[parts[-1]] = value


def _deep_merge(base: dict, top: dict) -> dict:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for k, v in top.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


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
