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


def _tables(root):
    passk = pd.read_csv(root / "tables" / "passk.csv")
    return passk.sort_values(["arm", "checkpoint_id", "split", "k", "seed", "method"]).reset_index(drop=True)


def test_killed_run_restarts_without_redoing_finished_nodes(tiny_study, tmp_path):
    """SIGKILL `rlearly study run` mid-way (inside a node), start it again: the nodes finished before the
    kill are untouched, the rest complete, and the tables equal an uninterrupted run's."""
    import os
    import signal
    import subprocess
    import sys
    import time

    spec, done_root = tiny_study
    root = tmp_path / "tiny"
    cmd = [sys.executable, "-m", "rlearly.cli", "study", "run", str(TINY), "--root", str(root)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(list(root.glob("branch/*/*/*/DONE"))) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p: p.stat().st_mtime_ns for p in root.glob("**/DONE")}
    assert finished, "the run was killed before any node finished"
    assert not all(n.done for n in study.plan(spec, root)), "the run finished before it was killed"
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert all(n.done for n in study.plan(spec, root))
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # finished nodes were not rerun
    pd.testing.assert_frame_equal(_tables(root), _tables(done_root))


def test_parallel_jobs_give_the_same_tables(tiny_study, tmp_path):
    spec, done_root = tiny_study
    logs = []
    study.run(spec, tmp_path / "tiny", log=logs.append, jobs=2)
    assert "2 at a time" in logs[0] and any(l.startswith("done pretrain") for l in logs)
    pd.testing.assert_frame_equal(_tables(tmp_path / "tiny"), _tables(done_root))
    timings = pd.read_csv(tmp_path / "tiny" / "tables" / "timings.csv")
    assert len(timings) == len(study.plan(spec, tmp_path / "tiny")) and (timings["seconds"] >= 0).all()


def test_a_second_runner_on_the_same_study_stops_with_a_clear_error(tiny_study):
    from rlearly.errors import RlearlyError

    spec, root = tiny_study
    with study._Lock(root / ".lock"):
        with pytest.raises(RlearlyError, match="is being run by pid"):
            study.run(spec, root, log=lambda *a: None)
    study.run(spec, root, log=lambda *a: None)  # the lock is released afterwards


def test_a_replicate_moves_every_seed_and_keeps_the_world(tmp_path):
    spec = study.load_study(TINY)
    rep = spec.replicate(3)
    assert spec.replicate(0) is spec and rep.name == "tiny-seed3"
    assert rep.base_config().seed == spec.base_config().seed + 3 and rep.eval.seed == spec.eval.seed + 3
    assert rep.branch.seeds == [s + 3 for s in spec.branch.seeds]
    assert rep.arms["seeds"].branch.seeds == [s + 3 for s in spec.arms["seeds"].branch.seeds]
    assert rep.base_config().world == spec.base_config().world  # same problems, so verdicts compare
    a, b = study.plan(spec, tmp_path), study.plan(rep, tmp_path)
    assert len(a) == len(b) and not {n.path for n in a} & {n.path for n in b}
    with pytest.raises(ConfigError, match="--seed -1"):
        spec.replicate(-1)
