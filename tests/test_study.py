"""The study runner on studies/tiny.yaml: plans, runs every node once, skips finished ones, writes tables."""
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from rlearly import study
from rlearly.errors import ConfigError, RlearlyError

TINY = Path(__file__).parent.parent / "studies" / "tiny.yaml"
# one torch thread in the `rlearly` processes, as in this one (conftest): two cores shared by two processes
# with a thread per core each are several times slower
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    spec = study.load_study(TINY)
    root = tmp_path_factory.mktemp("study") / "tiny"
    study.run(spec, root, log=lambda *a: None)
    return spec, root


@pytest.mark.parametrize("name", sorted(p.stem for p in TINY.parent.glob("*.yaml") if p != TINY))  # tiny: planned above
def test_every_shipped_study_plans(name, tmp_path, monkeypatch):
    """A spec that ships must load and plan (a typo in a draft study fails here, not at its node 28); a suite's hub
    revisions resolve to a made-up commit here (tests/test_suite.py: without a hub it fails in one line)."""
    from rlearly.study import suite

    monkeypatch.setattr(suite, "_hub_revision", lambda model, rev: ("0" * 40, f"{abs(hash(rev)):016x}"[:16]))
    nodes = study.plan(study.load_study(TINY.parent / f"{name}.yaml"), tmp_path)
    assert nodes and not any(n.done for n in nodes)
    assert len({n.key for n in nodes}) == len(nodes)


def test_every_node_done_and_second_run_does_nothing(tiny_study):
    spec, root = tiny_study
    nodes = study.plan(spec, root)
    # main: pretrain, 2 checkpoints x 4 methods + parallel and SFT-Gold→RL at the last, their 12 evaluations and
    # 2 readiness evaluations; arms: a second pretraining run (pretrain, RL and SFT at the last checkpoint, 3
    # evaluations), 2 more RL seeds (+ evaluations), the hard split (main's RL shared: 2 evaluations), two
    # pretraining variants (pretrain, RL, 4 evaluations each), three rollout settings (RL + evaluation each)
    assert len(nodes) == (1 + 10 + 12 + 2) + (1 + 2 + 3) + (2 + 2) + 2 + 2 * (1 + 1 + 4) + 3 * 2
    assert {n.arm for n in nodes} == {"main", "math_heavy", "wider", "rollouts_2", "rollouts_8", "same_tokens_8"}
    assert all(n.done for n in nodes)
    ran = []
    study.run(spec, root, log=ran.append)
    assert ran == [f"study tiny: {len(nodes)} nodes, {len(nodes)} done, 0 to run"]


def test_a_second_pretraining_run_is_a_unit_of_the_main_arm(tiny_study):
    """The `replicas` arm (the main config, pretraining seed 1) is labelled main: its rows carry pretrain_seed
    1, its branches live apart from seed 0's, and the contrasts at the last checkpoint resample both runs."""
    from rlearly.results import analysis

    spec, root = tiny_study
    passk = analysis.load_tables(root)["passk"]
    last = passk["parent_tokens"].max()
    at = passk[(passk["parent_tokens"] == last) & (passk["split"] == "test")]
    assert sorted(at.groupby("pretrain_seed")["method"].apply(set)[1]) == ["base", "rl", "sft"]
    assert len(at[(at["method"] == "rl") & (at["seed"] == 0)]["checkpoint_id"].unique()) == 2
    assert len(list(root.glob("pretrain/*/DONE"))) == 4  # main, its replica, the two pretraining variants
    assert len(list(root.glob("branch/rl/*/p1s0-*/DONE"))) == 1
    d = analysis.contrast(root, passk, "rl", "base", [1]).set_index("parent_tokens")
    # RL: seeds 0 and 1 of run 0 (averaged, the seeds arm is labelled main) and seed 0 of run 1; base: runs 0 and 1
    assert d.loc[last, "covers"] == "pretraining runs (2, paired; seeds averaged within a run) and problems"
    assert spec.replicate(1).arms["replicas"].pretrain_seeds == [2]  # past the original's runs


def test_sft_rl_starts_from_the_studys_sft_branch(tiny_study):
    spec, root = tiny_study
    sft_rl = next((root / "branch" / "sft_rl").glob("*/*/final"))
    meta = json.loads((sft_rl / "meta.json").read_text())
    ck = sft_rl.parent.parent.name
    sft = [d for d in (root / "branch" / "sft" / ck).glob("s*")]  # run 0's (p1s0-*: the replica's)
    assert meta["parent"] == str(sft[0] / "final") and len(sft) == 1
    assert meta["parent_tokens"] == int(ck.split("-")[1])  # the pretraining tokens of M_t
    assert not (sft_rl.parent / "sft").exists()  # no second SFT run
    # SFT→RL's own RL length (method_overrides) and the plain RL's; its SFT is the study's SFT branch
    own = json.loads((sft_rl.parent / "meta.json").read_text())
    rl = json.loads(next((root / "branch" / "rl" / ck).glob("s0-*/meta.json")).read_text())
    assert own["steps"] == 2 and rl["steps"] == 3 and rl["config_hash"] != own["config_hash"]


def test_tables_agree_with_the_stored_evaluations(tiny_study):
    spec, root = tiny_study
    passk = pd.read_csv(root / "tables" / "passk.csv")
    assert set(passk["method"]) == {"base", "rl", "sft", "sft_gold", "sft_rl", "sft_gold_rl", "parallel"}
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
    assert set(branch["method"]) == {"rl", "sft", "sft_gold", "sft_rl", "sft_gold_rl", "parallel"}
    # read again from the sample store: the mean pass@k at every k of 1..n agrees with the records' at their ks,
    # and per operation count the problems add up to the evaluated ones, their problem-weighted mean to the whole
    curve = pd.read_csv(root / "tables" / "passk_curve.csv")
    n = spec.eval.n
    ks = curve.groupby(["checkpoint_id", "split", "arm", "pretrain_seed", "seed"])["k"].apply(sorted)
    assert all(k == list(range(1, n + 1)) for k in ks)
    both = passk.merge(curve, on=["checkpoint_id", "split", "k", "arm", "seed"], suffixes=("", "_curve"))
    assert len(both.drop_duplicates(["checkpoint_id", "split", "k"])) == len(passk.drop_duplicates(
        ["checkpoint_id", "split", "k"]))
    assert both["pass_at_k_curve"].to_numpy() == pytest.approx(both["pass_at_k"].to_numpy())
    ops = pd.read_csv(root / "tables" / "difficulty.csv")
    assert ops["n_ops"].nunique() > 1
    one = ops[ops["k"] == 1].groupby(["checkpoint_id", "split", "arm", "seed"])
    whole = one.apply(lambda g: (g["pass_at_k"] * g["n_problems"]).sum() / g["n_problems"].sum(), include_groups=False)
    got = passk[passk["k"] == 1].drop_duplicates(["checkpoint_id", "split", "arm", "seed"]).set_index(
        ["checkpoint_id", "split", "arm", "seed"])["pass_at_k"]
    assert whole.to_numpy() == pytest.approx(got.reindex(whole.index).to_numpy())


def test_a_lost_evaluation_is_the_only_node_rerun(tiny_study):
    spec, root = tiny_study
    victim = next((root / "eval").glob("*/test.json"))
    before = victim.read_text()
    victim.unlink()
    logs = []
    study.run(spec, root, log=logs.append)
    assert logs[0].endswith("1 to run") and victim.read_text() == before  # same stored samples, same numbers


def test_an_evaluation_of_other_settings_is_not_taken_for_done(tiny_study):
    """Evaluation results are stored per checkpoint and split: one made with other settings (here fewer
    problems) is stale, so exactly the evaluations of the changed plan are redone."""
    import dataclasses
    spec, root = tiny_study
    changed = dataclasses.replace(spec, eval=dataclasses.replace(spec.eval, max_problems=spec.eval.max_problems - 1))
    before = {n.path: n.done for n in study.plan(spec, root)}
    after = {n.path: n for n in study.plan(changed, root)}
    assert all(before.values())
    stale = {p for p, n in after.items() if not n.done}
    assert stale and all(after[p].kind == "eval" and after[p].arm == "main" for p in stale)
    assert all(after[p].done for p in after if after[p].kind != "eval")


def test_corrupt_tables_and_node_results_are_named(tiny_study, tmp_path):
    """A table cut at a row boundary still parses: the size and sha256 in tables/meta.json catch it. A corrupt
    evaluation result or metrics log of a finished node is one error naming the file (and what to delete)."""
    from rlearly.errors import DataError
    from rlearly.results.analysis import load_tables

    spec, done_root = tiny_study
    root = tmp_path / "tiny"
    shutil.copytree(done_root, root)
    good = load_tables(root, arm=None)["passk"]
    passk = root / "tables" / "passk.csv"
    text = passk.read_text()
    passk.write_text(text[:text.rindex("\n", 0, -1) + 1])  # the last row gone, as a cut write would leave it
    assert len(pd.read_csv(passk)) == len(good) - 1  # pandas alone would not notice
    with pytest.raises(DataError, match=re.escape(f"{passk} is corrupt or truncated (size/sha256 differ from "
                                                  f"meta.json); run `rlearly study run <spec> --root {root}` again")):
        load_tables(root)
    study.write_tables(spec, root)  # what the next `study run` does
    pd.testing.assert_frame_equal(load_tables(root, arm=None)["passk"], good)
    victim = next((root / "eval").glob("*/test.json"))
    victim.write_text(victim.read_text()[:100])
    with pytest.raises(DataError, match=re.escape(f"{victim} is corrupt (not valid JSON); delete {victim} and")):
        study.run(spec, root, log=lambda *a: None)
    victim.unlink()
    study.run(spec, root, log=lambda *a: None)  # that evaluation alone is redone, from the stored samples
    pd.testing.assert_frame_equal(load_tables(root, arm=None)["passk"], good)
    log = next(root.glob("branch/rl/*/*/metrics.jsonl"))
    log.write_text('{"step": 1, "lo\n' + log.read_text())
    with pytest.raises(DataError, match=re.escape(f"{log}: line 1 is not valid JSON")):
        study.write_tables(spec, root)


@pytest.mark.parametrize("text,needle", [
    ("name: x\nbogus: 1\n", "unknown config key 'bogus'"),
    ("name: x\nbranch:\n  methods: [dpo]\n", "unknown method 'dpo'"),
    ("name: x\nbranch:\n  methods: [sft_r]\n", "study branch.methods: unknown method 'sft_r'; known: rl, sft, "),
    ("name: x\nbranch:\n  methods: [sft_r]\n", "did you mean 'sft_rl'?"),
    ("name: x\neval:\n  splits: [tset]\n", "study eval.splits: unknown split 'tset'"),
    ("name: x\narms:\n  a:\n    eval: {splits: [test, hrad]}\n", "study arms.a.eval.splits: unknown split 'hrad'"),
    ("name: x\neval:\n  n: 4\n  ks: [8]\n", "eval.ks=[8] must lie in [1, eval.n=4]"),
    ("name: x\neval:\n  max_problems: 0\n", "eval.max_problems=0 must be >= 1"),
    ("name: x\nconfig:\n  model.n_layr: 2\n", "unknown config key 'model.n_layr'"),
    ("name: x\nbranch:\n  methods: [rl]\n  method_overrides: {sft: {sft.steps: 2}}\n",
     "method_overrides names 'sft', which is not in branch.methods"),
    ("name: x\nbranch:\n  methods: [rl]\n  method_overrides: {rl: {rl.stepz: 2}}\n", "unknown config key 'rl.stepz'"),
])
def test_bad_study_specs_name_the_problem(tmp_path, text, needle):
    f = tmp_path / "s.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        study.load_study(f)


def test_method_aliases_name_the_same_recipe(tmp_path):
    """`grpo` is the paper's word for the RL recipe: a spec (and `rlearly branch --method`) may use it."""
    f = tmp_path / "s.yaml"
    f.write_text("name: x\nbranch:\n  methods: [grpo, sft]\n  method_overrides: {grpo: {rl.steps: 2}}\n")
    plan = study.load_study(f).branch
    assert plan.methods == ["rl", "sft"] and plan.method_overrides == {"rl": {"rl.steps": 2}}


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


def test_paper_1b_plans_openmath_training_and_gsm8k_evaluation_offline(tmp_path, monkeypatch, capsys):
    """The paper's setting is expressible: branches train on openmath, evaluations read GSM8K test; planning it
    (`rlearly study status`) reads no data, so it works offline."""
    from rlearly import cli, tasks

    monkeypatch.setattr(tasks._FileTask, "problems", lambda *a: pytest.fail("planning read a task's data"))
    spec = study.load_study(TINY.parent / "paper-1b.yaml")
    assert spec.branch_config(0).task.name == "openmath" and spec.eval.task == "gsm8k"
    nodes = study.plan(spec, tmp_path)
    branches, evals = [n for n in nodes if n.kind == "branch"], [n for n in nodes if n.kind == "eval"]
    assert branches and all(" on openmath " in n.key for n in branches)
    assert evals and all(n.key.endswith(" gsm8k-test") and n.protocol["task"] == "gsm8k" for n in evals)
    # evaluated in the training task's generation protocol: multi-line, 2,048 new tokens
    assert all(n.protocol["multiline"] and n.protocol["max_new_tokens"] == 2048 for n in evals)
    assert cli.main(["study", "status", str(TINY.parent / "paper-1b.yaml"), "--root", str(tmp_path)]) in (0, None)
    out = capsys.readouterr().out
    assert "todo  branch rl on openmath ckpt-2097152000 s0 [main]" in out and "gsm8k-test" in out


def _gsm8k(path, n, start=0):
    path.write_text("".join(json.dumps({"question": f"Ava has {i} marbles and buys {i + 2} more. How many now?",
                                        "answer": f"{i} + {i + 2} = {2 * i + 2}.\n#### {2 * i + 2}"}) + "\n"
                            for i in range(start, start + n)))
    return path


def test_a_study_trains_and_evaluates_on_a_real_task(tmp_path):
    """A study whose config names a GSM8K-format task (local files): its branches train on it, its evaluations
    read the task's test file (key gsm8k-test), the tables hold them, and no adversary floor is claimed for it."""
    train, dev, test = (_gsm8k(tmp_path / f"{s}.jsonl", n, k) for s, n, k in
                        (("train", 16, 0), ("dev", 4, 100), ("test", 6, 200)))
    f = tmp_path / "real.yaml"
    f.write_text(f"""name: real
config: {{preset: tiny, task.name: gsm8k, task.files: [train={train}, dev={dev}]}}
branch: {{checkpoints: [-1], methods: [sft, rl], overrides: {{branch.eval_every: 2, branch.eval_problems: 4}}}}
eval: {{task: gsm8k, task_files: [test={test}, train={train}], splits: [test], n: 2, ks: [1, 2], max_problems: 6}}
""")
    spec = study.load_study(f)
    study.run(spec, tmp_path / "run", log=lambda *a: None)
    nodes = study.plan(spec, tmp_path / "run")
    assert all(n.done for n in nodes)
    assert {n.key.split()[-1] for n in nodes if n.kind == "eval"} == {"gsm8k-test"}
    passk = pd.read_csv(tmp_path / "run" / "tables" / "passk.csv")
    assert set(passk["method"]) == {"base", "sft", "rl"} and passk["task_id"].str.startswith("gsm8k-").all()
    assert not (tmp_path / "run" / "tables" / "floor.csv").read_text().strip()
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\neval: {task: gsm9k}\n")
    with pytest.raises(ConfigError, match="study eval.task: unknown task 'gsm9k'"):
        study.load_study(bad)


def _tables(root):
    passk = pd.read_csv(root / "tables" / "passk.csv")
    return passk.sort_values(["arm", "checkpoint_id", "split", "k", "seed", "method"]).reset_index(drop=True)


def _finished(root: Path) -> int:
    """Finished nodes of a study that is running: a save's temporary directory can vanish (renamed into place)
    between glob listing it and reading it, so a listing that hits one is taken again."""
    while True:
        try:
            return len(list(root.glob("*/**/DONE"))) + len(list(root.glob("eval/*/*.json")))
        except FileNotFoundError:
            continue


def _node_bytes(node) -> dict[str, str]:
    """sha256 of every file of a node (its directory, or its one file for an evaluation)."""
    files = [node.path] if node.path.is_file() else sorted(p for p in node.path.rglob("*") if p.is_file())
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def test_killed_run_restarts_without_redoing_finished_nodes(tiny_study, tmp_path):
    """`rlearly study run` SIGKILLed at a seeded random point (0.76 s after its 8th finished node, or once a
    second runner has been refused, if later) and started again: a second `study run` while the first holds the
    lock stops with one line naming it; the nodes finished before the kill stay byte-identical; the rest
    complete, and the tables equal an uninterrupted run's."""
    spec, done_root = tiny_study
    rng = random.Random(0)
    after, delay = rng.randint(2, 12), rng.random()
    assert (after, round(delay, 2)) == (8, 0.76)
    root = tmp_path / "tiny"
    cmd = [sys.executable, "-m", "rlearly.cli", "study", "run", str(TINY), "--root", str(root)]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (root / ".lock").is_file() or (root / ".lock").read_text() != f"pid {proc.pid}":
        assert proc.poll() is None and time.time() < deadline, "the first runner never took the lock"
        time.sleep(0.01)
    second = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=120)
    assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
    assert f"study {root} is being run by pid {proc.pid}; wait for it to finish" in second.stderr
    while _finished(root) < after and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = [n for n in study.plan(spec, root) if n.done]
    assert len(finished) >= after, "the run was killed before its kill point"
    assert len(finished) < len(study.plan(spec, root)), "the run finished before it was killed"
    before = {n.key: _node_bytes(n) for n in finished}
    out = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.search(r"^done eval .* \(\d+ s; \d+/\d+ nodes done in \d+[hm]", out.stdout, re.M), out.stdout[-2000:]
    assert f"next: rlearly study report {TINY} --root {root}" in out.stdout.splitlines()[-1]
    assert all(n.done for n in study.plan(spec, root))
    assert {n.key: _node_bytes(n) for n in finished} == before  # finished nodes were not rerun or touched
    assert [p for p in root.rglob(".*") if p.is_dir()] == []  # no temp checkpoint left by the cut save
    pd.testing.assert_frame_equal(_tables(root), _tables(done_root))


def test_submitit_local_executor_gives_the_same_tables(tiny_study, tmp_path):
    """Nodes sent as submitit jobs (its local executor: the Slurm path without Slurm) give the pool's tables;
    job scripts and logs land in <root>/submitit."""
    pytest.importorskip("submitit")
    spec, done_root = tiny_study
    logs = []
    root = tmp_path / "tiny"
    study.run(spec, root, log=logs.append, jobs=2, threads=1, executor="submitit", cluster="local")
    assert any(l.startswith("done pretrain") for l in logs)
    pd.testing.assert_frame_equal(_tables(root), _tables(done_root))
    assert list((root / "submitit").glob("*/*_result.pkl"))


def test_submitit_job_failure_names_the_node_and_its_log(tiny_study, tmp_path):
    pytest.importorskip("submitit")
    spec, _ = tiny_study
    root = tmp_path / "bad"
    for node in study.plan(spec, root):  # a file where a run's folder goes: the job fails, not the planning
        if node.kind == "pretrain":
            node.path.parent.mkdir(parents=True, exist_ok=True)
            node.path.write_text("")
    with pytest.raises(RlearlyError, match=r"^pretrain \w+: job \d+ failed: FileExistsError: .+ \(log: .+\.err\)$"):
        study.run(spec, root, log=lambda _: None, jobs=1, executor="submitit", cluster="local")


def test_pace_estimates_kind_by_kind():
    """A pretraining run is timed per unit of cost, the other kinds by their mean; untimed kinds are counted."""
    nodes = [study.Node("pretrain", "p1", Path("p1"), None, cost=1.0), study.Node("pretrain", "p2", Path("p2"), None,
             cost=3.0), study.Node("branch", "b1", Path("b1"), None), study.Node("branch", "b2", Path("b2"), None),
             study.Node("eval", "e1", Path("e1"), None)]
    pace = study.runner._Pace(nodes, jobs=2)
    # the second run costs 3x the first: 1800 s, over 2 jobs; the branches and the evaluation are untimed
    assert pace.step(nodes[0], 600.0).endswith("about 15m00s left (+ 2 branch nodes, 1 eval node not yet timed)")
    assert pace.step(nodes[2], 100.0).endswith("about 15m50s left (+ 1 eval node not yet timed)")  # (1800+100)/2
    pace.step(nodes[1], 1700.0)
    assert pace.step(nodes[3], 300.0).endswith("; 1 eval node not yet timed")
    assert re.fullmatch(r"5/5 nodes done in \S+", pace.step(nodes[4], 10.0))


def test_parallel_jobs_give_the_same_tables(tiny_study, tmp_path):
    spec, done_root = tiny_study
    logs = []
    study.run(spec, tmp_path / "tiny", log=logs.append, jobs=2, threads=1)
    assert "2 at a time" in logs[0] and any(l.startswith("done pretrain") for l in logs)
    assert re.fullmatch(r"estimate: about \d+m\d\ds for 55 nodes on 2 CPUs \(.* node time at rates fitted on .*\)",
                        logs[1])  # before the first node starts
    assert re.search(r"\d+/\d+ nodes done in .*, about .* left", "\n".join(logs))
    pd.testing.assert_frame_equal(_tables(tmp_path / "tiny"), _tables(done_root))
    timings = pd.read_csv(tmp_path / "tiny" / "tables" / "timings.csv")
    assert len(timings) == len(study.plan(spec, tmp_path / "tiny")) and (timings["seconds"] >= 0).all()


def test_a_second_runner_on_the_same_study_stops_with_a_clear_error(tiny_study):
    from rlearly.errors import RlearlyError

    spec, root = tiny_study
    with study.runner._Lock(root / ".lock"):
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


def test_completions_of_a_study_row_and_what_rl_solved_or_lost(tiny_study, tmp_path, capsys):
    """A pass@k-table row maps to its stored samples: the counts behind the table's pass@1, the question and
    gold answer of the world, and a solved/lost diff whose statuses follow from the two solve rates."""
    from rlearly.errors import DataError
    from rlearly.results import analysis, completions

    _, root = tiny_study
    passk = analysis.load_tables(root)["passk"]
    last = passk["parent_tokens"].max()
    df = completions.samples(root, "rl", last)
    row = passk[(passk.method == "rl") & (passk.parent_tokens == last) & (passk.k == 1)].iloc[0]
    assert list(df.columns) == completions.COLUMNS and len(df) == row.n * df["problem_id"].nunique()
    assert df["correct"].mean() == pytest.approx(row.pass_at_k)  # pass@1 is the mean correctness
    assert df["question"].str.len().min() > 10 and df["gold"].notna().all()
    diff = completions.solved_lost(root, "rl", last)
    assert set(diff.columns) == {"base", "rl", "shift", "status"}
    for _, r in diff.iterrows():
        assert r.status == completions.status(r.base, r.rl) and r["shift"] == pytest.approx(r.rl - r.base)
    assert [completions.status(*p) for p in ((0, 0.25), (0.5, 0), (0.5, 0.25), (0, 0))] == \
        ["newly solved", "lost", "kept", "never"]
    side = completions.side_by_side(root, ["base", "rl", "sft"], last, n_problems=3)
    assert list(side.columns) == ["question", "gold", "base", "rl", "sft"] and len(side) == 3
    assert side["rl"].str.match(r"^[✓✗] .*\(solves \d+%\)$").all()
    with pytest.raises(DataError, match="no test evaluation of 'dpo' in arm 'main'"):
        completions.samples(root, "dpo")
    with pytest.raises(DataError, match="'rl' was not evaluated at 7 tokens in arm 'main'; it was at "):
        completions.samples(root, "rl", 7)
    ckpt = next(root.glob("pretrain/*/ckpt-*"))
    from rlearly import cli

    assert cli.main(["eval", str(ckpt), "--n", "2", "--k", "1", "--max-problems", "3", "--store",
                     str(tmp_path / "s"), "--out", str(tmp_path / "e"), "--show", "2", "--no-progress"]) == 0
    shown = re.findall(r"^(test-\d+) · gold (\d+) · solved (\d)/2\n  Q: .+\n  ([✓✗]) ", capsys.readouterr().out, re.M)
    assert len(shown) == 2 and all(int(solved) <= 2 for _, _, solved, _ in shown)


def test_completions_find_a_checkpoint_recorded_relative_to_another_directory(tmp_path):
    """An evaluation records its checkpoint as the run saw it (runs/default/... from the repo): read from
    anywhere, the checkpoint is found under the study root."""
    from rlearly.results import completions

    (tmp_path / "eval" / "x").mkdir(parents=True)
    (tmp_path / "pretrain" / "h" / "ckpt-1").mkdir(parents=True)
    (tmp_path / "eval" / "x" / "test.json").write_text(json.dumps(
        {"checkpoint_id": "abc", "checkpoint": "runs/default/pretrain/h/ckpt-1"}))
    assert completions._checkpoint_of(tmp_path, "abc", "test")[0] == tmp_path / "pretrain" / "h" / "ckpt-1"


def test_evaluation_nodes_can_sample_with_vllm(tmp_path, monkeypatch):
    """eval.backend: vllm: the study's evaluation nodes sample through the vllm backend (its samples stored apart,
    the backend in the node's protocol); torch studies keep their old protocol. The engine here is a stand-in."""

    f = tmp_path / "s.yaml"
    f.write_text("name: v\nconfig: {preset: tiny}\nbranch: {checkpoints: [-1], methods: [sft]}\n"
                 "eval: {backend: vllm, n: 2, ks: [1, 2], max_problems: 4}\n")
    spec = study.load_study(f)
    evals = [n for n in study.plan(spec, tmp_path / "run") if n.kind == "eval"]
    assert evals and all(n.protocol["backend"] == "vllm" for n in evals)
    assert "backend" not in study.nodes._protocol(study.load_study(TINY).eval)
    from rlearly.config import load_config
    from rlearly.lm import checkpoint

    class Called(Exception):
        pass

    def sampled(*args, **kw):
        raise Called(kw)
    from rlearly.evaluation import record
    monkeypatch.setattr(record, "evaluate_passk", sampled)  # the node's job, up to its sampling call
    monkeypatch.setattr(checkpoint, "read_meta", lambda *a, **k: {"method": "sft"})
    monkeypatch.setattr(checkpoint, "load_config_of", lambda path: load_config(preset="tiny"))
    with pytest.raises(Called) as got:
        evals[-1].run()
    assert got.value.args[0]["backend"] == "vllm"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\neval: {backend: jax}\n")
    with pytest.raises(ConfigError, match="study eval.backend: unknown sampling backend 'jax'; known: torch, vllm"):
        study.load_study(bad)


def test_study_claims_prints_every_verdict(tiny_study, capsys):
    """`rlearly study claims`: the headline, what the intervals resample, each claim's parts with their values
    and floors, from the finished study's tables; before the tables exist, one line saying to run the study."""
    from rlearly import cli

    spec, root = tiny_study
    assert cli.main(["study", "claims", str(TINY), "--root", str(root)]) in (0, None)
    out = capsys.readouterr().out.splitlines()
    assert "claims held" in out[0] and sum(line.startswith("claim ") for line in out) == 10
    assert any(line.startswith("  floor: test: pass@1") for line in out)
    assert cli.main(["study", "claims", str(TINY), "--root", str(root.parent / "none")]) == 2
    assert f"run `rlearly study run studies/none.yaml --root {root.parent / 'none'}`" in capsys.readouterr().err
