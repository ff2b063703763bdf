"""rlearly.machine: the usable CPUs from the affinity mask and the cgroup quota (v2 and v1, made-up cgroup folders),
the busy CPUs from /proc/stat, and a study's jobs × threads kept within them."""
import os

import pytest

from rlearly import machine
from rlearly.errors import RlearlyError
from rlearly.files import REPO

AFFINITY = len(os.sched_getaffinity(0))


def _cgroup(tmp_path, v2=None, v1=None):
    if v2 is not None:
        (tmp_path / "cpu.max").write_text(v2 + "\n")
    if v1 is not None:
        (tmp_path / "cpu").mkdir()
        (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(f"{v1[0]}\n")
        (tmp_path / "cpu" / "cpu.cfs_period_us").write_text(f"{v1[1]}\n")
    return tmp_path


@pytest.mark.parametrize("v2, v1, quota", [
    ("max 100000", None, None),            # v2 without a quota
    ("50000 100000", None, 0.5),           # half a CPU
    ("150000 100000", None, 1.5),
    (None, (-1, 100000), None),            # v1 without a quota
    (None, (100000, 100000), 1.0),
    (None, None, None),                    # no cgroup files at all
])
def test_quota_from_cgroup_v2_then_v1(tmp_path, v2, v1, quota):
    assert machine._quota(_cgroup(tmp_path, v2, v1)) == quota


@pytest.mark.parametrize("v2, usable", [
    ("max 100000", AFFINITY),                # no quota: the mask
    ("50000 100000", 1),                     # half a CPU: at least one
    ("100001 100000", min(2, AFFINITY)),     # just over one CPU: two
    ("6400000 100000", AFFINITY),            # 64 CPUs: the mask wins
])
def test_usable_cpus_is_the_affinity_capped_by_the_quota_rounded_up(tmp_path, v2, usable):
    assert machine.usable_cpus(_cgroup(tmp_path, v2)) == usable


def test_busy_and_free_cpus_are_within_the_machine(tmp_path):
    busy = machine.busy_cpus(0.05)
    assert 0.0 <= busy <= (os.cpu_count() or 1) + 1e-9
    assert 1 <= machine.free_cpus(_cgroup(tmp_path, "max 100000"), 0.05) <= AFFINITY


def test_a_study_runs_no_more_jobs_than_usable_cpus(monkeypatch, tmp_path):
    """jobs > CPUs: clamped, and said; jobs × threads > CPUs: one clear error before anything runs."""
    from rlearly import study

    spec = study.load_study("studies/tiny.yaml")
    monkeypatch.setattr(study.runner, "usable_cpus", lambda: 1)
    monkeypatch.setattr(study.runner, "plan", lambda spec, root: [])  # nothing to run: the sizing only
    monkeypatch.setattr(study.runner, "write_tables", lambda spec, root: None)
    logs = []
    study.run(spec, tmp_path, log=logs.append, jobs=4)
    assert "--jobs 4 > the 1 usable CPUs: running 1 at a time (more would wait on each other)" in logs
    monkeypatch.setattr(study.runner, "usable_cpus", lambda: 2)
    with pytest.raises(RlearlyError, match=r"--jobs 2 × --threads 2 > the 2 usable CPUs"):
        study.run(spec, tmp_path, log=logs.append, jobs=2, threads=2)


# ---------------------------------------------------------------- runtime.dtype: auto

def test_fast_bf16_needs_amx_or_avx512_bf16():
    assert machine.fast_cpu_bf16({"avx2", "fma"}) is False  # an AVX2 EPYC: bf16 is emulated, slower than fp32
    assert machine.fast_cpu_bf16({"avx2", "amx_bf16", "amx_tile"}) is True
    assert machine.fast_cpu_bf16({"avx512f", "avx512_bf16"}) is True
    assert machine.cpu_model()


@pytest.mark.parametrize("fast, dtype", [(True, "bf16"), (False, "fp32")])
def test_auto_dtype_is_bf16_only_where_it_is_fast(monkeypatch, fast, dtype):
    from rlearly.config import RuntimeConfig
    from rlearly.lm import runtime

    monkeypatch.setattr(runtime, "fast_cpu_bf16", lambda: fast)
    assert runtime.resolve(RuntimeConfig(device="cpu", dtype="auto")).dtype == dtype
    assert runtime.resolve_dtype("cpu") == dtype
    assert runtime.resolve(RuntimeConfig(device="cpu", dtype="fp32")).dtype == "fp32"  # a named dtype stays


@pytest.mark.parametrize("fast, dtype", [(True, "bf16"), (False, "fp32")])
def test_a_study_resolves_auto_once_when_loaded(monkeypatch, tmp_path, fast, dtype):
    """The resolved dtype is written into the spec (workers and hashes see it, never "auto"); on a machine without
    fast bf16 the nodes are named exactly as the fp32 study's, so nothing cached is renamed."""
    from rlearly import study
    from rlearly.lm import runtime

    monkeypatch.setattr(runtime, "fast_cpu_bf16", lambda: fast)
    text = (REPO / "studies" / "tiny.yaml").read_text()
    auto = tmp_path / "auto.yaml"
    auto.write_text(text.replace("  preset: tiny\n", "  preset: tiny\n  runtime.device: cpu\n  runtime.dtype: auto\n"))
    spec = study.load_study(auto)
    assert spec.config["runtime.dtype"] == dtype
    assert all(a.config["runtime.dtype"] == dtype for a in spec.arms.values())
    assert spec.base_config().runtime.dtype == dtype
    assert spec.eval.dtype == dtype and all(a.eval.dtype == dtype for a in spec.arms.values())  # sampling too
    plain = tmp_path / "plain.yaml"
    plain.write_text(text.replace("  preset: tiny\n", "  preset: tiny\n  runtime.device: cpu\n"))
    keys = lambda s: [n.key for n in study.plan(s, tmp_path / "root")]  # noqa: E731
    assert (keys(spec) == keys(study.load_study(plain))) == (dtype == "fp32")


def test_eval_dtype_follows_the_study_unless_named(tmp_path):
    """eval.dtype left out: the study's runtime.dtype; named: its own (bf16 samples are stored and recorded apart,
    so an evaluation node's protocol names a dtype other than fp32)."""
    from rlearly import study
    from rlearly.errors import ConfigError
    from rlearly.study.nodes import _protocol

    text = (REPO / "studies" / "tiny.yaml").read_text()
    (tmp_path / "b.yaml").write_text(text.replace("  preset: tiny\n", "  preset: tiny\n  runtime.dtype: bf16\n"))
    spec = study.load_study(tmp_path / "b.yaml")
    assert spec.eval.dtype == "bf16" and _protocol(spec.eval)["dtype"] == "bf16"
    plain = study.load_study(REPO / "studies" / "tiny.yaml")
    assert plain.eval.dtype == "fp32" and "dtype" not in _protocol(plain.eval)  # older results still count
    (tmp_path / "e.yaml").write_text(text.replace("eval:\n", "eval:\n  dtype: bf16\n", 1))
    assert study.load_study(tmp_path / "e.yaml").eval.dtype == "bf16"
    (tmp_path / "bad.yaml").write_text(text.replace("eval:\n", "eval:\n  dtype: fp16\n", 1))
    with pytest.raises(ConfigError, match="eval.dtype='fp16' must be fp32, bf16 or auto"):
        study.load_study(tmp_path / "bad.yaml")
