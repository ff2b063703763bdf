"""The study runner on studies/tiny.yaml: plans, runs every node once, skips finished ones, writes tables."""
import json
from pathlib import Path

import pandas as pd
import pytest

from rlearly import study
from rlearly.errors import ConfigError

TINY = Path(__file__).parent.parent / "studies" / "tiny.yaml"


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    spec = study.load_study(TINY)
    root = tmp_path_factory.mktemp("study") / "tiny"
    study.run(spec, root, log=lambda *a: None)
    return spec, root


def test_every_node_done_and_second_run_does_nothing(tiny_study):
    spec, root = tiny_study
    nodes = study.plan(spec, root)
    # main: pretrain, 2 checkpoints x 4 methods + parallel at the last, their 11 evaluations and 2 readiness
    # evaluations; arms: 2 more RL seeds (+ evaluations), the hard split (main's RL shared: 2 evaluations), two
    # pretraining variants (pretrain, RL, 4 evaluations each), two rollout settings (RL + evaluation each)
    assert len(nodes) == (1 + 9 + 11 + 2) + (2 + 2) + 2 + 2 * (1 + 1 + 4) + 2 * 2
    assert {n.arm for n in nodes} == {"main", "math_heavy", "wider", "rollouts_2", "rollouts_8"}
    assert all(n.done for n in nodes)
    ran = []
    study.run(spec, root, log=ran.append)
    assert ran == [f"study tiny: {len(nodes)} nodes, {len(nodes)} done, 0 to run"]


def test_sft_rl_starts_from_the_studys_sft_branch(tiny_study):
    spec, root = tiny_study
    sft_rl = next((root / "branch" / "sft_rl").glob("*/*/final"))
    meta = json.loads((sft_rl / "meta.json").read_text())
    ck = sft_rl.parent.parent.name
    assert meta["parent"] == str(next((root / "branch" / "sft" / ck).glob("*")) / "final")
    assert meta["parent_tokens"] == int(ck.split("-")[1])  # the pretraining tokens of M_t
    assert not (sft_rl.parent / "sft").exists()  # no second SFT run


def test_tables_agree_with_the_stored_evaluations(tiny_study):
    spec, root = tiny_study
    passk = pd.read_csv(root / "tables" / "passk.csv")
    assert set(passk["method"]) == {"base", "rl", "sft", "sft_gold", "sft_rl", "parallel"}
    n_evals = sum(n.kind == "eval" for n in study.plan(spec, root))
    assert len(passk) == n_evals * len(spec.eval.ks)
    for f in (root / "eval").glob("*/*.json"):
        r = json.loads(f.read_text())
        # (two branches can hold the same weights, e.g. RL seeds that never saw a reward: same id, same rows)
        got = passk[(passk["checkpoint_id"] == r["checkpoint_id"]) & (passk["split"] == r["split"])].groupby("k")["pass_at_k"].first()
        assert [got[p["k"]] for p in r["passk"]] == pytest.approx([p["pass_at_k"] for p in r["passk"]])
    base = passk[passk["method"] == "base"]
    assert set(base["prompt_mode"]) == {"few-shot"} and set(passk[passk["method"] == "rl"]["prompt_mode"]) == {"zero-shot"}
    general = pd.read_csv(root / "tables" / "general.csv")
    assert {"heldout_nll", "probe_acc"} <= set(general["metric"])
    assert not general.duplicated(["checkpoint_id", "metric"]).any()  # once per checkpoint, whatever the splits
    branch = pd.read_csv(root / "tables" / "branch_metrics.csv")
    assert set(branch["method"]) == {"rl", "sft", "sft_gold", "sft_rl", "parallel"}


def test_a_lost_evaluation_is_the_only_node_rerun(tiny_study):
    spec, root = tiny_study
    victim = next((root / "eval").glob("*/test.json"))
    before = victim.read_text()
    victim.unlink()
    logs = []
    study.run(spec, root, log=logs.append)
    assert logs[0].endswith("1 to run") and victim.read_text() == before  # same stored samples, same numbers


@pytest.mark.parametrize("text,needle", [
    ("name: x\nbogus: 1\n", "unknown config key 'bogus'"),
    ("name: x\nbranch:\n  methods: [dpo]\n", "unknown method 'dpo'"),
    ("name: x\neval:\n  n: 4\n  ks: [8]\n", "eval.ks=[8] must lie in [1, eval.n=4]"),
    ("name: x\nconfig:\n  model.n_layr: 2\n", "unknown config key 'model.n_layr'"),
])
def test_bad_study_specs_name_the_problem(tmp_path, text, needle):
    f = tmp_path / "s.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        study.load_study(f)


def test_paper_1b_spec_loads_and_plans_the_papers_shape(tmp_path):
    spec = study.load_study(TINY.parent / "paper-1b.yaml")
    cfg = spec.base_config()
    assert (cfg.model.n_layer, cfg.model.n_embd, cfg.pretrain.tokens) == (16, 2048, 50_000_000_000)
    assert cfg.pretrain.tokens_per_step == 512 * 4096
    assert [s // 1000 for s in cfg.pretrain.checkpoint_steps()[:-1]] == [1, 2, 3, 5, 6, 7, 10, 14, 22]
    rl = spec.branch_config(0).rl
    assert (rl.group_size, rl.prompts_per_step, rl.lr, rl.kl_coef) == (32, 512, 1e-6, 0.001)
    nodes = study.plan(spec, tmp_path)
    assert sum(n.kind == "branch" for n in nodes) == 9 * 5 * 4  # nine checkpoints, 5 recipes, 4 seeds
