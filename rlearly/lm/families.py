"""Model families: the architectures of the checkpoint suites researchers branch (OLMo-2, Pythia, Qwen), each one
registered unit of switches over rlearly's one decoder (rlearly.lm.model) plus its Hugging Face layout.

    family = get_family(cfg.model.family)   # model.family: llama (default), olmo2, qwen2, qwen3, gpt_neox
    family.qk_norm, family.norm_after, ...  # what the decoder does differently (read by rlearly.lm.model)
    family.hf_config(cfg, tok)              # config.json in the family's layout (its transformers class)
    family.to_hf(state, cfg) / from_hf(...) # weight names (and GPT-NeoX's fused q/k/v) both ways

Every family keeps every fast path of the decoder (shared-prompt GRPO loss, KV-cache sampler, masked log-probs,
chunked head, bf16): the switches change what a block computes, not how it is batched. Adding one: a Family with
its switches, config.json fields and weight-name map, then `register_family` (docs/EXTENDING.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from rlearly.config import ModelConfig
from rlearly.errors import CheckpointError, ConfigError


def _same(state: dict, cfg: ModelConfig) -> dict:
    return dict(state)


@dataclass(frozen=True)
class Family:
    name: str  # model.family
    model_type: str  # config.json's model_type
    architecture: str  # the transformers class it loads as
    qk_norm: str = ""  # "": none; "proj": RMSNorm over the whole q and k projections (OLMo-2); "head": per head (Qwen3)
    qkv_bias: bool = False  # biases on the q, k and v projections (Qwen2)
    norm_after: bool = False  # norms on the attention and MLP outputs, none on their inputs (OLMo-2)
    layer_norm: bool = False  # LayerNorm with a bias instead of RMSNorm (GPT-NeoX)
    parallel_residual: bool = False  # x + attn(ln1(x)) + mlp(ln2(x)) (GPT-NeoX)
    gelu_mlp: bool = False  # up -> GELU -> down, with biases, instead of SwiGLU (GPT-NeoX)
    dense_bias: bool = False  # every projection but the head has a bias (GPT-NeoX)
    fused_qkv: bool = False  # its layout fuses q, k and v per head: no grouped-query attention (GPT-NeoX)
    hf_fields: Callable[[ModelConfig], dict] = lambda cfg: {}  # config.json fields beyond the common ones
    read_hf: Callable[[dict, str], dict] = lambda hf, where: {}  # ModelConfig fields read from config.json
    to_hf: Callable[[dict, ModelConfig], dict] = _same  # rlearly's state dict -> the family's weight names
    from_hf: Callable[[dict, ModelConfig], dict] = _same  # and back

    def hf_config(self, cfg: ModelConfig, tok) -> dict:
        """config.json of a checkpoint of this family: it loads in transformers as `architecture`."""
        common = {
            "architectures": [self.architecture], "model_type": self.model_type,
            "vocab_size": tok.vocab_size, "hidden_size": cfg.n_embd, "intermediate_size": cfg.ffn_hidden,
            "num_hidden_layers": cfg.n_layer, "num_attention_heads": cfg.n_head,
            "num_key_value_heads": cfg.n_kv_head, "head_dim": cfg.head_dim, "hidden_act": "silu",
            "max_position_embeddings": cfg.max_seq_len, "rms_norm_eps": cfg.norm_eps,
            "rope_theta": cfg.rope_theta, "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
            "tie_word_embeddings": cfg.tie_embeddings, "attention_bias": False, "mlp_bias": False,
            "initializer_range": cfg.init_std, "bos_token_id": tok.bos_id, "eos_token_id": tok.eos_id,
            "pad_token_id": tok.pad_id, "torch_dtype": "float32", "use_cache": True,
        }
        return {**common, **self.hf_fields(cfg)}

    def model_config(self, hf: dict, where: str) -> ModelConfig:
        """The ModelConfig a config.json of this family describes; what rlearly cannot compute is an error."""
        missing = [k for k in _HF_REQUIRED if not isinstance(hf.get(k), int) or isinstance(hf.get(k), bool)]
        if missing:
            raise CheckpointError(f"{where}/config.json lacks integer field(s) {missing}")
        rope = hf.get("rope_parameters") or {}
        if rope.get("rope_type", "default") != "default":
            raise CheckpointError(f"{where}: rope_type {rope['rope_type']!r} is not supported (rlearly: default RoPE)")
        theta = hf.get("rope_theta") or rope.get("rope_theta", 10000.0)
        n_head = hf["num_attention_heads"]
        fields = dict(n_layer=hf["num_hidden_layers"], n_head=n_head, n_kv_head=hf.get("num_key_value_heads") or n_head,
                      n_embd=hf["hidden_size"], ffn_hidden=hf["intermediate_size"],
                      max_seq_len=hf["max_position_embeddings"], rope_theta=float(theta),
                      norm_eps=hf.get("rms_norm_eps", 1e-5), tie_embeddings=hf.get("tie_word_embeddings", False),
                      init_std=hf.get("initializer_range", 0.02), family=self.name)
        head = hf.get("head_dim")
        if isinstance(head, int) and head and head != hf["hidden_size"] // n_head:
            fields["head_size"] = head
        return ModelConfig(**{**fields, **self.read_hf(hf, where)})


_HF_REQUIRED = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "max_position_embeddings")

FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    if family.name in FAMILIES:
        raise ValueError(f"a model family named {family.name!r} is already registered")
    FAMILIES[family.name] = family
    return family


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise ConfigError(f"model.family={name!r} is unknown; known: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def family_of_hf(hf: dict, where: str) -> Family:
    """The registered family of a config.json (its model_type); one rlearly lacks is an error naming why."""
    kind = hf.get("model_type")
    for f in FAMILIES.values():
        if kind == f.model_type:
            return f
    why = MISSING_ARCHITECTURE.get(kind, "")
    known = ", ".join(f.model_type for f in FAMILIES.values())
    raise CheckpointError(f"{where}: model_type is {kind!r}; rlearly loads {known}" + (f" ({why})" if why else ""))


# Relatives rlearly does not load, and what its decoder lacks for them
MISSING_ARCHITECTURE = {
    "olmo": "OLMo (1) needs non-parametric layer norm and QKV clipping",
    "mistral": "Mistral needs sliding-window attention",
    "gemma": "Gemma needs GeGLU, (1 + weight) RMSNorm and scaled embeddings",
    "smollm3": "SmolLM3 needs layers without RoPE",
}


def _plain_activation(hf: dict, where: str, act: str = "silu", bias: tuple[str, ...] = ("attention_bias", "mlp_bias")):
    """A SwiGLU family's config.json must name silu and no biases beyond the family's own."""
    if hf.get("hidden_act", act) != act:
        raise CheckpointError(f"{where}: unsupported hidden_act={hf['hidden_act']!r} (this family computes {act})")
    for k in bias:
        if hf.get(k, False):
            raise CheckpointError(f"{where}: unsupported {k}={hf[k]!r} (this family has no such biases)")
    return {}


register_family(Family("llama", "llama", "LlamaForCausalLM", read_hf=_plain_activation))

register_family(Family(
    "olmo2", "olmo2", "Olmo2ForCausalLM", qk_norm="proj", norm_after=True, read_hf=_plain_activation))


def _qwen_read(bias: tuple[str, ...]):
    def read(hf: dict, where: str) -> dict:
        if hf.get("use_sliding_window"):
            raise CheckpointError(f"{where}: use_sliding_window=true is not supported (rlearly attends to every token)")
        return _plain_activation(hf, where, bias=bias)
    return read


def _qwen_fields(cfg: ModelConfig) -> dict:
    return {"use_sliding_window": False, "sliding_window": None, "max_window_layers": cfg.n_layer}


register_family(Family("qwen2", "qwen2", "Qwen2ForCausalLM", qkv_bias=True, read_hf=_qwen_read(("mlp_bias",)),
                       hf_fields=lambda cfg: {**_qwen_fields(cfg), "attention_bias": True}))
register_family(Family("qwen3", "qwen3", "Qwen3ForCausalLM", qk_norm="head",
                       read_hf=_qwen_read(("attention_bias", "mlp_bias")), hf_fields=_qwen_fields))


# GPT-NeoX (Pythia): its own weight names, and q/k/v fused into one projection, interleaved per head ([q, k, v] of
# head 0, then of head 1, ...), as transformers' GPTNeoXAttention splits it.
_NEOX = {"model.embed_tokens.": "gpt_neox.embed_in.", "model.norm.": "gpt_neox.final_layer_norm.",
         "lm_head.": "embed_out.", ".self_attn.o_proj.": ".attention.dense.", ".mlp.up_proj.": ".mlp.dense_h_to_4h.",
         ".mlp.down_proj.": ".mlp.dense_4h_to_h.", "model.layers.": "gpt_neox.layers."}


def _rename(name: str, table: dict) -> str:
    for a, b in table.items():
        name = name.replace(a, b)
    return name


def _neox_to_hf(state: dict, cfg: ModelConfig) -> dict:
    out, fused = {}, {}
    for k, v in state.items():
        if ".self_attn.q_proj." in k or ".self_attn.k_proj." in k or ".self_attn.v_proj." in k:
            layer, _, rest = k.partition(".self_attn.")
            fused.setdefault((layer, rest.split(".")[1]), {})[rest[0]] = v
        else:
            out[_rename(k, _NEOX)] = v
    for (layer, kind), parts in fused.items():
        q, k_, v = parts["q"], parts["k"], parts["v"]
        qkv = torch.stack([t.reshape(cfg.n_head, cfg.head_dim, *t.shape[1:]) for t in (q, k_, v)], 1)  # (H, 3, hd, ..)
        out[_rename(layer, _NEOX) + f".attention.query_key_value.{kind}"] = qkv.reshape(3 * q.shape[0], *q.shape[1:])
    return out


def _neox_from_hf(state: dict, cfg: ModelConfig) -> dict:
    back = {b: a for a, b in _NEOX.items()}
    out = {}
    for k, v in state.items():
        if k.endswith((".attention.bias", ".attention.masked_bias", ".rotary_emb.inv_freq")):
            continue  # buffers older GPT-NeoX checkpoints saved: recomputed, not weights
        if ".attention.query_key_value." in k:
            layer, _, kind = k.partition(".attention.query_key_value.")
            qkv = v.reshape(cfg.n_head, 3, cfg.head_dim, *v.shape[1:])  # (H, 3, hd, ...)
            for i, name in enumerate("qkv"):
                out[_rename(layer, back) + f".self_attn.{name}_proj.{kind}"] = qkv[:, i].reshape(-1, *v.shape[1:])
        else:
            out[_rename(k.replace("lm_head.", "embed_out."), back)] = v  # transformers 5 saves the head as lm_head
    return out


def _neox_fields(cfg: ModelConfig) -> dict:
    return {"hidden_act": "gelu", "layer_norm_eps": cfg.norm_eps, "use_parallel_residual": True,
            "rotary_pct": cfg.rotary_fraction, "rotary_emb_base": cfg.rope_theta, "attention_bias": True,
            "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta,
                                "partial_rotary_factor": cfg.rotary_fraction},
            "num_key_value_heads": cfg.n_head}


def _neox_read(hf: dict, where: str) -> dict:
    if not hf.get("use_parallel_residual", True):
        raise CheckpointError(f"{where}: use_parallel_residual=false is not supported (Pythia's is true)")
    if hf.get("hidden_act", "gelu") != "gelu":
        raise CheckpointError(f"{where}: unsupported hidden_act={hf['hidden_act']!r} (GPT-NeoX here computes gelu)")
    if not hf.get("attention_bias", True):
        raise CheckpointError(f"{where}: attention_bias=false is not supported (Pythia's projections have biases)")
    rope = hf.get("rope_parameters") or {}
    theta = rope.get("rope_theta", hf.get("rotary_emb_base", hf.get("rope_theta", 10000.0)))
    return dict(norm_eps=hf.get("layer_norm_eps", 1e-5), rope_theta=float(theta), n_kv_head=hf["num_attention_heads"],
                rotary_fraction=float(rope.get("partial_rotary_factor", hf.get("rotary_pct", 0.25))))


register_family(Family(
    "gpt_neox", "gpt_neox", "GPTNeoXForCausalLM", layer_norm=True, parallel_residual=True, gelu_mlp=True,
    dense_bias=True, fused_qkv=True, hf_fields=_neox_fields, read_hf=_neox_read, to_hf=_neox_to_hf, from_hf=_neox_from_hf))
