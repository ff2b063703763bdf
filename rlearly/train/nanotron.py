"""nanotron interop (docs/DESIGN.md §7, extra `[scale]`): pretrain on a cluster with nanotron, branch with rlearly.

Owns two translations, neither of which imports nanotron (its PyPI 0.4 cannot import and needs CUDA and
flash-attn, docs/DESIGN.md §10); the formats are those of nanotron's GitHub main (the v0.5 layout):

1. `export_config` writes nanotron's training YAML from our Config (src/nanotron/config/config.py, which
   nanotron loads strictly: every key written here is one of its dataclass fields):
     model       LlamaConfig from model.* (rope_interleaved: false, so nanotron trains in HF's rotary
                 layout), vocabulary and special ids from the tokenizer;
     tokens      sequence_length = pretrain.seq_len, train_steps = pretrain.total_steps, and
                 dp x micro_batch_size x batch_accumulation_per_replica = pretrain.batch_size;
     optimizer   AdamW (betas, eps 1e-8, weight decay off for embeddings and norms, as make_adamw), clip,
                 linear warmup over warmup_tokens then cosine to min_lr_ratio x lr at the last step;
     checkpoints checkpoint_interval = gcd of our checkpoint steps (the steps to convert are listed);
     data_stages one stage from step 1: a hub corpus as itself, anything else (the synthetic world, a
                 local file, a mixture) as `docs` documents drawn by rlearly's own Mixture and written to
                 data/train.jsonl, each ending in the EOS token as in rlearly's packing; or (`nanoset`)
                 the whole run's rows, pre-tokenized as rlearly's trainer packs them, streamed into a
                 datatrove token file for nanotron's Nanoset (`write_nanoset`).
   Beside it go rlearly.yaml (our config) and tokenizer/ (trained as `rlearly pretrain` trains it).

2. `convert_checkpoint` turns a nanotron checkpoint (a step directory, or the checkpoints folder with
   latest.txt) into an rlearly checkpoint (HF Llama layout + meta.json, rlearly.lm.checkpoint):
     model_config.json          the LlamaConfig; checkpoint_metadata.json: last step, tokens consumed;
     model/<dotted name as dirs>/model_weight[_pp-rank-P-of-N_tp-rank-T-of-M].safetensors
                                one tensor per file (key "data"); tensor-parallel shards carry
                                "local_global_slices_pairs" and "unsharded_shape" and are merged;
     attn.qkv_proj.weight       rows [q (n_head*hd) | k (n_kv*hd) | v (n_kv*hd)], split into q/k/v_proj;
     mlp.gate_up_proj.weight    rows [gate | up], split into gate_proj / up_proj;
     rotary                     with rope_interleaved (nanotron's only layout before v0.5, where the key
                                is absent) each head rotates pairs (2i, 2i+1); rlearly and HF rotate
                                (i, i + hd/2): the q and k rows of every head are reordered 0,2,4,..,1,3,5,..;
     vocabulary                 rows past the tokenizer's vocabulary (make_vocab_size_divisible_by
                                padding) are dropped: no token id reaches them.

3. `pretrain` is a pretraining run (`pretrain.engine: nanotron`, a study's pretraining node): 1, then
   `pretrain.nanotron_launch`, then 2 for every checkpoint of our schedule, in `rlearly pretrain`'s layout.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import yaml

from rlearly.config import Config, ModelConfig, load_config
from rlearly.errors import CheckpointError, ConfigError, RlearlyError
from rlearly.extras import require

DECODER = "model.decoder.{i}.pp_block."
EMBED = "model.token_position_embeddings.pp_block.token_embedding.weight"
FINAL_NORM = "model.final_layer_norm.pp_block.weight"
LM_HEAD = "model.lm_head.pp_block.weight"
# parameter names nanotron must not weight-decay (regexes matched from the start, as nanotron does)
NO_DECAY = [".*token_embedding.*", ".*layernorm.*", ".*final_layer_norm.*"]
_SHARD_FILE = re.compile(r"model_(?P<param>[a-z_]+?)(_pp-rank-\d+-of-\d+_tp-rank-\d+-of-\d+(_exp-rank-\d+-of-\d+)?)?"
                         r"\.safetensors")


# ---------------------------------------------------------------- 1. config

def nanotron_config(cfg: Config, *, tokenizer_path: str, vocab_size: int, special_ids: dict, dataset: dict,
                    checkpoints_path: str = "checkpoints", dp: int = 1, micro_batch_size: int | None = None,
                    checkpoint_interval: int | None = None, dtype: str = "bfloat16") -> dict:
    """nanotron's config as a dict (see the module docstring for the mapping)."""
    m, pc = cfg.model, cfg.pretrain
    if m.family != "llama":
        raise ConfigError(f"model.family={m.family}: nanotron's model here is its Llama; export model.family=llama")
    if dp < 1 or pc.batch_size % dp:
        raise ConfigError(f"--dp {dp} must divide pretrain.batch_size={pc.batch_size}")
    mbs = micro_batch_size or pc.batch_size // dp
    if mbs < 1 or (pc.batch_size // dp) % mbs:
        raise ConfigError(f"--micro-batch-size {mbs} must divide pretrain.batch_size / dp = {pc.batch_size // dp}")
    warmup = pc.warmup_tokens // pc.tokens_per_step
    steps = pc.checkpoint_steps()
    interval = checkpoint_interval or math.gcd(*steps[:-1] or steps)
    model_config = dict(
        is_llama_config=True, hidden_act="silu", attention_bias=False, hidden_size=m.n_embd,
        intermediate_size=m.ffn_hidden, num_hidden_layers=m.n_layer, num_attention_heads=m.n_head,
        num_key_value_heads=m.n_kv_head, max_position_embeddings=m.max_seq_len, rms_norm_eps=m.norm_eps,
        rope_theta=m.rope_theta, rope_interleaved=False, rope_scaling=None, tie_word_embeddings=m.tie_embeddings,
        initializer_range=m.init_std, vocab_size=vocab_size, pretraining_tp=1, use_cache=True, **special_ids)
    return {
        "general": {"project": "rlearly", "run": f"pretrain-{cfg.hash()}", "seed": cfg.seed,
                    "ignore_sanity_checks": True},
        "parallelism": {"dp": dp, "pp": 1, "tp": 1, "pp_engine": "1f1b", "tp_mode": "REDUCE_SCATTER",
                        "tp_linear_async_communication": True},
        "model": {"ddp_bucket_cap_mb": 25, "dtype": dtype, "init_method": {"std": m.init_std},
                  "make_vocab_size_divisible_by": 1, "model_config": model_config},
        "tokenizer": {"tokenizer_name_or_path": str(tokenizer_path), "tokenizer_max_length": m.max_seq_len},
        "checkpoints": {"checkpoints_path": str(checkpoints_path), "checkpoint_interval": int(interval),
                        "save_initial_state": False, "save_final_state": True},
        "logging": {"log_level": "info", "log_level_replica": "info", "iteration_step_info_interval": 1},
        "tokens": {"sequence_length": pc.seq_len, "train_steps": pc.total_steps, "micro_batch_size": mbs,
                   "batch_accumulation_per_replica": pc.batch_size // dp // mbs},
        "optimizer": {
            "optimizer_factory": {"name": "adamW", "adam_beta1": pc.beta1, "adam_beta2": pc.beta2,
                                  "adam_eps": 1e-8, "torch_adam_is_fused": True},
            "zero_stage": 0, "weight_decay": pc.weight_decay, "weight_decay_exclude_named_params": NO_DECAY,
            "clip_grad": pc.grad_clip, "accumulate_grad_in_fp32": True,
            "learning_rate_scheduler": {
                "learning_rate": pc.lr, "lr_warmup_steps": warmup, "lr_warmup_style": "linear",
                "lr_decay_style": "cosine", "lr_decay_steps": max(1, pc.total_steps - warmup),
                "min_decay_lr": pc.lr * pc.min_lr_ratio}},
        "data_stages": [{"name": "rlearly pretraining mixture", "start_training_step": 1,
                         "data": {"dataset": dataset, "seed": cfg.seed, "num_loading_workers": 1}}],
    }


def export_config(cfg: Config, out_dir: str | Path, *, docs: int = 100_000, tokenizer: str | Path | None = None,
                  checkpoints_path: str | None = None, dp: int = 1, micro_batch_size: int | None = None,
                  checkpoint_interval: int | None = None, nanoset: bool = False) -> dict:
    """Write nanotron.yaml, rlearly.yaml, tokenizer/ (unless `tokenizer` names one) and, unless the corpus
    is a single hub dataset, data/train.jsonl into out_dir. With `nanoset`, the data are instead the whole
    run's pre-tokenized rows in data/nanoset/ (`write_nanoset`). Returns the paths and the steps to convert."""
    from rlearly.data.corpora import is_hub_dataset
    from rlearly.data.mixture import Mixture
    from rlearly.data.world import World
    from rlearly.files import write_atomic
    from rlearly.lm.tokenizer import Tokenizer, train_tokenizer

    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    d = cfg.data
    # one hub dataset nanotron reads itself; a Nanoset holds rlearly's own rows, whatever the corpus
    hub = not nanoset and d.corpus_fraction == 1.0 and is_hub_dataset(d.corpus)
    mixture = None if hub and tokenizer else Mixture(cfg, World(cfg.world))
    if tokenizer:
        tok_dir = Path(tokenizer).resolve()
        tok = Tokenizer.load(tok_dir)
    else:
        tok_dir = out / "tokenizer"
        tok = train_tokenizer(mixture.tokenizer_corpus(d.tokenizer_docs, cfg.world.seed), d.vocab_size)
        tok_dir.mkdir(exist_ok=True)
        tok.save(tok_dir, cfg.model.max_seq_len)
    if hub:
        dataset, data_dir = {"hf_dataset_or_datasets": d.corpus, "hf_dataset_splits": "train",
                             "text_column_name": d.text_field}, None
    elif nanoset:
        data_dir = out / "data" / "nanoset"
        dataset = write_nanoset(cfg, mixture, tok, data_dir)
        dataset["tokenizer_name"] = str(tok_dir)
    else:
        data_dir = out / "data"
        data_dir.mkdir(exist_ok=True)
        write_atomic(data_dir / "train.jsonl", _documents(cfg, mixture, docs))
        dataset = {"hf_dataset_or_datasets": str(data_dir), "hf_dataset_splits": "train", "text_column_name": "text"}
    specials = {"bos_token_id": tok.bos_id, "eos_token_id": tok.eos_id, "pad_token_id": tok.pad_id}
    nt = nanotron_config(cfg, tokenizer_path=str(tok_dir), vocab_size=tok.vocab_size, special_ids=specials,
                         dataset=dataset, checkpoints_path=checkpoints_path or str(out / "checkpoints"), dp=dp,
                         micro_batch_size=micro_batch_size, checkpoint_interval=checkpoint_interval)
    steps = cfg.pretrain.checkpoint_steps()
    head = ("# nanotron training config written by `rlearly export nanotron-config` from rlearly.yaml "
            f"(config hash {cfg.hash()}).\n# Checkpoints to convert with `rlearly convert nanotron` (our schedule): "
            f"steps {', '.join(map(str, steps))}\n")
    write_atomic(out / "nanotron.yaml", head + yaml.safe_dump(nt, sort_keys=False))
    write_atomic(out / "rlearly.yaml", cfg.to_yaml())
    return {"config": out / "nanotron.yaml", "rlearly_config": out / "rlearly.yaml", "tokenizer": tok_dir,
            "data": data_dir, "checkpoint_steps": steps,
            "checkpoint_interval": nt["checkpoints"]["checkpoint_interval"]}


def write_nanoset(cfg: Config, mixture, tok, folder: str | Path) -> dict:
    """The whole run's pretraining rows as rlearly's own trainer draws them (PretrainBatches, step by step: the
    same packed documents, each row seq_len + 1 tokens), streamed into one datatrove token file that nanotron's
    Nanoset reads: `rlearly_00000.ds` (the tokens, little-endian uint16, or uint32 past 65,535 ids) and its
    `.ds.index` (uint64 ends, one per row, so positions restart at each row as in rlearly's trainer). Memory is
    one batch. Nanoset shuffles the rows; their contents are rlearly's. Returns the data stage's dataset."""
    import numpy as np
    import torch

    from rlearly.data.mixture import PretrainBatches

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    size = 2 if tok.vocab_size <= 2 ** 16 else 4
    dtype = np.dtype("<u2" if size == 2 else "<u4")
    pc, batches = cfg.pretrain, PretrainBatches(cfg, mixture, tok)
    width, path = pc.seq_len + 1, folder / "rlearly_00000.ds"
    tmp, tmp_index = folder / ".rlearly_00000.ds.tmp", folder / ".rlearly_00000.ds.index.tmp"
    with open(tmp, "wb") as data, open(tmp_index, "wb") as index:
        for step in range(pc.total_steps):
            x, y = batches.batch(step)
            data.write(torch.cat([x, y[:, -1:]], 1).numpy().astype(dtype).tobytes())
            ends = (step * pc.batch_size + np.arange(1, pc.batch_size + 1)) * width
            index.write(ends.astype("<u8").tobytes())
    tmp.replace(path)
    tmp_index.replace(folder / "rlearly_00000.ds.index")
    return {"dataset_folder": [str(folder)], "dataset_weights": [1.0], "vocab_size": tok.vocab_size,
            "token_size_in_bytes": size, "return_positions": True}


def _documents(cfg: Config, mixture, n: int) -> str:
    """n documents of rlearly's mixture (deterministic in cfg.seed) as JSON lines, each ending in EOS."""
    import numpy as np

    from rlearly.lm.tokenizer import EOS

    if n < 1:
        raise ConfigError(f"--docs {n} must be >= 1")
    rng = np.random.default_rng([cfg.seed, 0x4E54])
    return "".join(json.dumps({"text": mixture.document(rng) + EOS}) + "\n" for _ in range(n))


def check_config(path: str | Path):
    """Load a written config with nanotron's own strict loader ([scale] extra): a key nanotron does not
    know, or a value it rejects, is one RlearlyError line."""
    nt = require("nanotron.config", "scale", "checking a nanotron config",
                 " (nanotron's GitHub main; the PyPI 0.4 cannot import)")
    try:
        return nt.get_config_from_file(str(path))
    except Exception as e:  # dacite and nanotron's own checks: name the file and the first line
        raise RlearlyError(f"{path}: nanotron rejects this config ({type(e).__name__}: "
                           f"{str(e).splitlines()[0] if str(e) else ''})") from None


# ---------------------------------------------------------------- 2. checkpoints

def step_dir(src: str | Path) -> Path:
    """The checkpoint step directory: `src` itself, or src/<latest.txt> for a checkpoints folder."""
    src = Path(src)
    if (src / "latest.txt").is_file() and not (src / "model").is_dir():
        src = src / (src / "latest.txt").read_text().strip()
    if not (src / "model").is_dir() or not (src / "model_config.json").is_file():
        raise CheckpointError(f"{src} is not a nanotron checkpoint (needs model/ and model_config.json)")
    return src


def model_config(nt: dict, where: Path) -> ModelConfig:
    """rlearly's ModelConfig from nanotron's model_config.json (Llama only, silu, no biases, plain RoPE)."""
    if nt.get("is_qwen2_config") or nt.get("is_starcoder2_config") or nt.get("moe_config"):
        raise CheckpointError(f"{where}: only nanotron Llama checkpoints convert (this one is another model)")
    bad = {k: nt[k] for k in ("hidden_act", "attention_bias", "rope_scaling")
           if k in nt and nt[k] not in ("silu", False, None)}
    if bad:
        raise CheckpointError(f"{where}: unsupported {bad} (rlearly's Llama has silu, no biases, plain RoPE)")
    try:
        n_head = int(nt["num_attention_heads"])
        return ModelConfig(n_layer=int(nt["num_hidden_layers"]), n_head=n_head,
                           n_kv_head=int(nt.get("num_key_value_heads") or n_head), n_embd=int(nt["hidden_size"]),
                           ffn_hidden=int(nt["intermediate_size"]), max_seq_len=int(nt["max_position_embeddings"]),
                           rope_theta=float(nt.get("rope_theta", 10000.0)),
                           norm_eps=float(nt.get("rms_norm_eps", 1e-6)),
                           tie_embeddings=bool(nt.get("tie_word_embeddings", False)),
                           init_std=float(nt.get("initializer_range", 0.02)))
    except KeyError as e:
        raise CheckpointError(f"{where}/model_config.json lacks {e.args[0]!r}") from None
    except (TypeError, ValueError, ConfigError) as e:
        raise CheckpointError(f"{where}/model_config.json: {e}") from None


def read_tensors(model_dir: Path) -> dict:
    """{dotted name: full tensor} of a nanotron model/ folder, tensor-parallel shards merged."""
    import torch
    from safetensors import safe_open

    full, filled = {}, {}
    for f in sorted(model_dir.rglob("*.safetensors")):
        m = _SHARD_FILE.fullmatch(f.name)
        if m is None:
            raise CheckpointError(f"{f}: not a nanotron weight file name (model_<param>[_pp-rank-..].safetensors)")
        name = ".".join([*f.relative_to(model_dir).parent.parts, m.group("param")])
        try:
            with safe_open(str(f), framework="pt") as fh:
                meta, t = fh.metadata() or {}, fh.get_tensor("data")
        except Exception as e:  # truncated or foreign file
            raise CheckpointError(f"{f} is corrupt or not a nanotron tensor file ({type(e).__name__})") from None
        if "unsharded_shape" not in meta:
            full[name] = t
            continue
        shape = _shape(meta["unsharded_shape"])
        if name not in full:
            full[name], filled[name] = t.new_zeros(shape), torch.zeros(shape, dtype=torch.bool)
        for local, glob in _slices(meta["local_global_slices_pairs"]):
            full[name][glob] = t[local]
            filled[name][glob] = True
    for name, mask in filled.items():
        if not bool(mask.all()):
            raise CheckpointError(f"{model_dir}: tensor-parallel shards of {name} do not cover the whole tensor")
    if not full:
        raise CheckpointError(f"{model_dir} holds no .safetensors weights")
    return full


def to_hf_state(t: dict, mc: ModelConfig, interleaved: bool, vocab_size: int) -> dict:
    """nanotron tensors -> rlearly/HF Llama state dict (fused projections split, rotary reordered)."""
    hd, nq, nkv = mc.head_dim, mc.n_head, mc.n_kv_head

    def get(name):
        if name not in t:
            raise CheckpointError(f"nanotron checkpoint lacks tensor {name}")
        return t[name].float()

    def half_split(w, heads):  # (heads*hd, in): per head rows 0,2,4,..,1,3,5,.. (interleaved -> half-split)
        w = w.view(heads, hd // 2, 2, -1).transpose(1, 2)
        return w.reshape(heads * hd, -1)

    embed = get(EMBED)
    if embed.shape[0] < vocab_size:
        raise CheckpointError(f"the tokenizer has {vocab_size} tokens but the checkpoint's embedding only "
                              f"{embed.shape[0]} rows: wrong tokenizer")
    state = {"model.embed_tokens.weight": embed[:vocab_size], "model.norm.weight": get(FINAL_NORM)}
    if not mc.tie_embeddings:
        state["lm_head.weight"] = get(LM_HEAD)[:vocab_size]
    for i in range(mc.n_layer):
        p, hf = DECODER.format(i=i), f"model.layers.{i}."
        qkv = get(p + "attn.qkv_proj.weight")
        if qkv.shape[0] != (nq + 2 * nkv) * hd:
            raise CheckpointError(f"{p}attn.qkv_proj.weight has {qkv.shape[0]} rows, expected "
                                  f"(n_head + 2 n_kv_head) x head_dim = {(nq + 2 * nkv) * hd}")
        q, k, v = qkv.split([nq * hd, nkv * hd, nkv * hd])
        if interleaved:
            q, k = half_split(q, nq), half_split(k, nkv)
        gate, up = get(p + "mlp.gate_up_proj.weight").chunk(2)
        state.update({hf + "self_attn.q_proj.weight": q, hf + "self_attn.k_proj.weight": k,
                      hf + "self_attn.v_proj.weight": v, hf + "self_attn.o_proj.weight": get(p + "attn.o_proj.weight"),
                      hf + "mlp.gate_proj.weight": gate, hf + "mlp.up_proj.weight": up,
                      hf + "mlp.down_proj.weight": get(p + "mlp.down_proj.weight"),
                      hf + "input_layernorm.weight": get(p + "input_layernorm.weight"),
                      hf + "post_attention_layernorm.weight": get(p + "post_attention_layernorm.weight")})
    return {k: v.contiguous() for k, v in state.items()}


def convert_checkpoint(src: str | Path, out: str | Path, *, tokenizer: str | Path | None = None,
                       config: str | Path | None = None, interleaved: bool | None = None) -> Path:
    """Convert a nanotron checkpoint into an rlearly checkpoint at `out` (atomic, with meta.json).

    `tokenizer`: a folder with rlearly's tokenizer.json (default: the one the checkpoint's config.yaml
    names, as `export_config` wrote it). `config`: our config to save beside it (default: rlearly.yaml
    next to that tokenizer, else the defaults), its model section taken from the checkpoint. `interleaved`:
    the rotary layout (default: model_config.json's rope_interleaved, True when the key is absent)."""
    from rlearly.lm.checkpoint import save_checkpoint
    from rlearly.lm.model import LlamaLM
    from rlearly.lm.tokenizer import Tokenizer

    src = step_dir(src)
    nt = _read_json(src / "model_config.json")
    mc = model_config(nt, src)
    tok_dir = Path(tokenizer) if tokenizer else _tokenizer_of(src)
    tok = Tokenizer.load(tok_dir)
    if config is None and (tok_dir.parent / "rlearly.yaml").is_file():
        config = tok_dir.parent / "rlearly.yaml"
    cfg = load_config(config) if config else Config()
    cfg = dataclasses.replace(cfg, model=mc, data=dataclasses.replace(cfg.data, vocab_size=tok.vocab_size))
    if interleaved is None:
        interleaved = bool(nt.get("rope_interleaved", True))
    state = to_hf_state(read_tensors(src / "model"), mc, interleaved, tok.vocab_size)
    model = LlamaLM(mc, tok.vocab_size)
    if mc.tie_embeddings:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{src}: weights do not fit model_config.json (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]})")
    step, tokens = _progress(src, cfg)
    meta = dict(method="nanotron", parent=str(src.resolve()), step=step, tokens=tokens, seed=cfg.seed,
                config_hash=cfg.hash(), source={"format": "nanotron", "rope_interleaved": interleaved,
                                                "tokenizer": str(Path(tok_dir).resolve())})
    return save_checkpoint(out, model, tok, meta, cfg)


def _tokenizer_of(src: Path) -> Path:
    f = src / "config.yaml"
    path = None
    if f.is_file():
        try:
            path = ((yaml.safe_load(f.read_text()) or {}).get("tokenizer") or {}).get("tokenizer_name_or_path")
        except yaml.YAMLError:
            path = None
    if not path or not (Path(path) / "tokenizer.json").is_file():
        raise CheckpointError(f"{src}: no local tokenizer named in its config.yaml; pass --tokenizer DIR "
                              "(a folder with rlearly's tokenizer.json, e.g. the export's tokenizer/)")
    return Path(path)


def _progress(src: Path, cfg: Config) -> tuple[int | None, int | None]:
    """(last train step, tokens consumed) from checkpoint_metadata.json, when it says."""
    f = src / "checkpoint_metadata.json"
    if not f.is_file():
        return None, None
    metas = _read_json(f).get("metas") or {}
    step, tokens = metas.get("last_train_step"), metas.get("consumed_tokens_total")
    if tokens is None and metas.get("consumed_train_samples") is not None:
        tokens = int(metas["consumed_train_samples"]) * cfg.pretrain.seq_len
    return step, tokens


def _read_json(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{path} is missing or not valid JSON") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} must hold a JSON object")
    return obj


def _shape(text: str) -> tuple[int, ...]:
    """"(768, 256)" (or numpy's "(np.int64(768), 256)") -> (768, 256)."""
    dims = []
    for piece in text.strip().strip("()").split(","):
        piece = piece.strip()
        if piece:
            inner = re.search(r"\((\d+)\)", piece)
            dims.append(int(inner.group(1) if inner else piece))
    return tuple(dims)


def _slices(text: str) -> list[tuple[tuple[slice, ...], tuple[slice, ...]]]:
    """nanotron's SlicesPair text "0,10,None|None,None,None#...;..." -> [(local slices, global slices)]."""
    def one(s):
        return tuple(slice(*(None if x == "None" else int(x) for x in part.split(","))) for part in s.split("|"))
    return [tuple(one(side) for side in pair.split("#")) for pair in text.split(";") if pair]


# ---------------------------------------------------------------- 3. a pretraining run

def pretrain(cfg: Config, out_dir: str | Path) -> Path:
    """A pretraining run trained by nanotron (`pretrain.engine: nanotron`): its config exported into
    <out>/nanotron, `pretrain.nanotron_launch` run there ({config}: the exported nanotron.yaml; output in
    <out>/nanotron/train.log), then every checkpoint of our schedule converted into <out>/ckpt-<tokens>, the
    layout `rlearly pretrain` writes, so branches and evaluations read it unchanged. meta.json records the engine
    and the launch command. A run whose checkpoints are all there already is converted without launching again."""
    import shlex
    import subprocess

    from rlearly.files import write_atomic
    from rlearly.lm.checkpoint import provenance, read_meta
    from rlearly.train.common import ckpt_name, claim_run_dir

    out = Path(out_dir)
    claim_run_dir(out, cfg)
    if (out / "DONE").exists():
        return out
    if not cfg.pretrain.nanotron_launch.strip():
        raise ConfigError("pretrain.engine=nanotron needs pretrain.nanotron_launch, the command that trains "
                          "(e.g. 'torchrun --nproc_per_node 8 run_train.py --config-file {config}')")
    work = out / "nanotron"
    if not (work / "nanotron.yaml").is_file():
        export_config(cfg, work, nanoset=True)  # the run's own rows, pre-tokenized
    steps, ckpts = cfg.pretrain.checkpoint_steps(), work / "checkpoints"
    if not all((ckpts / str(s) / "model_config.json").is_file() for s in steps):
        cmd = [a.replace("{config}", str(work / "nanotron.yaml")) for a in shlex.split(cfg.pretrain.nanotron_launch)]
        with open(work / "train.log", "ab") as log:
            try:
                rc = subprocess.run(cmd, cwd=work, stdout=log, stderr=subprocess.STDOUT).returncode
            except OSError as e:
                raise RlearlyError(f"pretrain.nanotron_launch could not start {cmd[0]!r}: {e.strerror}") from None
        if rc:
            raise RlearlyError(f"nanotron pretraining failed (exit {rc}); its output: {work / 'train.log'}")
    names = []
    for s in steps:
        src, tokens = ckpts / str(s), s * cfg.pretrain.tokens_per_step
        if not (src / "model_config.json").is_file():
            raise RlearlyError(f"nanotron wrote no checkpoint at step {s} ({src}); our schedule needs steps "
                               f"{', '.join(map(str, steps))}: see {work / 'train.log'}")
        dest = out / ckpt_name(tokens)
        if not (dest / "meta.json").is_file():
            convert_checkpoint(src, dest, tokenizer=work / "tokenizer", config=work / "rlearly.yaml", interleaved=False)
        got = read_meta(dest).get("step")
        if got not in (s, None):
            raise RlearlyError(f"{src} holds step {got}, not {s}: a checkpoint of another run?")
        names.append(dest.name)
    meta = dict(method="pretrain", engine="nanotron", launch=cfg.pretrain.nanotron_launch, parent=None, seed=cfg.seed,
                config_hash=cfg.hash(), steps=steps[-1], tokens=steps[-1] * cfg.pretrain.tokens_per_step,
                checkpoints=names, **provenance())
    write_atomic(out / "meta.json", json.dumps(meta, indent=2) + "\n")
    write_atomic(out / "DONE", "")
    return out
