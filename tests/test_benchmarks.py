"""The benchmarks run end to end in --quick mode (tiny preset, one repeat) and report what they claim:
equal work on both sides of each comparison, ratios, the machine, and the study's stage shares. The TRL
baselines need the `bench` extra; without trl they are skipped (the rlearly side still runs)."""
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_pretrain  # noqa: E402
import bench_study  # noqa: E402
import run_all  # noqa: E402

HAVE_TRL = bench_study.benchlib.have("trl")
NEED_TRL = "TRL baselines need the bench extra (pip install -e '.[bench]'); CI installs only .[dev]"


def fake_study(root: Path) -> Path:
    """A study root as `rlearly study run` leaves it: 200 node-seconds run one after another."""
    rows = [("pretrain abc", "pretrain", 100), ("branch rl ckpt-1 s0 [main]", "branch", 50),
            ("branch sft ckpt-1 s0 [main]", "branch", 20), ("eval pretrain__abc__ckpt-1 test", "eval", 10),
            ("eval branch__rl__ckpt-1__s0-h__final test", "eval", 20)]
    root.mkdir(parents=True)
    t, lines = 0, []
    for key, kind, s in rows:
        t += s
        lines.append(json.dumps(dict(key=key, kind=kind, arm="main", seconds=s, threads=1,
                                     finished=f"2026-01-01T00:{t // 60:02d}:{t % 60:02d}")))
    (root / "timings.jsonl").write_text("\n".join(lines) + "\n")
    pre = root / "pretrain" / "abc"
    pre.mkdir(parents=True)
    (pre / "meta.json").write_text(json.dumps({"elapsed_s": 80.0, "tokens": 8000}))
    br = root / "branch" / "rl" / "ckpt-1" / "s0-h"
    br.mkdir(parents=True)
    (br / "meta.json").write_text("{}")
    # per-step increments 2, 2, 5 (with a quick validation), 2: validation = 5 - median(2, 2, 2) = 3 s
    steps = [dict(step=1, elapsed_s=2.0), dict(step=2, elapsed_s=4.0), {"step": 3, "elapsed_s": 9.0, "val_pass@1": 0.1},
             dict(step=4, elapsed_s=11.0)]
    (br / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in steps))
    return root


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """Every benchmark once in --quick mode, in this process; returns {name: its results JSON}."""
    out = tmp_path_factory.mktemp("bench")
    study = fake_study(out / "study")
    rc = run_all.main(["--quick", "--out-dir", str(out), "--study", str(study)])
    results = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert rc == 0, results.get("run_all", {}).get("benchmarks")
    return results


def test_every_benchmark_writes_results_with_the_machine(quick):
    assert set(run_all.BENCHMARKS) | {"run_all"} <= set(quick)
    m = quick["grpo"]["machine"]
    assert m["cores"] >= 1 and m["torch_threads"] == 1 and m["torch"] and m["cpu"]
    assert quick["run_all"]["failed"] == []


def test_grpo_completions_have_exactly_max_new_tokens(quick):
    r = quick["grpo"]
    assert r["checks"]["all_completions_exactly_new_tokens_and_fp32"] is True
    assert r["checks"]["rlearly_completion_length_mean"] == [8.0, 8.0]  # warm-up + 1 repeat, --new 8
    assert 0.0 < r["checks"]["rlearly_reward_mean"] < 1.0  # parity reward: mixed, so advantages are nonzero
    e = r["engines"]["rlearly RLRecipe.step"]
    assert 0 < e["rollout_median_s"] <= e["median_s"]
    if not HAVE_TRL:
        assert r["ratio_trl_over_rlearly"] is None and "trl is not installed" in r["notes"][0]


def test_pretrain_reports_mfu_for_every_shape(quick):
    (shape,) = quick["pretrain"]["shapes"]
    assert (shape["batch_size"], shape["seq_len"], shape["tokens_per_step"]) == (2, 64, 128)
    for e in shape["engines"].values():
        assert set(e["mfu"]) == {"6N_nonemb", "6N_all", "6N_nonemb+attn"}
        assert 0 < e["mfu"]["6N_nonemb"] < e["mfu"]["6N_nonemb+attn"]
    assert shape["ratio_plain_over_rlearly"] > 0 and quick["pretrain"]["matmul_peak"]["gflops"] > 0


def test_each_stage_reports_its_share_of_the_fp32_floor(quick):
    """The three fractions of issue 38: the pretraining step (MFU with attention), the GRPO update and rollouts, and
    evaluation sampling, each the least work at the measured fp32 matmul peak over the measured time."""
    heads = quick["run_all"]["benchmarks"]
    (pre,) = heads["pretrain"]["headline"].values()
    grpo = quick["grpo"]["engines"]["rlearly RLRecipe.step"]["fraction_of_fp32_floor"]
    assert 0 < pre["of_the_fp32_floor"] and 0 < grpo["update"] and 0 < grpo["rollout"] and 0 < grpo["step"]
    assert heads["grpo"]["headline"]["update of the fp32 floor"] == grpo["update"]
    f = quick["grpo"]["floor"]
    assert f["rollout_floor_s"] + f["update_floor_s"] == pytest.approx(f["floor_s"], rel=0.05)  # medians of parts
    ours = quick["sampling"]["rows"][0]
    assert ours["engine"].startswith("rlearly") and 0 < ours["fraction_of_fp32_floor"]
    assert heads["sampling"]["headline"]["eval: of the fp32 floor"] > 0
    from rlearly.machine import fast_cpu_bf16

    if fast_cpu_bf16():  # and each in bf16 beside fp32, still against the fp32 floor
        assert heads["sampling"]["headline"]["eval: bf16: of the fp32 floor"] > 0
        assert pre["bf16: of the fp32 floor"] > 0
        assert heads["grpo_bf16"]["headline"]["bf16: update of the fp32 floor"] > 0
        assert quick["grpo_bf16"]["settings"]["dtype"] == "bf16"


def test_shared_machine_slowdown_is_measured_both_ways(quick):
    """bench_shared: the step beside one busy process with every usable CPU as threads and with free_cpus()."""
    r = quick["shared"]
    assert r["quiet"]["median_s"] > 0 and r["machine"]["cpu"]
    assert 1 <= r["free_cpus"]["threads"] <= r["all_cpus"]["threads"] == r["settings"]["usable_cpus"]
    assert r["all_cpus"]["slowdown"] > 0 and r["free_cpus"]["slowdown"] > 0
    assert quick["run_all"]["benchmarks"]["shared"]["headline"]["slowdown beside a busy process, free_cpus()"] == \
        r["free_cpus"]["slowdown"]


def test_flops_per_token_counts():
    from rlearly.config import ModelConfig
    from rlearly.lm.model import LlamaLM

    model = LlamaLM(ModelConfig(n_layer=2, n_head=4, n_kv_head=2, n_embd=32, ffn_hidden=64), vocab_size=400)
    # vocab 400: per layer q 32*32 + k 32*16 + v 32*16 + o 32*32 = 3072, MLP 3*32*64
    # = 6144, norms 64 -> 9280; 2 layers + final norm 32 + LM head 12800 = 31392 without the embedding
    # (12800): 6N_nonemb = 188352, 6N_all = 6*44192 = 265152; attention 12*2 layers*64 tokens*32 = 49152
    f = bench_pretrain.flops_per_token(model, seq_len=64)
    assert f == {"6N_nonemb": 188352, "6N_all": 265152, "6N_nonemb+attn": 188352 + 49152}


def test_compute_floor_counts_and_bounds_the_ratio(quick):
    """benchlib.forward_flops by hand, and the GRPO and SFT benchmarks' floors: the step's FLOPs at the
    measured matmul peak, and the largest ratio over the baseline that any engine could show."""
    from rlearly.config import ModelConfig
    from rlearly.lm.model import LlamaLM

    model = LlamaLM(ModelConfig(n_layer=2, n_head=4, n_kv_head=2, n_embd=32, ffn_hidden=64), vocab_size=400)
    # layer matrices 3072 + 6144 = 9216 per layer, 18432 in all; 3 tokens at positions 2, 3, 4 see 3 + 4 + 5 = 12
    # keys: 4 * 2 layers * 32 * 12 = 3072; the head on 1 token: 2 * 12800
    assert bench_study.benchlib.forward_flops(model, 3, start=2, head=1) == 2 * 18432 * 3 + 3072 + 2 * 12800
    assert bench_study.benchlib.forward_flops(model, 1) == 2 * 18432 + 4 * 2 * 32
    for name in ("grpo", "sft"):
        f = quick[name]["floor"]
        assert f["gflop"] > 0 and f["floor_s"] == pytest.approx(f["gflop"] / f["peak_gflops"])
        baseline = next((e["median_s"] for k, e in quick[name]["engines"].items() if k.startswith("TRL")), None)
        assert f["max_ratio"] == (pytest.approx(baseline / f["floor_s"]) if baseline else None)
        rlearly = next(e["median_s"] for k, e in quick[name]["engines"].items() if k.startswith("rlearly"))
        assert f["floor_s"] < rlearly  # no step beats its own floor


def test_study_breakdown_shares_and_inside_estimates(quick):
    r = quick["study"]
    assert r["node_seconds"] == 200 and r["wall_seconds"] == 200 and r["parallelism"] == 1.0
    assert {k: v["share"] for k, v in r["groups"].items()} == {"recipe": 0.35, "pretraining": 0.5, "evaluation": 0.15}
    assert r["stages"]["evaluation test (base checkpoints)"]["node_s"] == 10
    assert r["inside"]["pretraining"]["abc"] == {"train_steps_s": 80.0, "tokens": 8000, "tok_per_s": 100.0}
    assert r["inside"]["branches"]["rl"]["validation_s"] == pytest.approx(3.0)
    assert any("notebooks" in m for m in r["missing"])


def test_study_breakdown_reads_notebook_times_and_the_grpo_split(tmp_path):
    """`rlearly study report` logs each notebook's seconds, GRPO steps their rollout and update seconds: the
    breakdown counts the notebooks as a stage (not as nodes) and splits RL's steps into the two."""
    study = fake_study(tmp_path / "study")
    br = study / "branch" / "rl" / "ckpt-1" / "s0-h" / "metrics.jsonl"
    rows = [json.loads(line) | {"rollout_s": 1.5, "update_s": 0.5} for line in br.read_text().splitlines()]
    br.write_text("".join(json.dumps(r) + "\n" for r in rows))
    nb = tmp_path / "notebooks"
    nb.mkdir()
    (nb / "timings.jsonl").write_text("".join(json.dumps(dict(key=f"notebook {n}", kind="notebook", arm="-",
                                                             seconds=s, finished="2026-01-01T01:00:00")) + "\n"
                                              for n, s in (("summary", 10), ("pretrain", 30), ("summary", 20))))
    r = bench_study.main(["--study", str(study), "--notebooks", str(nb), "--out", str(tmp_path / "r.json")])
    assert r["nodes"] == 5 and r["node_seconds"] == 200 and r["parallelism"] == 1.0  # nodes only
    assert r["notebook_seconds"] == 50  # the last row per notebook: summary 20 + pretrain 30
    assert r["groups"]["notebook"] == {"nodes": 2, "node_s": 50, "share": 50 / 250}
    rl = r["inside"]["branches"]["rl"]
    assert (rl["rollout_s"], rl["update_s"]) == (6.0, 2.0)  # 4 steps
    assert not any(m.startswith("notebooks") for m in r["missing"])
    as_file = bench_study.main(["--study", str(study), "--notebooks", str(nb / "timings.jsonl"),
                                "--out", str(tmp_path / "r2.json")])
    assert as_file["notebook_seconds"] == 50  # the timings file itself works as well as its folder
    with pytest.raises(SystemExit, match="bench_study: no notebook timings at .*nowhere"):
        bench_study.main(["--study", str(study), "--notebooks", str(tmp_path / "nowhere")])


@pytest.mark.skipif(not HAVE_TRL, reason=NEED_TRL)
def test_trl_baselines_do_the_same_work(quick):
    g = quick["grpo"]["checks"]
    assert g["trl_model_fp32"] and not g["trl_bf16"] and not g["trl_fp16"]
    assert g["trl_completion_lengths"] == [8] and g["trl_same_prompts_per_step"] and g["trl_prompt_ids_equal"]
    assert not g["trl_activation_checkpointing"]
    s = quick["sft"]["checks"]
    assert s["trl_model_fp32"] and s["same_real_tokens_per_step"] and s["same_scored_tokens_per_step"]
    assert quick["grpo"]["ratio_trl_over_rlearly"] > 0 and quick["sft"]["ratio_trl_over_rlearly"] > 0


def test_without_trl_the_baselines_are_skipped_with_a_reason(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "trl", None)  # as in CI, which installs only .[dev]
    assert run_all.main(["--quick", "--only", "grpo,sft", "--out-dir", str(tmp_path)]) == 0
    for name, engine in (("grpo", "rlearly RLRecipe.step"), ("sft", "rlearly SFTRecipe.step")):
        r = json.loads((tmp_path / f"{name}.json").read_text())
        assert list(r["engines"]) == [engine] and r["ratio_trl_over_rlearly"] is None
        assert "trl is not installed" in r["notes"][0] and "pip install -e '.[bench]'" in r["notes"][0]


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the answer of a machine without a GPU")
def test_gpu_check_without_a_gpu_says_so_in_one_line_and_exits_2():
    import subprocess

    r = subprocess.run([sys.executable, str(BENCH / "gpu_check.py")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "sees no CUDA device" in r.stderr and "--dry-run" in r.stderr


def test_static_decode_step_samples_what_the_sampler_samples():
    """bench_static_decode's design (no compaction, a masked room, token picking without a data-dependent branch)
    draws in fp32 exactly the tokens rlearly's sampler draws; its wide-nucleus path (a torch.cond) included."""
    import bench_static_decode as sd
    import torch

    from rlearly.sampling.torch_engine import generate, pick_tokens

    logits = torch.randn(6, 300) * 4
    logits[:2] = torch.randn(2, 300) * 0.01  # nearly flat: top-p 0.95 needs far more than the 64 candidates
    u = torch.rand(6)
    for top_p in (0.95, 0.5):
        assert torch.equal(sd.pick_static(logits, u, 0.7, top_p), pick_tokens(logits, u, 0.7, top_p))
    cfg, _, model = sd.benchlib.build("tiny")
    prompts = [[5, 6, 7, 8], [9, 10, 11], [12, 13, 14, 15, 16]]
    stops = tuple(range(3, model.vocab_size, 7))  # one token in 7 ends a sample: lengths differ
    kw = dict(n=3, max_new_tokens=12, temperature=0.8, top_p=0.9, stop_ids=stops, seed=3, pad_id=0)
    ref = [c.tokens for c in generate(model, prompts, **kw)]
    got = sd.generate_static(model, prompts, sd.static_step, **kw)
    assert got == ref and len({len(t) for t in ref}) > 2  # rows stopped at different steps: the room was masked
