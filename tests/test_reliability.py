"""Reliability (docs/DESIGN.md §9): a run killed with SIGKILL at random points resumes to bit-identical weights; bad
input through the `rlearly` command is one error line, a non-zero exit and no change to earlier results; a full
disk mid-save names the path and keeps the finished checkpoint; nothing is ever unpickled; notebook parameters are
type-checked.

Covered elsewhere, not repeated here: simulated interruptions (`stop_after`) of pretraining and of an RL branch
(test_pretrain.py, test_branch.py); SIGKILL of `rlearly study run` at a random point with finished nodes left
byte-identical, a second runner refused by the lock, corrupt tables and node results (test_study.py); `rlearly
config` with an unknown key or a wrong type, and `rlearly branch` with a typo in a key or a missing checkpoint,
as subprocesses (test_pretrain.py, test_branch.py); a truncated model.safetensors and a foreign model_type
(test_checkpoint.py); every malformed GSM8K/MATH row (test_tasks.py); a malformed or empty pretraining corpus
(test_mixture.py); a truncated or bit-flipped sample-store part (test_store.py).
"""
import ast
import errno
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import tiny_model
from safetensors.torch import load_file

from rlearly import cli, study
from rlearly.config import load_config
from rlearly.errors import CheckpointError, RlearlyError, StorageError
from rlearly.evaluation.evaluate import checkpoint_id
from rlearly.evaluation.store import SampleStore
from rlearly.files import MetricsLog, read_metrics, write_atomic
from rlearly.lm.checkpoint import load_checkpoint, read_meta, save_checkpoint
from rlearly.results import report
from rlearly.train import branch, pretrain

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "studies" / "tiny.yaml")
# one torch thread in every subprocess, as in this process (conftest): the weights compared bit for bit are
# then computed with the same reduction order
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SFT = ["sft.steps=8", "branch.save_every=2", "branch.eval_every=4"]  # saved every 2 steps, validated twice


def _rlearly(*args) -> list[str]:
    return [sys.executable, "-m", "rlearly.cli", *map(str, args)]


def _logged_step(*logs: Path) -> int:
    """Steps logged so far: the sum of the last step of each metrics log (a row torn mid-append is skipped)."""
    total = 0
    for f in logs:
        lines = f.read_text().splitlines() if f.is_file() else []
        for line in reversed(lines):
            try:
                total += json.loads(line)["step"]
                break
            except (ValueError, KeyError):
                continue
    return total


def _kill_points(seed: int, steps: int, n: int = 3) -> list[tuple[int, float]]:
    """n seeded random kill points (step, fraction): SIGKILL a run `fraction` of a step after it logged `step`.
    The steps lie at least 2 apart, so every point waits for progress that the run before it never logged."""
    rng = random.Random(seed)
    while True:
        s = sorted(rng.sample(range(1, steps - 1), n))
        if all(b - a >= 2 for a, b in zip(s, s[1:])):
            return [(step, rng.random()) for step in s]


def _run_killed_at(cmd: list[str], logs: list[Path], points, step_s: float, cwd: Path) -> None:
    """Run `cmd` once per kill point and SIGKILL it there, then once more to the end. `step_s`: seconds per
    step of an uninterrupted run (from its metrics), so a fraction lands anywhere in the step or its save."""
    for step, frac in points:
        proc = subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while _logged_step(*logs) < step and proc.poll() is None and time.time() < deadline:
            time.sleep(0.002)
        time.sleep(frac * step_s)
        running = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert running, f"the run ended (rc {proc.returncode}) before its kill at step {step} + {frac:.2f}"
        assert _logged_step(*logs) >= step, f"the run did not reach step {step} in 120 s"
    r = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


def _same_rows(a: Path, b: Path) -> None:
    """Two metrics logs hold the same rows, timings aside: every step logged once, with the same values."""
    timings = ("elapsed_s", "tok_per_s", "rollout_s", "update_s")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in timings} for r in rows]  # noqa: E731
    assert strip(read_metrics(a)) == strip(read_metrics(b))


def _assert_same_dirs(mine: Path, ref: Path) -> None:
    """Same visible files, and no hidden temp directory left by a save that a kill cut short."""
    def visible(d: Path) -> list[str]:
        rel = [p.relative_to(d) for p in d.rglob("*")]
        return sorted(str(r) for r in rel if not any(part.startswith(".") for part in r.parts))
    assert visible(mine) == visible(ref)
    assert [p.name for p in mine.rglob(".*") if p.is_dir()] == []


def _assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _weights(ckpt: Path) -> dict:
    return dict(load_checkpoint(ckpt)[0].state_dict())


def _snapshot(root: Path) -> dict[str, str]:
    """Every file under root (hidden ones included) -> sha256 of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def sft_reference(tiny_ckpt, tmp_path_factory):
    """An uninterrupted SFT branch of the tiny checkpoint (8 steps, saved every 2)."""
    cfg = load_config(tiny_ckpt / "config.yaml", SFT)
    out = branch.run(cfg, tiny_ckpt, tmp_path_factory.mktemp("sft") / "full", "sft", show_progress=False)
    return cfg, out


# ---------------------------------------------------------------- 1. exact resume under a real SIGKILL

def test_pretrain_killed_at_random_points_resumes_to_bit_identical_weights(tmp_path):
    """`rlearly pretrain` SIGKILLed at three seeded random points and restarted each time ends with the
    checkpoints, optimizer states and metrics of an uninterrupted run. Seed 2 kills 0.04, 0.68 and 1.0 of a
    step after steps 4, 10 and 14 of 16 (state saved every 4 steps, checkpoints at 8 and 16): in or just after
    step 4's save, then restarts from the step-8 checkpoint and from the step-12 state."""
    over = ["pretrain.eval_every=1"]  # a metrics row per step, so the kill points are steps
    cfg = load_config(preset="tiny", overrides=over)
    full = pretrain.run(cfg, tmp_path / "full", show_progress=False)
    step_s = read_metrics(full / "metrics.jsonl")[-1]["elapsed_s"] / cfg.pretrain.total_steps
    out = tmp_path / "run"
    points = _kill_points(2, cfg.pretrain.total_steps)
    assert [s for s, _ in points] == [4, 10, 14]
    cmd = _rlearly("pretrain", "--preset", "tiny", "--out", out, "--no-progress", *over)
    _run_killed_at(cmd, [out / "metrics.jsonl"], points, step_s, tmp_path)
    mine, ref = pretrain.list_checkpoints(out), pretrain.list_checkpoints(full)
    assert [p.name for p in mine] == [p.name for p in ref] == ["ckpt-0000008192", "ckpt-0000016384"]
    for a, b in zip([*mine, out / "state"], [*ref, full / "state"]):
        _assert_same_tensors(_weights(a), _weights(b))
        _assert_same_tensors(load_file(a / "trainer" / "optimizer.safetensors"),
                             load_file(b / "trainer" / "optimizer.safetensors"))
        assert read_meta(a)["config_hash"] == cfg.hash()
    _same_rows(out / "metrics.jsonl", full / "metrics.jsonl")
    _assert_same_dirs(out, full)


# GRPO needs reward variance within a group, and the tiny model never solves a problem: as in test_branch.py,
# the reward is the parity of the completion's length, in this process and in the `rlearly` it starts
PARITY_CLI = ("import sys; from rlearly.tasks import SyntheticTask; "
              "SyntheticTask.reward = lambda self, text, problem: float(len(text) % 2); "
              "from rlearly.cli import main; sys.exit(main())")
RL = ["rl.steps=8", "rl.lr=1e-2", "rl.kl_coef=0.05", "branch.save_every=2", "branch.eval_every=3"]


def test_sft_then_rl_branch_killed_at_random_points_resumes_to_bit_identical_weights(tiny_ckpt, tmp_path,
                                                                                      monkeypatch):
    """`rlearly branch --method sft_rl` (SFT, then GRPO with a KL term to the SFT checkpoint) SIGKILLed at three
    seeded random points and restarted each time ends with the weights, optimizer states and metrics (losses,
    rewards, validation pass@k) of an uninterrupted run. Seed 1 kills in SFT step 2, in RL step 4 and in RL
    step 7 (or step 6's save): the restarts resume SFT from scratch, RL from its step-2 state, RL from a later one."""
    from rlearly.tasks import SyntheticTask

    monkeypatch.setattr(SyntheticTask, "reward", lambda self, text, problem: float(len(text) % 2))
    cfg = load_config(tiny_ckpt / "config.yaml", RL)
    full = branch.run(cfg, tiny_ckpt, tmp_path / "full", "sft_rl", show_progress=False)
    stages = ["sft", "."]  # the SFT stage's run lives in <out>/sft, the RL stage's in <out>
    rows = [read_metrics(full / d / "metrics.jsonl") for d in stages]
    assert any(0 < r["reward_mean"] < 1 for r in rows[-1])  # mixed groups: the policy gradient is not zero
    steps = sum(len(r) for r in rows)
    step_s = sum(r[-1]["elapsed_s"] for r in rows) / steps
    out = tmp_path / "run"
    points = _kill_points(1, steps)
    assert [s for s, _ in points] == [1, 7, 10]  # 4 SFT steps, then 8 RL steps
    cmd = [sys.executable, "-c", PARITY_CLI, "branch", str(tiny_ckpt), "--method", "sft_rl", "--out", str(out),
           "--no-progress", *RL]
    _run_killed_at(cmd, [out / d / "metrics.jsonl" for d in stages], points, step_s, tmp_path)
    for d in stages:
        for sub in ("final", "state", *(p.name for p in (full / d).glob("step-*"))):
            _assert_same_tensors(_weights(out / d / sub), _weights(full / d / sub))
        _assert_same_tensors(load_file(out / d / "state" / "trainer" / "optimizer.safetensors"),
                             load_file(full / d / "state" / "trainer" / "optimizer.safetensors"))
        _same_rows(out / d / "metrics.jsonl", full / d / "metrics.jsonl")
    assert read_meta(out / "final")["config_hash"] == cfg.hash()
    _assert_same_dirs(out, full)


# ---------------------------------------------------------------- 2. bad input through the command line

_ROW = dict(task="synthetic-0000000000000000", checkpoint_id="c", split="test", problem_id="p0", sample_index=0, seed=0, completion="\\boxed{3}",
            tokens=4, answer=3, correct=True, logprob=-1.5, finished=True, temperature=0.6, top_p=0.95,
            prompt_mode="zero-shot")


@pytest.fixture(scope="module")
def workspace(tiny_pretrain_run, tiny_ckpt, sft_reference, tmp_path_factory):
    """Earlier results (a finished pretraining run, a checkpoint, a finished branch, an eval file and a sample
    store) and bad inputs (a tampered checkpoint, one of another width, malformed dataset files)."""
    ws = tmp_path_factory.mktemp("bad")
    shutil.copytree(tiny_pretrain_run[1], ws / "pre")
    shutil.copytree(tiny_ckpt, ws / "ckpt")
    shutil.copytree(sft_reference[1], ws / "branch")
    (ws / "evals").mkdir()
    (ws / "evals" / "eval-test.json").write_text('{"passk": "an earlier evaluation"}\n')
    SampleStore(ws / "store").add([dict(_ROW, checkpoint_id="earlier")])
    blob = (tiny_ckpt / "model.safetensors").read_bytes()
    shutil.copytree(tiny_ckpt, ws / "flipped")
    (ws / "flipped" / "model.safetensors").write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))  # same size: sha256 only
    shutil.copytree(tiny_ckpt, ws / "wider")
    (ws / "wider" / "meta.json").unlink()  # a plain HF directory: nothing to verify against
    hf = json.loads((ws / "wider" / "config.json").read_text())
    (ws / "wider" / "config.json").write_text(json.dumps({**hf, "hidden_size": 64}))  # the weights are 32 wide
    (ws / "broken.jsonl").write_text('{"question": "1+1?", "answer": "#### 2"}\n{"question": "2+2?", "answer"\n')
    (ws / "empty.jsonl").write_text("")
    (ws / "noanswer.jsonl").write_text('{"question": "1+1?"}\n')
    # a sample store whose part has one flipped byte inside a completion: without page checksums it would
    # read as a different, valid sample
    bad = SampleStore(ws / "badstore")
    from rlearly.lm.checkpoint import load_config_of
    from rlearly.tasks import get_task
    tid = get_task("synthetic", world=load_config_of(tiny_ckpt).world).task_id("test")  # what `eval` will read
    bad.add([dict(_ROW, task=tid, checkpoint_id=checkpoint_id(tiny_ckpt), completion="The answer is 12345.")])
    part = next((ws / "badstore").rglob("part-*.parquet"))
    blob = part.read_bytes()
    at = blob.index(b"answer is 12345")
    part.write_bytes(blob[:at] + b"b" + blob[at + 1:])
    # study tables of which one no longer matches the size and sha256 that tables/meta.json records
    study.write_tables(study.load_study(TINY), ws / "study")
    (ws / "study" / "tables" / "passk.csv").write_text("k,pass_at_k\n1,0.5\n")
    return ws


EVAL = ["--store", "{store}", "--out", "{evals}", "--no-progress"]
BAD_INPUT = {  # id: (arguments, what the one error line must say)
    "unknown-key": (["pretrain", "--preset", "tiny", "--out", "{pre}", "pretrain.bogus=1"],
                    "unknown config key 'pretrain.bogus'"),
    "ill-typed": (["pretrain", "--preset", "tiny", "--out", "{pre}", "pretrain.lr=fast"],
                  "config key 'pretrain.lr' must be a number, got 'fast'"),
    "zero-layers": (["pretrain", "--preset", "tiny", "--out", "{pre}", "model.n_layer=0"],
                    "model.n_layer=0 must be > 0"),
    "negative-tokens": (["pretrain", "--preset", "tiny", "--out", "{pre}", "pretrain.tokens=-8"],
                        "pretrain.tokens=-8 must be > 0"),
    "finished-run-of-another-config": (["pretrain", "--preset", "tiny", "--out", "{pre}", "seed=7"],
                                       "holds a run of another config"),
    "zero-group-size": (["branch", "{ckpt}", "--method", "rl", "--out", "{branch}", "rl.group_size=0"],
                        "rl.group_size=0 must be > 0"),
    "fractional-steps": (["branch", "{ckpt}", "--method", "sft", "--out", "{branch}", "sft.steps=2.5"],
                         "config key 'sft.steps' must be an integer, got 2.5"),
    "finished-branch-of-another-config": (["branch", "{ckpt}", "--method", "sft", "--out", "{branch}", *SFT,
                                           "sft.lr=0.5"], "holds a run of another config"),
    "tampered-parent": (["branch", "{flipped}", "--method", "sft", "--out", "{branch}", *SFT],
                        "flipped/model.safetensors is corrupt or truncated (size/sha256 differ from meta.json)"),
    "unknown-task": (["eval", "{ckpt}", "--task", "gsm9k", *EVAL],
                     "unknown task 'gsm9k'; known tasks: gsm8k, "),
    "unknown-backend": (["eval", "{ckpt}", "--backend", "jax", "--n", "1", "--k", "1", *EVAL],
                        "unknown sampling backend 'jax'; known: torch, vllm"),
    "malformed-dataset": (["eval", "{ckpt}", "--task", "gsm8k", "--data", "{broken}", *EVAL],
                          "broken.jsonl: row 2 (line 2) is not valid JSON"),
    "empty-dataset": (["eval", "{ckpt}", "--task", "gsm8k", "--data", "{empty}", *EVAL], "empty.jsonl: no rows"),
    "missing-answer-field": (["eval", "{ckpt}", "--task", "gsm8k", "--data", "{noanswer}", *EVAL],
                             "noanswer.jsonl: row 1: field 'answer' is missing or empty"),
    "weights-of-another-size": (["info", "{wider}"], "weights do not fit the architecture in config.json "
                                                     "(size mismatch for model.embed_tokens.weight"),
    "unknown-preset": (["pretrain", "--preset", "huge", "--out", "{pre}"], "unknown preset 'huge'; known: tiny"),
    "unknown-method": (["branch", "{ckpt}", "--method", "dpo", "--out", "{branch}"],
                       "unknown method 'dpo'; known: rl, sft, sft_gold, sft_rl"),
    "k-above-n": (["eval", "{ckpt}", "--n", "4", "--k", "1,8", *EVAL],
                  "--k 8 exceeds --n 4: pass@k needs at least k samples per problem"),
    "zero-max-problems": (["eval", "{ckpt}", "--max-problems", "0", *EVAL], "--max-problems 0 must be >= 1"),
    "corrupt-sample-store": (["eval", "{ckpt}", "--n", "1", "--k", "1", "--max-problems", "1", "--store",
                              "{badstore}", "--out", "{evals}", "--no-progress"], ".parquet is corrupt or truncated"),
    "corrupt-results-table": (["study", "report", TINY, "--root", "{study}"],
                              "study/tables/passk.csv is corrupt or truncated (size/sha256 differ from meta.json)"),
}


@pytest.fixture(scope="module")
def bad_input_runs(workspace, tmp_path_factory):
    """Every BAD_INPUT command, each in its own hard-linked copy of the workspace, two at a time (their time is
    mostly the import of torch): case -> (finished process, snapshot before, snapshot after)."""
    from concurrent.futures import ThreadPoolExecutor

    root = tmp_path_factory.mktemp("cases")

    def run(case):
        ws = root / case
        shutil.copytree(workspace, ws, copy_function=os.link)  # rewriting a file would unlink it here only
        paths = {p.name.split(".")[0]: p for p in ws.iterdir()}
        before = _snapshot(ws)
        r = subprocess.run(_rlearly(*(a.format(**paths) for a in BAD_INPUT[case][0])), cwd=ws, env=ENV,
                           capture_output=True, text=True, timeout=120)
        return r, before, _snapshot(ws)

    with ThreadPoolExecutor(2) as pool:
        return dict(zip(BAD_INPUT, pool.map(run, BAD_INPUT)))


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_line_nonzero_and_keeps_earlier_results(bad_input_runs, case):
    r, before, after = bad_input_runs[case]
    assert r.returncode != 0
    assert r.stderr.startswith("rlearly: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert BAD_INPUT[case][1] in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert after == before  # no earlier result changed, nothing half-written left behind


def test_a_plain_hf_directory_with_broken_files_is_named(tiny_ckpt, tmp_path):
    """Without meta.json there are no checksums: each broken file is still one CheckpointError naming it."""
    from rlearly.train.common import resume_latest

    ck = tmp_path / "plain"
    shutil.copytree(tiny_ckpt, ck)
    (ck / "meta.json").unlink()
    hf = (ck / "config.json").read_text()
    blob = (ck / "model.safetensors").read_bytes()
    (ck / "model.safetensors").write_bytes(blob[:-100])
    with pytest.raises(CheckpointError, match="plain/model.safetensors is corrupt or not a safetensors file"):
        load_checkpoint(ck)
    (ck / "model.safetensors").write_bytes(blob)
    (ck / "config.json").write_text(hf[:-20])
    with pytest.raises(CheckpointError, match=r"plain/config.json is corrupt \(not valid JSON\)"):
        load_checkpoint(ck)
    (ck / "config.json").write_text(json.dumps({k: v for k, v in json.loads(hf).items() if k != "num_hidden_layers"}))
    with pytest.raises(CheckpointError, match=r"config.json lacks integer field\(s\) \['num_hidden_layers'\]"):
        load_checkpoint(ck)
    (ck / "config.json").write_text(hf)
    (ck / "trainer" / "trainer_state.json").write_text("{")  # a resumable state whose step cannot be read
    model, _, _ = load_checkpoint(ck)
    with pytest.raises(CheckpointError, match="trainer_state.json is corrupt \\(no step\\); delete"):
        resume_latest([ck], model, {}, MetricsLog(tmp_path / "m.jsonl"))


# ---------------------------------------------------------------- 3. a full disk mid-save

def _half_then_enospc():
    """A safetensors save_file that writes part of the file, then fails as a full disk does."""
    from safetensors.torch import save

    def save_file(tensors, filename, metadata=None):
        Path(filename).write_bytes(save(tensors, metadata)[:1000])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(filename))
    return save_file


def test_full_disk_mid_pretraining_is_one_line_keeps_checkpoints_and_resumes_exactly(
        tiny_pretrain_run, tmp_path, monkeypatch, capsys):
    import rlearly.lm.checkpoint as ck

    cfg, full = tiny_pretrain_run
    out = tmp_path / "run"
    pretrain.run(cfg, out, show_progress=False, stop_after=8)  # ckpt at step 8, trainer state at step 4
    before = _snapshot(out)
    monkeypatch.setattr(ck, "save_file", _half_then_enospc())  # the disk fills before step 12's save
    rc = cli.main(["pretrain", "--preset", "tiny", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"rlearly: error: cannot write {out / 'state'}: no space left on device"), err
    assert _snapshot(out) == before  # the finished checkpoint and the older state untouched, no temp left
    monkeypatch.undo()
    pretrain.run(cfg, out, show_progress=False)  # space freed: the same command finishes, exactly
    _assert_same_tensors(_weights(pretrain.list_checkpoints(out)[-1]), _weights(pretrain.list_checkpoints(full)[-1]))


def test_a_save_removes_what_a_killed_save_of_the_same_checkpoint_left(tok, tmp_path):
    """A save cut by a kill leaves `.c.tmp-<pid>` (or `.c.old-<pid>`), a whole checkpoint each; the next save of
    `c` removes those of dead processes and keeps a running process's."""
    model = tiny_model(tok.vocab_size)
    dead = subprocess.Popen(["true"])
    dead.wait()
    for name in (f".c.tmp-{dead.pid}", f".c.old-{dead.pid}", f".c.tmp-{os.getppid()}", f".d.tmp-{dead.pid}"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes(b"half")
    save_checkpoint(tmp_path / "c", model, tok, {"step": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".c.tmp-{os.getppid()}", f".d.tmp-{dead.pid}", "c"]


@pytest.mark.parametrize("failure", ["oserror", "safetensors-text"])
def test_full_disk_in_save_checkpoint_names_the_path_and_keeps_the_old_one(tok, tmp_path, monkeypatch, failure):
    from safetensors import SafetensorError

    import rlearly.lm.checkpoint as ck

    model = tiny_model(tok.vocab_size)
    path = save_checkpoint(tmp_path / "c", model, tok, {"step": 1})
    before = _snapshot(tmp_path)
    if failure == "oserror":
        monkeypatch.setattr(ck, "save_file", _half_then_enospc())
    else:  # what safetensors' Rust writer raises: no OSError, the errno only in the text
        def save_file(*a, **k):
            raise SafetensorError('Error while serializing: I/O error: No space left on device (os error 28) '
                                  'at path "/x/.tmpAb12"')
        monkeypatch.setattr(ck, "save_file", save_file)
    with pytest.raises(StorageError) as e:
        save_checkpoint(path, model, tok, {"step": 2})
    assert str(e.value).startswith(f"cannot write {path}: no space left on device") and "\n" not in str(e.value)
    assert isinstance(e.value, OSError) and e.value.errno == errno.ENOSPC  # callers catching OSError still do
    assert _snapshot(tmp_path) == before and read_meta(path)["step"] == 1  # no temp dir, old one intact


def test_full_disk_in_atomic_text_writes_keeps_the_old_file(tmp_path, monkeypatch):
    import rlearly.files as common

    f = tmp_path / "meta.json"
    write_atomic(f, "old\n")
    log = MetricsLog(tmp_path / "metrics.jsonl")
    log.write(step=1, loss=2.0)
    before = _snapshot(tmp_path)

    def fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(common.os, "fsync", fsync)
    with pytest.raises(StorageError, match=f"cannot write {f}: no space left on device"):
        write_atomic(f, "new\n")
    assert _snapshot(tmp_path) == before  # old content, and the half-written temp file removed
    with pytest.raises(StorageError, match="metrics.jsonl: no space left on device"):
        log.write(step=2, loss=1.0)  # its row reached the file; only the fsync failed
    monkeypatch.undo()
    # a crash in the middle of an append leaves a torn last row: the resume drops it and logs that step again
    with open(log.path, "a") as fh:
        fh.write('{"step": 3, "lo')
    log.truncate_after(5)
    assert [r["step"] for r in read_metrics(log.path)] == [1, 2]


def test_full_disk_in_the_sample_store_keeps_stored_parts(tmp_path, monkeypatch):
    import rlearly.evaluation.store as store_mod

    row = dict(task="t", checkpoint_id="c", split="test", problem_id="p", sample_index=0, seed=0, completion="x", tokens=1,
               answer=None, correct=False, logprob=-1.0, finished=True, temperature=0.6, top_p=0.95,
               prompt_mode="zero-shot")
    store = SampleStore(tmp_path)
    store.add([row])
    before = _snapshot(tmp_path)

    def write_table(table, where, **kw):
        Path(where).write_bytes(b"PAR1 half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(store_mod.pq, "write_table", write_table)
    with pytest.raises(StorageError, match="no space left on device"):
        store.add([{**row, "sample_index": 1}])
    monkeypatch.undo()
    assert _snapshot(tmp_path) == before
    assert len(SampleStore(tmp_path).load("t", "c", "test")) == 1


# ---------------------------------------------------------------- 4. no pickle

class _Bomb:
    """Unpickling this runs code: it creates the file `marker`."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


def test_a_pickle_in_a_checkpoint_is_never_unpickled(tiny_ckpt, tmp_path, capsys):
    ck = tmp_path / "ckpt"
    shutil.copytree(tiny_ckpt, ck)
    marker = tmp_path / "pwned"
    torch.save({"model": _Bomb(marker)}, ck / "pytorch_model.bin")
    torch.load(ck / "pytorch_model.bin", weights_only=False)  # control: the bomb is armed
    assert marker.exists()
    marker.unlink()
    with pytest.raises(Exception, match="Unsupported global"):  # the only way rlearly may call torch.load
        torch.load(ck / "pytorch_model.bin", weights_only=True)
    _assert_same_tensors(_weights(ck), _weights(tiny_ckpt))  # model.safetensors is loaded, the .bin ignored
    assert cli.main(["info", str(ck)]) == 0
    (ck / "model.safetensors").unlink()  # only the pickle left: refused, with the reason
    with pytest.raises(CheckpointError, match="model.safetensors listed in meta.json is missing"):
        load_checkpoint(ck)
    (ck / "meta.json").unlink()
    with pytest.raises(CheckpointError, match="needs config.json and model.safetensors; pickle files such as "
                                              "pytorch_model.bin are never loaded"):
        load_checkpoint(ck)
    capsys.readouterr()
    assert not marker.exists()


def test_the_package_never_unpickles():
    offenders = []
    for f in sorted((REPO / "rlearly").rglob("*.py")):
        text = f.read_text()
        for needle in ("pickle.load", "pickle.Unpickler", "read_pickle", "allow_pickle=True", "joblib.load",
                       "dill.load"):
            if needle in text:
                offenders.append(f"{f.name}: {needle}")
        for node in ast.walk(ast.parse(text)):  # torch.load(..., weights_only=True) is the only torch.load
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"):
                ok = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                         for k in node.keywords)
                if not ok:
                    offenders.append(f"{f.name}:{node.lineno}: torch.load without weights_only=True")
    assert offenders == []


# ---------------------------------------------------------------- 5. notebook parameters

def test_notebook_parameters_of_the_wrong_type_are_refused_by_name():
    templates = sorted((REPO / "notebooks").glob("*.ipynb"))
    assert templates
    for t in templates:  # what execute_notebooks passes: three strings
        declared = report.template_parameters(t)
        assert {k: declared.get(k) for k in ("study_root", "study_name", "results_dir")} == dict.fromkeys(
            ("study_root", "study_name", "results_dir"), str), t.name
        report.check_parameters(t, {"study_root": "runs/tiny", "study_name": "tiny", "results_dir": "out"})
    pretrain_nb = REPO / "notebooks" / "pretrain.ipynb"
    with pytest.raises(RlearlyError, match=r"notebook pretrain: parameter 'study_root' must be a str \(as its "
                                           r"parameters cell declares\), got PosixPath"):
        report.check_parameters(pretrain_nb, {"study_root": Path("runs/tiny")})
    with pytest.raises(RlearlyError, match="parameter 'study_name' must be a str.*got int 3"):
        report.check_parameters(pretrain_nb, {"study_name": 3})
    with pytest.raises(RlearlyError, match="unknown parameter 'study_rot'; its parameters cell declares study_root"):
        report.check_parameters(pretrain_nb, {"study_rot": "runs/tiny"})
