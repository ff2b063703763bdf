"""What a recipe spent, by hand: steps, rollouts, tokens and FLOPs from a branch's metrics, the compute-matched
reading of dev curves, and the matmul parameters read from a safetensors header."""
import math

import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from rlearly.results import analysis
from rlearly.study.tables import matmul_params


def metrics() -> pd.DataFrame:
    """RL: 2 steps of 2 prompts x 4 rollouts, responses of 10 and 20 tokens; SFT: 3 steps of 50 demonstration
    tokens; both with N = 100 matmul parameters; two RL seeds, the second spending twice the tokens."""
    ident = dict(arm="main", parent_tokens=1000, pretrain_seed=1, prompts_per_step=2, group_size=4, n_params=100)
    rows = [dict(ident, method="rl", seed=0, step=1, response_len=10.0, **{"val_pass@1": 0.1}),
            dict(ident, method="rl", seed=0, step=2, response_len=20.0, **{"val_pass@1": 0.3}),
            dict(ident, method="rl", seed=1, step=1, response_len=20.0),
            dict(ident, method="rl", seed=1, step=2, response_len=40.0)]
    rows += [dict(ident, method="sft", seed=0, step=s, sft_tokens=50.0) for s in (1, 2, 3)]
    return pd.DataFrame(rows)


def test_compute_spent_by_hand():
    got = analysis.compute_spent(metrics()).set_index("method")
    # RL seed 0: (10 + 20) x 8 rollouts = 240 generated tokens; seed 1: 480; mean 360
    assert got.loc["rl", "steps"] == 2 and got.loc["rl", "rollouts"] == 16 and got.loc["rl", "gen_tokens"] == 360
    assert got.loc["rl", "flops"] == 100 * (2 * 360 + 6 * 360)  # sampling 2N, training 6N per token
    assert got.loc["sft", "demo_tokens"] == 150 and got.loc["sft", "rollouts"] == 0
    assert got.loc["sft", "flops"] == 100 * 6 * 150


def test_compute_matched_reads_every_method_at_the_cheapest_total():
    curves = pd.DataFrame(dict(method=["rl", "rl", "sft", "sft", "parallel", "parallel"], parent_tokens=1000,
                               flops=[100, 200, 50, 150, 120, 300], **{"val_pass@1": [0.1, 0.3, 0.2, 0.4, 0.0, 0.6]}))
    got = analysis.compute_matched(curves).set_index("method")
    assert list(got.index) == ["rl", "sft", "parallel"]
    assert (got["flops_matched"] == 150).all()  # SFT spent the least in all
    assert got["dev_pass@1_matched"].to_dict() == pytest.approx({"rl": 0.2, "sft": 0.4, "parallel": 0.1})
    late = curves.assign(flops=curves["flops"].where(curves["method"] != "parallel", [0, 0, 0, 0, 160, 300]))
    assert math.isnan(analysis.compute_matched(late).set_index("method").loc["parallel", "dev_pass@1_matched"])


def test_flops_curves_accumulate_along_training():
    bm = pd.concat([metrics(), metrics().query("method == 'sft'").assign(method="parallel", response_len=10.0)])
    bm.loc[bm["method"].isin(["sft", "parallel"]) & (bm["step"] == 3), "val_pass@1"] = 0.5
    got = analysis.flops_curves(bm).set_index(["method", "step"])["flops"]
    assert got[("rl", 1)] == 100 * 8 * 80 and got[("rl", 2)] == 100 * 8 * 240  # seed 0 only has validations
    assert got[("sft", 3)] == 100 * 6 * 150
    assert got[("parallel", 3)] == 100 * (8 * 3 * 80 + 6 * 150)


def test_matmul_params_count_a_tied_output_layer_once_as_a_matmul(tmp_path):
    emb, layer = torch.zeros(10, 4), torch.zeros(4, 4)
    save_file({"model.embed_tokens.weight": emb, "model.layers.0.w": layer}, tmp_path / "model.safetensors")
    assert matmul_params(tmp_path) == 40 + 16  # tied: the lookup is free, the output layer multiplies
    save_file({"model.embed_tokens.weight": emb, "model.layers.0.w": layer, "lm_head.weight": torch.zeros(10, 4)},
              tmp_path / "model.safetensors")
    assert matmul_params(tmp_path) == 16 + 40
    assert matmul_params(tmp_path / "missing") is None
