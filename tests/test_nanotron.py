"""nanotron interop (rlearly.train.nanotron), without nanotron: the config writer's YAML, and checkpoints that the
tests write in nanotron's layout (one safetensors file per tensor, fused qkv and gate_up, interleaved rotary,
tensor-parallel shards with slice metadata, padded vocabulary) converted back to logits equal to the original's.

The layout follows nanotron's GitHub main (src/nanotron/serialize/weights.py, models/llama.py, config/):
`nanotron_forward` below recomputes a model the way nanotron's Llama does from those fused tensors, with
GPT-J style (interleaved) rotary as nanotron's RotaryEmbedding applies it, so the test checks the layout's
meaning, not only that the converter inverts the test's own writer.
"""
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import tiny_model
from safetensors.torch import save_file

from rlearly import cli
from rlearly.config import load_config
from rlearly.errors import CheckpointError, ConfigError, RlearlyError
from rlearly.lm.checkpoint import load_checkpoint, read_meta
from rlearly.train import nanotron as N

REPO = Path(__file__).resolve().parents[1]

# Keys of nanotron's config dataclasses (GitHub main, src/nanotron/config/*.py) that the writer may use;
# nanotron loads its YAML with dacite strict=True, so any other key would be rejected.
NANOTRON_KEYS = {
    "": {"general", "parallelism", "model", "tokenizer", "checkpoints", "logging", "metrics_logging", "tokens",
         "optimizer", "data_stages", "profiler", "lighteval", "s3_upload"},
    "general": {"project", "run", "seed", "step", "consumed_train_samples", "benchmark_csv_path",
                "ignore_sanity_checks"},
    "parallelism": {"dp", "pp", "tp", "pp_engine", "tp_mode", "tp_linear_async_communication", "recompute_layer",
                    "tp_recompute_allgather", "expert_parallel_size", "context_parallel_size"},
    "model": {"model_config", "init_method", "dtype", "make_vocab_size_divisible_by", "ddp_bucket_cap_mb"},
    "model.init_method": {"std", "scaling_method"},
    "model.model_config": {"bos_token_id", "eos_token_id", "hidden_act", "hidden_size", "initializer_range",
                           "intermediate_size", "is_llama_config", "max_position_embeddings", "num_attention_heads",
                           "num_hidden_layers", "attention_bias", "num_key_value_heads", "pad_token_id",
                           "pretraining_tp", "rms_norm_eps", "rope_scaling", "rope_theta", "rope_interleaved",
                           "tie_word_embeddings", "use_cache", "vocab_size", "z_loss_enabled", "z_loss_coefficient"},
    "tokenizer": {"tokenizer_name_or_path", "tokenizer_revision", "tokenizer_max_length"},
    "checkpoints": {"checkpoints_path", "checkpoint_interval", "save_initial_state", "save_final_state",
                    "resume_checkpoint_path", "load_lr_scheduler", "load_optimizer",
                    "checkpoints_path_is_shared_file_system"},
    "logging": {"log_level", "log_level_replica", "iteration_step_info_interval"},
    "tokens": {"sequence_length", "train_steps", "micro_batch_size", "batch_accumulation_per_replica",
               "val_check_interval", "limit_val_batches", "limit_test_batches"},
    "optimizer": {"optimizer_factory", "zero_stage", "weight_decay", "clip_grad", "accumulate_grad_in_fp32",
                  "learning_rate_scheduler", "weight_decay_exclude_named_params"},
    "optimizer.optimizer_factory": {"adam_eps", "adam_beta1", "adam_beta2", "torch_adam_is_fused", "name"},
    "optimizer.learning_rate_scheduler": {"learning_rate", "lr_warmup_steps", "lr_warmup_style", "lr_decay_style",
                                          "lr_decay_steps", "lr_decay_starting_step", "min_decay_lr"},
    "data_stages[]": {"name", "start_training_step", "data", "sequence_length"},
    "data_stages[].data": {"dataset", "seed", "num_loading_workers"},
    "data_stages[].data.dataset": {"hf_dataset_or_datasets", "hf_dataset_splits", "hf_dataset_config_name",
                                   "dataset_processing_num_proc_per_process", "dataset_overwrite_cache",
                                   "text_column_name"},
}
NANOSET_KEYS = {"dataset_folder", "dataset_weights", "dataset_read_path", "tokenizer_name", "vocab_size",
                "token_size_in_bytes", "return_positions", "skip_in_stream", "pad_samples_to_global_batch_size",
                "dataset_max_tokens", "shuffle_files"}  # NanosetDatasetsArgs (the other dataset of a data stage)


def _check_keys(node, where=""):
    if isinstance(node, list):
        for item in node:
            _check_keys(item, where + "[]")
        return
    assert set(node) <= NANOTRON_KEYS[where], (where, set(node) - NANOTRON_KEYS[where])
    for k, v in node.items():
        sub = f"{where}.{k}" if where else k
        if isinstance(v, (dict, list)) and (sub in NANOTRON_KEYS or sub + "[]" in NANOTRON_KEYS):
            _check_keys(v, sub)


# ---------------------------------------------------------------- a nanotron-layout checkpoint, by hand

def _interleave(w, heads, hd):
    """HF half-split rows -> nanotron's interleaved rows: new row 2i is old row i, new row 2i+1 is i + hd/2."""
    perm = [j // 2 + (j % 2) * (hd // 2) for j in range(hd)]
    idx = torch.tensor([h * hd + p for h in range(heads) for p in perm])
    return w[idx]


def _write(path, tensor, shards=None, dim=0, chunks=None):
    """Save one tensor as nanotron does: unsharded as model_<p>.safetensors, or split over `shards` ranks
    along `dim`, each fused chunk (`chunks` sizes) split separately, with slice metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    param = path.name
    if not shards:
        save_file({"data": tensor.contiguous()}, str(path.parent / f"model_{param}.safetensors"))
        return
    chunks = chunks or [tensor.shape[dim]]
    for r in range(shards):
        pieces, pairs, start, local = [], [], 0, 0
        for c in chunks:
            n = c // shards
            g0 = start + r * n
            pieces.append(tensor.narrow(dim, g0, n))
            loc = [slice(None)] * tensor.dim()
            glo = [slice(None)] * tensor.dim()
            loc[dim], glo[dim] = slice(local, local + n), slice(g0, g0 + n)
            fmt = lambda ss: "|".join(f"{s.start},{s.stop},{s.step}" for s in ss)  # noqa: E731
            pairs.append(f"{fmt(loc)}#{fmt(glo)}")
            start, local = start + c, local + n
        meta = {"version": "1.4", "local_global_slices_pairs": ";".join(pairs),
                "unsharded_shape": str(tuple(tensor.shape))}
        name = f"model_{param}_pp-rank-0-of-1_tp-rank-{r}-of-{shards}.safetensors"
        save_file({"data": torch.cat(pieces, dim).contiguous()}, str(path.parent / name), metadata=meta)


def nanotron_tensors(model, interleaved=True, pad_vocab=8):
    """{nanotron name: tensor} of an rlearly model (fused, permuted and padded as nanotron holds them)."""
    cfg, sd = model.cfg, {k: v.detach().clone() for k, v in model.state_dict().items()}
    hd, nq, nkv = cfg.head_dim, cfg.n_head, cfg.n_kv_head
    vocab = sd["model.embed_tokens.weight"].shape[0]
    rows = math.ceil(vocab / pad_vocab) * pad_vocab
    g = torch.Generator().manual_seed(7)
    pad = lambda w: torch.cat([w, torch.randn(rows - vocab, w.shape[1], generator=g)])  # noqa: E731
    out = {N.EMBED: pad(sd["model.embed_tokens.weight"]), N.FINAL_NORM: sd["model.norm.weight"]}
    if not cfg.tie_embeddings:
        out[N.LM_HEAD] = pad(sd["lm_head.weight"])
    for i in range(cfg.n_layer):
        hf, p = f"model.layers.{i}.", N.DECODER.format(i=i)
        q, k = sd[hf + "self_attn.q_proj.weight"], sd[hf + "self_attn.k_proj.weight"]
        if interleaved:
            q, k = _interleave(q, nq, hd), _interleave(k, nkv, hd)
        out[p + "attn.qkv_proj.weight"] = torch.cat([q, k, sd[hf + "self_attn.v_proj.weight"]])
        out[p + "attn.o_proj.weight"] = sd[hf + "self_attn.o_proj.weight"]
        out[p + "mlp.gate_up_proj.weight"] = torch.cat([sd[hf + "mlp.gate_proj.weight"], sd[hf + "mlp.up_proj.weight"]])
        out[p + "mlp.down_proj.weight"] = sd[hf + "mlp.down_proj.weight"]
        out[p + "input_layernorm.weight"] = sd[hf + "input_layernorm.weight"]
        out[p + "post_attention_layernorm.weight"] = sd[hf + "post_attention_layernorm.weight"]
    return out


def write_nanotron_checkpoint(model, step_dir, interleaved=True, tp=2, rope_key=True):
    """A nanotron step folder: model/ (qkv, gate_up and the vocab-parallel embedding split over `tp` ranks,
    o_proj and down_proj row-parallel), model_config.json, checkpoint_metadata.json."""
    cfg, hd = model.cfg, model.cfg.head_dim
    tensors = nanotron_tensors(model, interleaved)
    for name, t in tensors.items():
        path = step_dir / "model" / name.replace(".", "/")
        if name.endswith("qkv_proj.weight"):
            _write(path, t, tp, 0, [cfg.n_head * hd, cfg.n_kv_head * hd, cfg.n_kv_head * hd])
        elif name.endswith("gate_up_proj.weight"):
            _write(path, t, tp, 0, [cfg.ffn_hidden, cfg.ffn_hidden])
        elif name.endswith(("o_proj.weight", "down_proj.weight")):
            _write(path, t, tp, 1)
        elif name in (N.EMBED, N.LM_HEAD):
            _write(path, t, tp, 0)
        else:
            _write(path, t)
    mc = dict(bos_token_id=1, eos_token_id=2, hidden_act="silu", hidden_size=cfg.n_embd, initializer_range=0.02,
              intermediate_size=cfg.ffn_hidden, is_llama_config=True, max_position_embeddings=cfg.max_seq_len,
              num_attention_heads=cfg.n_head, num_hidden_layers=cfg.n_layer, num_key_value_heads=cfg.n_kv_head,
              pad_token_id=0, pretraining_tp=1, rms_norm_eps=cfg.norm_eps, rope_scaling=None,
              tie_word_embeddings=cfg.tie_embeddings, use_cache=True, vocab_size=tensors[N.EMBED].shape[0])
    if rope_key:  # nanotron <= 0.5 has no such key and always interleaves
        mc.update(rope_theta=cfg.rope_theta, rope_interleaved=interleaved)
    (step_dir / "model_config.json").write_text(json.dumps(mc))
    (step_dir / "checkpoint_metadata.json").write_text(json.dumps({
        "version": "1.4", "tp": tp, "dp": 1, "metas": {"consumed_train_samples": 48, "last_train_step": 6,
                                                        "consumed_tokens_total": 6144}}))
    return tensors


def nanotron_forward(t, cfg, idx, interleaved=True):
    """Logits of nanotron's Llama computed from its own tensors: fused qkv and gate_up; interleaved RoPE as
    nanotron's RotaryEmbedding applies it (view pairs (2i, 2i+1) as complex numbers, multiply by e^{i t f_i}),
    or with rope_interleaved false its LlamaRotaryEmbedding's pairs (i, i + hd/2)."""
    B, T = idx.shape
    hd, nq, nkv = cfg.head_dim, cfg.n_head, cfg.n_kv_head

    def rms(x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + cfg.norm_eps))

    freqs = 1.0 / cfg.rope_theta ** (torch.arange(0, hd, 2).float() / hd)
    rot = torch.polar(torch.ones(T, hd // 2), torch.outer(torch.arange(T).float(), freqs))  # (T, hd/2)

    def rope(x):  # (B, T, H, hd)
        if interleaved:
            xc = torch.view_as_complex(x.reshape(B, T, x.shape[2], hd // 2, 2))
        else:
            xc = torch.complex(x[..., :hd // 2], x[..., hd // 2:])
        y = xc * rot[None, :, None]
        return torch.view_as_real(y).reshape(x.shape) if interleaved else torch.cat([y.real, y.imag], -1)

    x = t[N.EMBED][idx]
    for i in range(cfg.n_layer):
        p = N.DECODER.format(i=i)
        h = rms(x, t[p + "input_layernorm.weight"])
        q, k, v = (h @ t[p + "attn.qkv_proj.weight"].T).split([nq * hd, nkv * hd, nkv * hd], -1)
        q, k = rope(q.view(B, T, nq, hd)), rope(k.view(B, T, nkv, hd))
        v = v.view(B, T, nkv, hd)
        k, v = (z.repeat_interleave(nq // nkv, dim=2) for z in (k, v))
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
        x = x + y.transpose(1, 2).reshape(B, T, -1) @ t[p + "attn.o_proj.weight"].T
        gate, up = (rms(x, t[p + "post_attention_layernorm.weight"]) @ t[p + "mlp.gate_up_proj.weight"].T).chunk(2, -1)
        x = x + (F.silu(gate) * up) @ t[p + "mlp.down_proj.weight"].T
    head = t[N.EMBED] if cfg.tie_embeddings else t[N.LM_HEAD]
    return rms(x, t[N.FINAL_NORM]) @ head.T


@pytest.fixture
def tokdir(tok, tmp_path):
    d = tmp_path / "tokenizer"
    d.mkdir()
    tok.save(d, 128)
    return d


@pytest.mark.parametrize("interleaved,tied,tp", [(True, False, 2), (False, True, 1)])
def test_nanotron_checkpoint_converts_to_the_same_logits(tok, tokdir, tmp_path, interleaved, tied, tp):
    model = tiny_model(tok.vocab_size, seed=3, tie_embeddings=tied, rope_theta=500.0).eval()
    src = tmp_path / "checkpoints" / "6"
    tensors = write_nanotron_checkpoint(model, src, interleaved=interleaved, tp=tp)
    (src.parent / "latest.txt").write_text("6")
    idx = torch.randint(3, tok.vocab_size, (2, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = model(idx)
        # the layout means what nanotron computes: its forward on its tensors gives the original logits
        torch.testing.assert_close(nanotron_forward(tensors, model.cfg, idx, interleaved)[..., :tok.vocab_size], want,
                                   atol=2e-5, rtol=1e-5)
    out = N.convert_checkpoint(src.parent, tmp_path / "converted", tokenizer=tokdir)  # latest.txt -> step 6
    back, tok2, meta = load_checkpoint(out)
    assert back.cfg == model.cfg and tok2.vocab_size == tok.vocab_size
    with torch.no_grad():
        torch.testing.assert_close(back.eval()(idx), want, atol=1e-5, rtol=1e-5)
    assert (meta["method"], meta["step"], meta["tokens"]) == ("nanotron", 6, 6144)
    assert meta["source"]["rope_interleaved"] is interleaved and meta["parent"] == str(src.resolve())


def test_rotary_layout_without_the_key_is_interleaved_and_can_be_forced(tok, tokdir, tmp_path):
    model = tiny_model(tok.vocab_size, seed=4).eval()
    with torch.no_grad():  # sharper attention than at init, so that rotating the wrong pairs shows in the logits
        for block in model.model.layers:
            block.self_attn.q_proj.weight.mul_(8.0)
    write_nanotron_checkpoint(model, tmp_path / "old", interleaved=True, tp=1, rope_key=False)  # nanotron <= 0.5
    idx = torch.arange(3, 23).view(1, 20)
    with torch.no_grad():
        want = model(idx)
        auto, _, _ = load_checkpoint(N.convert_checkpoint(tmp_path / "old", tmp_path / "a", tokenizer=tokdir))
        torch.testing.assert_close(auto.eval()(idx), want, atol=1e-5, rtol=1e-5)
        wrong, _, _ = load_checkpoint(N.convert_checkpoint(tmp_path / "old", tmp_path / "b", tokenizer=tokdir,
                                                           interleaved=False))
        assert (wrong.eval()(idx) - want).abs().max() > 1e-3  # the layout matters: forcing the other one differs


def test_bad_nanotron_checkpoints_are_named(tok, tokdir, tmp_path):
    with pytest.raises(CheckpointError, match="is not a nanotron checkpoint"):
        N.convert_checkpoint(tmp_path, tmp_path / "out", tokenizer=tokdir)
    model = tiny_model(tok.vocab_size)
    src = tmp_path / "ck"
    write_nanotron_checkpoint(model, src, tp=2)
    next((src / "model").rglob("model_weight_pp-rank-0-of-1_tp-rank-1-of-2.safetensors")).unlink()
    with pytest.raises(CheckpointError, match="shards of .* do not cover the whole tensor"):
        N.convert_checkpoint(src, tmp_path / "out", tokenizer=tokdir)
    mc = json.loads((src / "model_config.json").read_text())
    (src / "model_config.json").write_text(json.dumps({**mc, "hidden_act": "gelu"}))
    with pytest.raises(CheckpointError, match="unsupported {'hidden_act': 'gelu'}"):
        N.convert_checkpoint(src, tmp_path / "out", tokenizer=tokdir)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- config writer

def test_config_writer_maps_shape_schedule_batch_data_and_checkpoints(tmp_path):
    cfg = load_config(preset="tiny", overrides=["pretrain.checkpoints=[4096, 8192]", "pretrain.warmup_tokens=2048"])
    res = N.export_config(cfg, tmp_path / "nt", docs=40, dp=2, micro_batch_size=2)
    text = res["config"].read_text()
    nt = yaml.safe_load(text)
    _check_keys(nt)  # only keys nanotron's strict loader knows
    m, pc = cfg.model, cfg.pretrain
    mc = nt["model"]["model_config"]
    assert (mc["num_hidden_layers"], mc["hidden_size"], mc["num_attention_heads"], mc["num_key_value_heads"],
            mc["intermediate_size"], mc["max_position_embeddings"]) == (m.n_layer, m.n_embd, m.n_head, m.n_kv_head,
                                                                       m.ffn_hidden, m.max_seq_len)
    assert mc["rope_interleaved"] is False and mc["rope_theta"] == m.rope_theta and mc["tie_word_embeddings"] is False
    tok_dir = res["tokenizer"]
    from rlearly.lm.tokenizer import Tokenizer
    tok = Tokenizer.load(tok_dir)
    assert mc["vocab_size"] == tok.vocab_size and (mc["bos_token_id"], mc["eos_token_id"]) == (tok.bos_id, tok.eos_id)
    assert nt["tokenizer"]["tokenizer_name_or_path"] == str(tok_dir)
    tk = nt["tokens"]  # 8 sequences per step = 2 replicas x 2 per micro-batch x 2 accumulated
    assert (tk["sequence_length"], tk["train_steps"], tk["micro_batch_size"], tk["batch_accumulation_per_replica"],
            nt["parallelism"]["dp"]) == (128, pc.total_steps, 2, 2, 2)
    lr = nt["optimizer"]["learning_rate_scheduler"]  # warmup 2048 tokens = 2 steps of 8 x 128
    assert (lr["learning_rate"], lr["lr_warmup_steps"], lr["lr_decay_style"], lr["lr_decay_steps"]) == \
        (pc.lr, 2, "cosine", pc.total_steps - 2)
    assert lr["min_decay_lr"] == pytest.approx(pc.lr * pc.min_lr_ratio)
    opt = nt["optimizer"]
    assert (opt["weight_decay"], opt["clip_grad"], opt["optimizer_factory"]["adam_beta2"]) == (0.1, 1.0, 0.95)
    # checkpoints at 4096 and 8192 tokens = steps 4 and 8 (and the last, 16): nanotron saves every 4
    assert res["checkpoint_steps"] == [4, 8, 16] and nt["checkpoints"]["checkpoint_interval"] == 4
    assert "steps 4, 8, 16" in text.splitlines()[1]
    stage = nt["data_stages"][0]
    assert stage["start_training_step"] == 1 and stage["data"]["seed"] == cfg.seed
    docs = [json.loads(line)["text"] for line in (res["data"] / "train.jsonl").read_text().splitlines()]
    assert stage["data"]["dataset"]["hf_dataset_or_datasets"] == str(res["data"])
    assert len(docs) == 40 and all(d.endswith("<|eos|>") for d in docs)
    assert load_config(res["rlearly_config"]).hash() == cfg.hash()


def test_paper_1b_exports_with_its_batch_split_and_a_hub_corpus(tokdir, tmp_path, capsys):
    """The paper's shape through `rlearly export nanotron-config --study`: 512 x 4096 per step on 64 replicas
    of 4, accumulated twice; nanotron saves every 1,000 steps, which holds all nine checkpoints; a hub corpus
    is named as itself (nothing is downloaded)."""
    out = tmp_path / "paper"
    argv = ["export", "nanotron-config", "--study", str(REPO / "studies" / "paper-1b.yaml"), "--out", str(out),
            "--tokenizer", str(tokdir), "--dp", "64", "--micro-batch-size", "4", "data.corpus=allenai/dolmino-mix-1124"]
    assert cli.main(argv) == 0
    assert "checkpoint every 1000 steps; convert steps 1000, 2000, 3000, 5000" in capsys.readouterr().out
    nt = yaml.safe_load((out / "nanotron.yaml").read_text())
    _check_keys(nt)
    assert (nt["tokens"]["micro_batch_size"], nt["tokens"]["batch_accumulation_per_replica"]) == (4, 2)
    assert nt["tokens"]["train_steps"] == 23842 and nt["tokens"]["sequence_length"] == 4096
    assert nt["data_stages"][0]["data"]["dataset"]["hf_dataset_or_datasets"] == "allenai/dolmino-mix-1124"
    mc = nt["model"]["model_config"]
    assert (mc["hidden_size"], mc["num_hidden_layers"], mc["intermediate_size"], mc["rope_theta"]) == \
        (2048, 16, 8192, 500000.0) and nt["model"]["dtype"] == "bfloat16" and not (out / "data").exists()
    assert cli.main(argv[:-2] + ["3", argv[-1]]) == 2  # 64 x 3 does not divide 512
    assert "--micro-batch-size 3 must divide pretrain.batch_size / dp = 8" in capsys.readouterr().err


def test_export_then_convert_through_the_cli_finds_tokenizer_and_config(tok, tmp_path, capsys):
    """`rlearly export nanotron-config`, a nanotron run (simulated: a checkpoint of that shape with the
    config.yaml nanotron copies into it), `rlearly convert nanotron`: the result carries our config."""
    out = tmp_path / "nt"
    assert cli.main(["export", "nanotron-config", "--preset", "tiny", "--out", str(out), "--docs", "20",
                     "model.n_kv_head=1"]) == 0
    assert "convert steps" in capsys.readouterr().out
    cfg = load_config(out / "rlearly.yaml")
    from rlearly.lm.model import LlamaLM
    from rlearly.lm.tokenizer import Tokenizer
    torch.manual_seed(0)
    model = LlamaLM(cfg.model, Tokenizer.load(out / "tokenizer").vocab_size).eval()
    step = out / "checkpoints" / "16"
    write_nanotron_checkpoint(model, step, interleaved=False, tp=1)
    (step / "config.yaml").write_text((out / "nanotron.yaml").read_text())
    assert cli.main(["convert", "nanotron", str(step), str(tmp_path / "ck")]) == 0
    back, _, meta = load_checkpoint(tmp_path / "ck")
    assert meta["config_hash"] == cfg.hash() and read_meta(tmp_path / "ck")["method"] == "nanotron"
    from rlearly.evaluation.evaluate import resolve_prompt_mode
    assert resolve_prompt_mode("auto", read_meta(tmp_path / "ck")) == "few-shot"  # a base, prompted as the paper's
    idx = torch.arange(3, 19).view(1, 16)
    with torch.no_grad():
        torch.testing.assert_close(back.eval()(idx), model(idx), atol=1e-5, rtol=1e-5)


FAKE_NANOTRON = """
# stands in for `torchrun run_train.py --config-file CONFIG`: writes, for every step of the schedule, the checkpoint
# nanotron would (a model of the exported shape, rotary not interleaved as the export asks), with its metadata
import json, sys
from pathlib import Path

import torch
import yaml

sys.path.insert(0, {tests!r})
from test_nanotron import write_nanotron_checkpoint
from rlearly.config import load_config
from rlearly.lm.model import LlamaLM

config = Path(sys.argv[sys.argv.index("--config-file") + 1])
nt, cfg = yaml.safe_load(config.read_text()), load_config(config.parent / "rlearly.yaml")
print("training", nt["general"]["run"])
for step in cfg.pretrain.checkpoint_steps():
    torch.manual_seed(step)
    model = LlamaLM(cfg.model, nt["model"]["model_config"]["vocab_size"])
    out = Path(nt["checkpoints"]["checkpoints_path"]) / str(step)
    write_nanotron_checkpoint(model, out, interleaved=False, tp=1)
    (out / "checkpoint_metadata.json").write_text(json.dumps({{"metas": {{"last_train_step": step,
        "consumed_tokens_total": step * cfg.pretrain.tokens_per_step}}}}))
    (out / "config.yaml").write_text(config.read_text())
"""

NANOTRON_STUDY = """
name: tiny-nanotron
config: {{preset: tiny, model.n_kv_head: 1, pretrain.engine: nanotron,
          pretrain.nanotron_launch: "{python} {fake} --config-file {{config}}"}}
branch: {{checkpoints: [-1], methods: [rl], overrides: {{branch.eval_every: 0, rl.steps: 2}}}}
eval: {{splits: [test], n: 2, ks: [1, 2], max_problems: 4}}
"""


def test_a_study_pretrains_with_nanotron_and_branches_its_converted_checkpoints(tmp_path):
    """pretrain.engine=nanotron: the pretraining node exports nanotron's config, runs the launch command (here a
    stand-in that writes nanotron checkpoints), converts every checkpoint of the schedule back, and the study
    branches and evaluates them (bases prompted few-shot); the lineage names nanotron and the command."""
    import sys

    from rlearly import study
    from rlearly.results import analysis

    fake = tmp_path / "fake_nanotron.py"
    fake.write_text(FAKE_NANOTRON.format(tests=str(Path(__file__).parent)))
    (tmp_path / "s.yaml").write_text(NANOTRON_STUDY.format(python=sys.executable, fake=fake))
    spec, root = study.load_study(tmp_path / "s.yaml"), tmp_path / "study"
    study.run(spec, root, log=lambda *a: None)
    pre = next(root.glob("pretrain/*"))
    meta = json.loads((pre / "meta.json").read_text())
    assert meta["engine"] == "nanotron" and meta["launch"].endswith("--config-file {config}")
    assert "training pretrain-" in (pre / "nanotron" / "train.log").read_text()
    cfg = load_config(pre / "config.yaml")
    names = [p.name for p in sorted(pre.glob("ckpt-*"))]
    assert names == ["ckpt-0000008192", "ckpt-0000016384"]
    last = read_meta(pre / names[-1])
    assert (last["method"], last["tokens"], last["config_hash"]) == ("nanotron", 16384, cfg.hash())
    passk = analysis.load_tables(root)["passk"]
    assert set(passk["method"]) == {"base", "rl"}
    assert set(passk.loc[passk["method"] == "base", "prompt_mode"]) == {"few-shot"}
    rl = read_meta(next(root.glob("branch/rl/*/*/final")))
    assert rl["parent_tokens"] == 16384 and rl["parent"].endswith(names[-1])
    # the engine is in the hash (another trainer, other weights); the launch command is not (where, not what)
    base = load_config(overrides={"preset": "tiny", "model.n_kv_head": 1})
    assert cfg.hash() != base.hash()
    assert cfg.hash() == load_config(overrides={"preset": "tiny", "model.n_kv_head": 1, "pretrain.engine": "nanotron",
                                                "pretrain.nanotron_launch": "srun other"}).hash()


def test_nanotron_pretraining_errors_are_one_line(tmp_path):
    cfg = load_config(preset="tiny", overrides=["pretrain.engine=nanotron"])
    with pytest.raises(ConfigError, match="pretrain.engine=nanotron needs pretrain.nanotron_launch"):
        N.pretrain(cfg, tmp_path / "a")
    cfg = load_config(preset="tiny", overrides={"pretrain.engine": "nanotron", "pretrain.nanotron_launch": "false"})
    with pytest.raises(RlearlyError, match=r"nanotron pretraining failed \(exit 1\); its output: .*train.log"):
        N.pretrain(cfg, tmp_path / "b")
    cfg = load_config(preset="tiny", overrides={"pretrain.engine": "nanotron", "pretrain.nanotron_launch": "true"})
    with pytest.raises(RlearlyError, match="nanotron wrote no checkpoint at step 8"):
        N.pretrain(cfg, tmp_path / "c")
    with pytest.raises(ConfigError, match="pretrain.engine='megatron' is unknown"):
        load_config(preset="tiny", overrides=["pretrain.engine=megatron"])


def test_nanoset_export_streams_the_runs_own_rows_pre_tokenized(tmp_path, capsys):
    """--nanoset: the whole run's rows, as rlearly's trainer packs them step by step, in one datatrove token file
    (uint16) with a uint64 end per row, read as nanotron's Nanoset reads it (windows of seq_len + 1 tokens); the
    data stage names it with nanotron's Nanoset keys."""
    import numpy as np

    from rlearly.data.mixture import Mixture, PretrainBatches
    from rlearly.data.world import World
    from rlearly.lm.tokenizer import Tokenizer

    out = tmp_path / "nt"
    assert cli.main(["export", "nanotron-config", "--preset", "tiny", "--out", str(out), "--nanoset"]) == 0
    cfg, tok = load_config(out / "rlearly.yaml"), Tokenizer.load(out / "tokenizer")
    pc, width = cfg.pretrain, cfg.pretrain.seq_len + 1
    folder = out / "data" / "nanoset"
    tokens = np.fromfile(folder / "rlearly_00000.ds", dtype="<u2").astype(np.int64)
    ends = np.fromfile(folder / "rlearly_00000.ds.index", dtype="<u8")
    assert len(tokens) == pc.total_steps * pc.batch_size * width == int(ends[-1])
    assert (ends == np.arange(1, pc.total_steps * pc.batch_size + 1) * width).all()
    windows = tokens.reshape(-1, width)  # DatatroveFileDataset's item i: tokens [i (T+1), (i + 1)(T+1))
    batches = PretrainBatches(cfg, Mixture(cfg, World(cfg.world)), tok)
    for step in (0, pc.total_steps - 1):
        x, y = batches.batch(step)
        rows = windows[step * pc.batch_size:(step + 1) * pc.batch_size]
        assert (rows[:, :-1] == x.numpy()).all() and (rows[:, 1:] == y.numpy()).all()
    stage = yaml.safe_load((out / "nanotron.yaml").read_text())["data_stages"][0]["data"]["dataset"]
    assert set(stage) <= NANOSET_KEYS and stage["token_size_in_bytes"] == 2 and stage["vocab_size"] == tok.vocab_size
    assert stage["dataset_folder"] == [str(folder.resolve())] and not (out / "data" / "train.jsonl").exists()
