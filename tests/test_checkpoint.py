import json

import pytest
import torch
from conftest import tiny_model

from rlearly.errors import CheckpointError
from rlearly.lm.checkpoint import load_checkpoint, load_trainer_state, read_meta, save_checkpoint
from rlearly.train.common import make_adamw


def _trained(tok):
    model = tiny_model(tok.vocab_size)
    opt = make_adamw(model, 1e-2, 0.1)
    x = torch.randint(3, tok.vocab_size, (2, 8))
    for _ in range(2):
        model(x, x).backward()
        opt.step()
        opt.zero_grad()
    return model, opt


def test_round_trip_weights_optimizer_and_meta(tmp_path, tok):
    model, opt = _trained(tok)
    path = save_checkpoint(tmp_path / "c", model, tok, {"method": "pretrain", "step": 2, "parent": None},
                           optimizers={"adamw": opt}, trainer_state={"step": 2})
    assert sorted(p.name for p in path.iterdir()) == [
        "config.json", "generation_config.json", "meta.json", "model.safetensors", "special_tokens_map.json",
        "tokenizer.json", "tokenizer_config.json", "trainer"]
    # vLLM reads every top-level *.safetensors as weights: the optimizer state lives in trainer/
    assert sorted(p.name for p in (path / "trainer").iterdir()) == ["optimizer.safetensors", "trainer_state.json"]
    loaded, tok2, meta = load_checkpoint(path)
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    assert meta["method"] == "pretrain" and meta["step"] == 2 and meta["version"]
    assert set(meta["files"]) >= {"model.safetensors", "trainer/optimizer.safetensors", "trainer/trainer_state.json"}
    assert tok2.encode("Ava has 7") == tok.encode("Ava has 7")
    fresh = make_adamw(loaded, 1e-2, 0.1)
    state = load_trainer_state(path, {"adamw": fresh})
    assert state["step"] == 2
    a, b = opt.state_dict(), fresh.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for i in a["state"]:
        for k in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(a["state"][i][k], b["state"][i][k])
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temp dirs left


def test_overwrite_is_atomic_and_failed_save_keeps_old(tmp_path, tok, monkeypatch):
    model, _ = _trained(tok)
    path = save_checkpoint(tmp_path / "c", model, tok, {"step": 1})
    import rlearly.lm.checkpoint as ck

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(ck, "save_file", boom)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "c", model, tok, {"step": 2})
    assert read_meta(path)["step"] == 1  # the finished checkpoint survived the failed write
    assert [p.name for p in tmp_path.iterdir()] == ["c"]


def test_corrupt_missing_and_foreign_checkpoints_are_named(tmp_path, tok):
    model, _ = _trained(tok)
    path = save_checkpoint(tmp_path / "c", model, tok, {"step": 1})
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope")
    blob = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(blob[:-10])
    with pytest.raises(CheckpointError, match="model.safetensors is corrupt or truncated"):
        load_checkpoint(path)
    (path / "model.safetensors").write_bytes(blob)
    load_checkpoint(path)
    cfg = json.loads((path / "config.json").read_text())
    cfg["model_type"] = "gpt2"
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="model_type is 'gpt2'"):
        load_checkpoint(path, verify=False)
    cfg["model_type"] = "gemma"  # a relative rlearly lacks: the error names what its decoder would need
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"model_type is 'gemma'; rlearly loads llama, olmo2, .* \(Gemma needs GeGLU"):
        load_checkpoint(path, verify=False)
    cfg["model_type"] = "olmo2"  # a family it has, but these weights are a Llama's: named, not half-loaded
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"weights do not fit the architecture .*missing \['model.layers.0.self_attn.q_norm"):
        load_checkpoint(path, verify=False)


def test_trainer_state_is_verified_and_old_layout_still_resumes(tmp_path, tok):
    """meta.json hashes the files in trainer/ too; a checkpoint written before trainer/ existed (its optimizer
    state at the top level) still resumes."""
    model, opt = _trained(tok)
    path = save_checkpoint(tmp_path / "c", model, tok, {"method": "pretrain", "step": 2, "parent": None},
                           optimizers={"adamw": opt}, trainer_state={"step": 2})
    blob = (path / "trainer" / "optimizer.safetensors").read_bytes()
    (path / "trainer" / "optimizer.safetensors").write_bytes(blob[:-8])
    with pytest.raises(CheckpointError, match="trainer/optimizer.safetensors is corrupt or truncated"):
        read_meta(path)
    (path / "trainer" / "optimizer.safetensors").write_bytes(blob)
    for name in ("optimizer.safetensors", "trainer_state.json"):  # the layout before trainer/
        (path / "trainer" / name).rename(path / name)
    (path / "trainer").rmdir()
    fresh = make_adamw(load_checkpoint(path, verify=False)[0], 1e-2, 0.1)
    assert load_trainer_state(path, {"adamw": fresh})["step"] == 2
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
