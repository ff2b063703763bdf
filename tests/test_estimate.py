"""rlearly.study.estimate: a study's time before its first node, from each node's work (counted from its config) and
rates fitted to finished studies. Hand-made nodes and rates; the fit on exact points; N counted by hand."""
import json

import pytest

from rlearly.config import load_config
from rlearly.study import estimate
from rlearly.study.nodes import Node

RATES = {"cpu": "test CPU", "gflops": 100.0, "studies": ["made-up"],
         "seconds_per_node": {"pretrain": 10.0, "branch rl": 2.0, "branch sft": 1.0, "eval": 0.5},
         "seconds_per_unit": {"pretrain": 1e-3, "branch rl": 1e-2, "branch sft": 3e-2, "eval": 1e-1}}


def node(kind, rate, cost):
    return Node(kind, f"{kind} {rate}", None, lambda: None, cost=cost, rate=rate)


def test_planned_matmul_params_counted_by_hand():
    cfg = load_config(preset="tiny")
    m, v = cfg.model, cfg.data.vocab_size
    attention = m.n_embd * m.head_dim * m.n_head * 2 + m.n_embd * m.head_dim * m.n_kv_head * 2  # q, o; k, v
    assert estimate.planned_matmul_params(cfg) == m.n_layer * (attention + 3 * m.n_embd * m.ffn_hidden) + m.n_embd * v


def test_estimate_adds_fixed_and_per_unit_seconds_scaled_by_this_machine():
    todo = [node("pretrain", "pretrain", 1000.0), node("branch", "branch rl", 100.0), node("eval", "eval", 10.0)]
    e = estimate.estimate(todo, cpus=2, rates=RATES, gflops=200.0)  # this machine multiplies twice as fast
    node_seconds = (10 + 1000 * 1e-3 / 2) + (2 + 100 * 1e-2 / 2) + (0.5 + 10 * 1e-1 / 2)
    assert e["speed"] == 2.0 and e["node_seconds"] == pytest.approx(node_seconds)
    assert e["seconds"] == pytest.approx(node_seconds / 2) and e["unknown"] == []


def test_a_recipe_without_a_rate_takes_the_mean_branch_and_an_unknown_kind_is_named():
    e = estimate.estimate([node("branch", "branch parallel", 100.0), node("lm_eval", "lm_eval", 0.0)], cpus=1,
                          rates=RATES, gflops=100.0)
    assert e["node_seconds"] == pytest.approx(((2 + 100 * 1e-2) + (1 + 100 * 3e-2)) / 2)
    assert e["unknown"] == ["lm_eval"]
    none = estimate.estimate([node("eval", "eval", 1.0)], cpus=1, rates={}, gflops=100.0)
    assert none["seconds"] is None


def test_fit_recovers_a_fixed_part_and_a_rate_on_exact_points():
    fixed, rate = estimate._fit([(u, 3.0 + 0.5 * u) for u in (1, 10, 100, 1000)])
    assert fixed == pytest.approx(3.0) and rate == pytest.approx(0.5)
    assert estimate._fit([(10, 5.0), (10, 7.0)]) == (0.0, pytest.approx(0.6))  # one size: the median rate
    fixed, rate = estimate._fit([(1, 10.0), (100, 1.0)])  # more work, less time: no negative rate
    assert fixed >= 0 and rate >= 0


def test_calibrate_fits_each_rate_key_to_a_studys_timings(tmp_path, monkeypatch):
    monkeypatch.setattr(estimate, "matmul_gflops", lambda seconds=0.3, size=512: 50.0)
    nodes = [Node("eval", f"eval {i}", None, lambda: None, cost=float(u), rate="eval") for i, u in enumerate((1, 4))]
    (tmp_path / "timings.jsonl").write_text("".join(
        json.dumps(dict(key=f"eval {i}", kind="eval", seconds=s, threads=1)) + "\n" for i, s in enumerate((3.0, 9.0))))
    r = estimate.calibrate([(nodes, tmp_path)], ["made-up"], out=tmp_path / "rates.json")
    assert r["seconds_per_node"]["eval"] == pytest.approx(1.0) and r["seconds_per_unit"]["eval"] == pytest.approx(2.0)
    assert json.loads((tmp_path / "rates.json").read_text())["gflops"] == 50.0 and r["nodes"] == {"eval": 2}


def test_the_shipped_rates_cover_every_shipped_recipe_and_kind():
    from rlearly.train import RECIPES

    r = estimate.load_rates()
    assert r["gflops"] > 0 and r["cpu"]
    assert {"pretrain", "eval"} <= set(r["seconds_per_unit"])
    assert {f"branch {m}" for m in RECIPES if m not in ("combined", "interleaved")} <= set(r["seconds_per_unit"])
