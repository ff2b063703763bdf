"""The first hour, tried as a new user would (issue 36): each friction found then, and what it does now."""
import shutil
import subprocess
from pathlib import Path

import pytest

from rlearly.cli import main
from rlearly.config import load_config
from rlearly.errors import ConfigError, RlearlyError
from rlearly.train import branch, pretrain

REPO = Path(__file__).resolve().parents[1]


def test_eval_takes_runtime_overrides_and_refuses_others_in_one_line(tiny_ckpt, tmp_path, capsys):
    """`rlearly eval CKPT runtime.threads=1` works as `pretrain` and `branch` take overrides; what is sampled is
    eval's own options, so another section is one line naming it; an unknown option is one line too."""
    args = ["--n", "1", "--k", "1", "--max-problems", "2", "--store", str(tmp_path / "s"), "--no-progress",
            "--out", str(tmp_path / "e")]
    assert main(["eval", str(tiny_ckpt), "runtime.threads=1", "runtime.device=cpu", *args]) == 0
    assert (tmp_path / "e" / "test.json").is_file()
    capsys.readouterr()
    assert main(["eval", str(tiny_ckpt), "rl.lr=1e-3", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "runtime.* overrides only, not 'rl.lr'" in err
    with pytest.raises(SystemExit) as e:
        main(["eval", str(tiny_ckpt), "--bogus", *args])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "unrecognized arguments: --bogus" in err


def test_a_refused_branch_leaves_no_run_folder(tiny_pretrain_run, tiny_ckpt, tmp_path, capsys):
    """A pretraining run's folder given as the checkpoint, or a held-out training split, is refused in one line
    before any folder is made (it used to leave a branch folder holding only config.yaml)."""
    run = tmp_path / "t"
    shutil.copytree(tiny_pretrain_run[1], run)
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    assert main(["branch", str(run), "--method", "rl", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{run} is a pretraining run, not a checkpoint" in err and "ckpt-" in err
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before
    ckpt = run / tiny_ckpt.name
    assert main(["branch", str(ckpt), "--method", "rl", "rl.split=test", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "split 'test' is held out" in err and "(rl.split)" in err
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before
    cfg = load_config(ckpt / "config.yaml", ["sft.split=dev"])  # the library call refuses before writing, too
    with pytest.raises(ConfigError, match="held out"):
        branch.run(cfg, ckpt, tmp_path / "b", "sft", show_progress=False)
    assert not (tmp_path / "b").exists()


def test_a_notebook_outside_make_lab_finds_the_project_runs(tmp_path, monkeypatch):
    """Opened from notebooks/ without `make lab` (no RLEARLY_ROOT), `runs/tiny` means the project's runs/tiny, and a
    study not run yet is reported there with the command that makes it, not under notebooks/."""
    from rlearly.results import tables

    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    monkeypatch.setenv("RLEARLY_ROOT", str(project))
    monkeypatch.chdir(project / "notebooks")
    assert tables.resolve_path("runs/tiny") == project / "runs" / "tiny"
    with pytest.raises(RlearlyError) as e:
        tables.load_tables("runs/tiny")
    msg = str(e.value)
    assert f"in {project} run `rlearly study run studies/tiny.yaml`" in msg and "notebooks/runs" not in msg
    (project / "notebooks" / "runs" / "x").mkdir(parents=True)  # a path that is there is read where it is
    assert tables.resolve_path("runs/x") == project / "notebooks" / "runs" / "x"


def test_jupyter_checkpoints_are_not_tracked():
    out = subprocess.run(["git", "check-ignore", "-q", "notebooks/.ipynb_checkpoints/summary-checkpoint.ipynb"],
                         cwd=REPO, capture_output=True)
    assert out.returncode == 0  # ignored


def test_a_yaml_syntax_error_names_its_line(tmp_path):
    from rlearly.study import load_study

    f = tmp_path / "s.yaml"
    f.write_text("name: x\nbranch:\n  methods: [rl, sft\neval: {n: 2}\n")
    with pytest.raises(ConfigError, match=rf"{f} is not valid YAML at line 4, column 5: "):
        load_study(f)
    g = tmp_path / "c.yaml"
    g.write_text("preset: tiny\nrl:\n\tsteps: 3\n")
    with pytest.raises(ConfigError, match="not valid YAML at line 3, column 1"):
        load_config(g)


def test_a_resumed_run_says_where_it_resumed(tiny_ckpt, tmp_path, capsys):
    cfg = load_config(preset="tiny")
    pretrain.run(cfg, tmp_path / "pre", show_progress=False, stop_after=6)  # saved at step 4 (save_every 4)
    capsys.readouterr()
    pretrain.run(cfg, tmp_path / "pre", show_progress=False)
    out = capsys.readouterr().out
    assert f"{tmp_path / 'pre'}: resuming at step 4 of {cfg.pretrain.total_steps} (4,096 of 16,384 tokens" in out
    bcfg = load_config(tiny_ckpt / "config.yaml", ["sft.steps=4", "branch.save_every=2", "branch.eval_every=0"])
    branch.run(bcfg, tiny_ckpt, tmp_path / "b", "sft", show_progress=False, stop_after=3)
    capsys.readouterr()
    branch.run(bcfg, tiny_ckpt, tmp_path / "b", "sft", show_progress=False)
    assert f"{tmp_path / 'b'}: resuming at step 2 of 4" in capsys.readouterr().out


@pytest.mark.notebooks
def test_report_kernels_shut_down_without_a_sigint(tmp_path):
    """`study report` printed "[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel." after runs that succeeded:
    jupyter_client sends a kernel SIGINT just before asking it to shut down, and a kernel inside a message handler
    then logs it. The report's kernel manager sends no signal at shutdown (the control: the plain manager does)."""
    import signal

    import nbformat
    import papermill as pm
    from jupyter_client.manager import AsyncKernelManager

    from rlearly.results import report

    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                           "display_name": "Python 3"}})
    nb.cells = [nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}), nbformat.v4.new_code_cell("x")]
    nbformat.write(nb, tmp_path / "t.ipynb")
    report.ensure_kernel()
    sent = {}
    for name, base in (("plain", AsyncKernelManager), ("report", report.quiet_shutdown_manager())):
        signals = sent.setdefault(name, [])

        class Recording(base):
            async def _async_signal_kernel(self, signum):
                signals.append(signum)
                await super()._async_signal_kernel(signum)

        pm.execute_notebook(str(tmp_path / "t.ipynb"), str(tmp_path / f"{name}.ipynb"), parameters={"x": 2},
                            kernel_name=report.KERNEL, progress_bar=False, log_output=False,
                            kernel_manager_class=Recording)
    assert signal.SIGINT in sent["plain"] and signal.SIGINT not in sent["report"]
    assert "kernel_manager_class" in report._kernel_config()
