"""lm-evaluation-harness on exported checkpoints (rlearly.evaluation.lmeval, `rlearly lm-eval`), against a stand-in `lm_eval`
module that records what rlearly passes to the documented `simple_evaluate` and returns results shaped as
lm-eval's: not lm-eval itself, which must download its datasets from the hub (unreachable here)."""
import json
import sys
import types

import pytest
from conftest import tiny_model

from rlearly import cli
from rlearly.errors import ConfigError, RlearlyError
from rlearly.evaluation import lmeval as L
from rlearly.lm.checkpoint import save_checkpoint

# the paper's 44B base model, per benchmark (docs/PAPER.md §1e), as lm-eval would report them
PAPER_BASE = {"lambada_openai": ("acc", 0.394), "hellaswag": ("acc_norm", 0.469), "arc_easy": ("acc_norm", 0.635),
              "arc_challenge": ("acc_norm", 0.322), "piqa": ("acc_norm", 0.685), "openbookqa": ("acc_norm", 0.330)}


def fake_lm_eval(calls):
    mod = types.ModuleType("lm_eval")
    mod.__version__ = "0.4.13"

    def simple_evaluate(**kw):
        calls.append(kw)
        res = {}
        for t in kw["tasks"]:
            metric, score = PAPER_BASE[t]
            res[t] = {"alias": t, "acc,none": score - 0.01, "acc_stderr,none": 0.01, f"{metric},none": score,
                      f"{metric}_stderr,none": "N/A" if t == "piqa" else 0.015}
        return {"results": res, "versions": {t: 1.0 for t in kw["tasks"]}, "n-samples": {t: {"effective": 1000}
                                                                                            for t in kw["tasks"]}}
    mod.simple_evaluate = simple_evaluate
    return mod


@pytest.fixture
def ckpt(tok, tmp_path):
    return save_checkpoint(tmp_path / "ckpt-0000008192", tiny_model(tok.vocab_size), tok,
                           {"method": "pretrain", "parent": None, "step": 8, "tokens": 8192, "seed": 0})


def test_harness_arguments_follow_the_papers_protocol(ckpt):
    a = L.harness_args(ckpt)
    assert a["model"] == "hf" and a["tasks"] == ["lambada_openai", "hellaswag", "arc_easy", "arc_challenge",
                                                 "piqa", "openbookqa"]
    assert (a["num_fewshot"], a["limit"], a["device"], a["log_samples"]) == (0, 1000, "cpu", False)
    assert a["model_args"] == {"pretrained": str(ckpt.resolve()), "tokenizer": str(ckpt.resolve()),
                               "dtype": "float32", "add_bos_token": True, "trust_remote_code": False}
    assert L.harness_args(ckpt, ("piqa",), limit=None, device="cuda", seed=3)["random_seed"] == 3
    with pytest.raises(ConfigError, match="unknown benchmark 'mmlu'; known: lambada, hellaswag, arc_e"):
        L.harness_args(ckpt, ("piqa", "mmlu"))


def test_lm_eval_command_writes_scores_averages_and_provenance(ckpt, tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setitem(sys.modules, "lm_eval", fake_lm_eval(calls))
    out = tmp_path / "general.json"
    assert cli.main(["lm-eval", str(ckpt), "--out", str(out), "--batch-size", "auto", "--limit", "500"]) == 0
    (kw,) = calls
    assert kw["batch_size"] == "auto" and kw["limit"] == 500 and kw["model_args"]["pretrained"] == str(ckpt.resolve())
    res = json.loads(out.read_text())
    b = res["benchmarks"]
    assert (b["lambada"]["metric"], b["lambada"]["score"]) == ("acc", 0.394)  # LAMBADA: accuracy
    assert (b["hellaswag"]["metric"], b["hellaswag"]["score"]) == ("acc_norm", 0.469)  # the rest: acc_norm
    assert b["piqa"]["stderr"] is None and b["obqa"]["stderr"] == 0.015
    # the paper's 44B base: 6-benchmark average 47.2 (its figure 5), 5 without ARC-C for figure 6
    assert res["average_6"] == pytest.approx(0.4725) and res["average_5"] == pytest.approx(0.5026)
    assert res["checkpoint_id"] and res["lineage"]["tokens"] == 8192 and "files" not in res["lineage"]
    assert res["harness"]["lm_eval_version"] == "0.4.13" and res["harness"]["arguments"]["tasks"] == kw["tasks"]
    assert res["provenance"]["version"]
    printed = capsys.readouterr().out
    assert "average_6  0.4725" in printed and f"wrote {out}" in printed


def test_lm_eval_checks_arguments_and_checkpoint_before_importing(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "lm_eval", None)
    assert cli.main(["lm-eval", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err == f"rlearly: error: checkpoint not found: {tmp_path / 'nowhere'}\n"
    assert cli.main(["lm-eval", str(tmp_path), "--benchmarks", "piqa,winogrande"]) == 2
    assert "unknown benchmark 'winogrande'" in capsys.readouterr().err


LM_EVAL_STUDY = """
name: tiny-lm-eval
config: {preset: tiny}
branch: {checkpoints: [-1], methods: [rl], overrides: {branch.eval_every: 0, rl.steps: 2}}
eval: {splits: [test], n: 2, ks: [1, 2], max_problems: 4, lm_eval: [lambada, hellaswag, arc_e, arc_c, piqa, obqa],
       lm_eval_limit: 50}
"""


def test_a_study_runs_lm_eval_on_every_checkpoint_it_evaluates(tmp_path, monkeypatch):
    """eval.lm_eval: one lm-eval node per evaluated checkpoint (base and branch), its scores and the paper's
    averages in tables/lm_eval.csv; a finished result is reused only under the same settings; without the [eval]
    extra the run stops in one line before any node."""
    from rlearly import study
    from rlearly.results import analysis

    (tmp_path / "s.yaml").write_text(LM_EVAL_STUDY)
    spec, root = study.load_study(tmp_path / "s.yaml"), tmp_path / "study"
    monkeypatch.setitem(sys.modules, "lm_eval", None)
    with pytest.raises(RlearlyError, match="study eval.lm_eval needs the \\[eval\\] extra"):
        study.run(spec, root, log=lambda *a: None)
    assert not (root / "pretrain").exists()
    calls = []
    monkeypatch.setitem(sys.modules, "lm_eval", fake_lm_eval(calls))
    study.run(spec, root, log=lambda *a: None)
    assert len(calls) == 2 and {c["limit"] for c in calls} == {50}
    table = analysis.load_tables(root)["lm_eval"]
    assert sorted(table["method"].unique()) == ["base", "rl"]
    avg = table[table["benchmark"] == "average_6"].set_index("method")["score"]
    assert avg["rl"] == pytest.approx(sum(s for _, s in PAPER_BASE.values()) / 6)
    assert not [n for n in study.plan(spec, root) if not n.done]  # all reused
    again = study.load_study(tmp_path / "s.yaml")
    again.eval.lm_eval_limit = 100  # other settings: both results are stale
    assert sorted(n.kind for n in study.plan(again, root) if not n.done) == ["lm_eval", "lm_eval"]
    with pytest.raises(ConfigError, match="study eval.lm_eval: unknown benchmark 'mmlu'"):
        study.EvalPlan(lm_eval=["mmlu"])
