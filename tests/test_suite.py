"""A study over a checkpoint suite (rlearly.study.suite): three tiny random OLMo-2 checkpoints written by
transformers as local revisions, each with a tokenizer built on this machine, branched by RL and SFT on a tiny
GSM8K-format file, evaluated few-shot and tabled, offline; the same spec naming a hub id fails in one line."""
import json
from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers")

from rlearly.errors import ConfigError  # noqa: E402

SPEC = """
name: suite
base:
  revisions: [revs/stage1-step10-tokens1M, revs/stage1-step20-tokens2M, revs/stage1-step30-tokens3M]
config:
  preset: tiny
  task.name: gsm8k
  task.files: [train=gsm.jsonl]
branch:
  checkpoints: all
  methods: [rl, sft]
  per_method: {sft: [2]}
  seeds: [0]
  overrides: {rl.steps: 2, sft.steps: 2, branch.eval_every: 0, rl.max_new_tokens: 12}
eval:
  task: gsm8k
  task_files: [train=gsm.jsonl, test=gsm.jsonl]
  splits: [test]
  n: 2
  ks: [1, 2]
  max_problems: 3
  base_prompt: few-shot
  shots: 1
  readiness: false
"""


def _gsm8k(path, n: int):
    rows = [{"question": f"Ava has {i} marbles and buys {i + 2} more. How many marbles does she have?",
             "answer": f"Ava has {i} + {i + 2} = {2 * i + 2} marbles.\n#### {2 * i + 2}"} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _suite(tmp_path, tok):
    import torch

    for i, name in enumerate(["stage1-step10-tokens1M", "stage1-step20-tokens2M", "stage1-step30-tokens3M"]):
        torch.manual_seed(i)
        cfg = transformers.Olmo2Config(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=48,
                                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                       max_position_embeddings=512, tie_word_embeddings=False)
        model = transformers.Olmo2ForCausalLM(cfg)
        model.save_pretrained(tmp_path / "revs" / name, safe_serialization=True)
        tok.save(tmp_path / "revs" / name, 512)
    _gsm8k(tmp_path / "gsm.jsonl", 8)
    (tmp_path / "suite.yaml").write_text(SPEC.replace("gsm.jsonl", str(tmp_path / "gsm.jsonl")))
    return tmp_path / "suite.yaml"


def test_a_suite_of_local_olmo2_revisions_is_branched_evaluated_and_tabled(tmp_path, tok):
    from rlearly import study
    from rlearly.lm.checkpoint import checkpoint_id, read_meta
    from rlearly.results import analysis, report

    spec_path = _suite(tmp_path, tok)
    spec = study.load_study(spec_path)
    nodes = study.plan(spec, tmp_path / "root")
    kinds = [n.kind for n in nodes]
    assert kinds.count("base") == 3 and kinds.count("branch") == 4 and kinds.count("eval") == 7
    src = spec.base.sources[0]
    assert src.checkpoint_id == checkpoint_id(tmp_path / "revs" / "stage1-step10-tokens1M") and src.tokens == 10**6
    assert src.identity() == f"local@-#{src.checkpoint_id}"
    branch_paths = [str(n.path) for n in nodes if n.kind == "branch"]
    assert not any(str(tmp_path / "revs") in p for p in branch_paths)  # content, not a directory, names a node
    # the branch hash holds the revision's weights: other weights, other branch names
    study.run(spec, tmp_path / "root", log=lambda *a: None)
    assert all(n.done for n in study.plan(spec, tmp_path / "root"))
    base = next(n.path for n in nodes if n.kind == "base")
    meta = read_meta(base)
    assert meta["method"] == "suite" and meta["source_id"] == src.checkpoint_id and meta["tokens"] == 10**6
    assert json.loads((base / "config.json").read_text())["architectures"] == ["Olmo2ForCausalLM"]
    ev = next(n for n in nodes if n.kind == "eval" and "base__" in n.key)
    assert ev.protocol["shots"] == 1  # recorded, not 2: another protocol than the default
    record = json.loads(ev.path.read_text())
    assert record["prompt_mode"] == "few-shot" and record["task"] == "gsm8k" and record["shots"] == 1
    study.write_tables(spec, tmp_path / "root")
    tables = analysis.load_tables(tmp_path / "root")
    passk = tables["passk"]
    assert set(passk["method"]) == {"base", "rl", "sft"}
    assert sorted(passk[passk["method"] == "base"]["parent_tokens"].unique()) == [10**6, 2 * 10**6, 3 * 10**6]
    lines = []  # and its report: what a suite has no runs for is skipped and said
    report.report(spec, tmp_path / "root", runs_dir=tmp_path / "papermill_runs", reports_dir=tmp_path / "reports",
                  names=["pretrain", "passk_curves", "readiness", "summary"], log=lines.append)
    pages = {p.stem for p in (tmp_path / "reports" / "suite").glob("*.html")}
    assert {"passk_curves", "summary"} <= pages and not {"pretrain", "readiness"} & pages
    assert "notebook pretrain: skipped (the study branches a checkpoint suite: it pretrains nothing)" in lines
    from rlearly.results import power  # the power check simulates this world's pretraining runs: refused, named
    with pytest.raises(ConfigError, match="branches a checkpoint suite: the power check simulates"):
        power.design_of(spec)


def test_a_hub_id_fails_in_one_line_offline_and_a_missing_directory_is_named(tmp_path, tok, monkeypatch):
    from rlearly import study

    spec_path = _suite(tmp_path, tok)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub = spec_path.read_text().replace("base:\n", "base:\n  model: allenai/OLMo-2-0425-1B\n").replace(
        "revs/stage1-step10-tokens1M, revs/stage1-step20-tokens2M, revs/stage1-step30-tokens3M",
        "stage1-step1000-tokens5B")
    (tmp_path / "hub.yaml").write_text(hub)
    with pytest.raises(ConfigError, match=r"base.model 'allenai/OLMo-2-0425-1B' is a hub id and HF_HUB_OFFLINE"):
        study.load_study(tmp_path / "hub.yaml")
    (tmp_path / "gone.yaml").write_text(spec_path.read_text().replace("revs/stage1-step30-tokens3M", "revs/nope"))
    with pytest.raises(ConfigError, match=r"'revs/nope' is not a checkpoint directory"):
        study.load_study(tmp_path / "gone.yaml")


def test_the_shipped_pythia_suite_fails_in_one_line_without_a_hub():
    import subprocess
    import sys
    from pathlib import Path

    from rlearly import hub

    if not hub.unreachable():
        pytest.skip("this machine reaches the hub: the spec would resolve its revisions")
    spec = Path(__file__).resolve().parents[1] / "studies" / "suite-pythia.yaml"
    r = subprocess.run([sys.executable, "-m", "rlearly.cli", "study", "status", str(spec)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "base.model 'EleutherAI/pythia-160m'" in r.stderr and "hub cannot be reached" in r.stderr


SUITES = {"olmo2": "allenai/OLMo-2-0425-1B", "pythia": "EleutherAI/pythia-160m", "qwen3": "Qwen/Qwen3-0.6B-Base",
          "smollm3": "HuggingFaceTB/SmolLM3-3B-Base"}


@pytest.mark.hub
@pytest.mark.parametrize("suite", sorted(SUITES))
def test_a_suites_real_tokenizer_reads_with_its_bos_eos_and_newlines(suite, tmp_path):
    """Each suite's own tokenizer through rlearly's Tokenizer: its EOS (and BOS where it has one) as transformers
    names them, a newline among the line-stop tokens, and text back as it went in."""
    from rlearly import hub
    from rlearly.lm.tokenizer import Tokenizer

    if hub.offline() or hub.unreachable():
        pytest.skip("needs the Hugging Face hub")
    from huggingface_hub import snapshot_download

    where = Path(snapshot_download(SUITES[suite], allow_patterns=["tokenizer*", "special_tokens_map.json"],
                                   local_dir=tmp_path / suite))
    hf = transformers.AutoTokenizer.from_pretrained(where)
    tok = Tokenizer.load(where)
    assert tok.eos_id == hf.eos_token_id
    if hf.bos_token_id is not None:
        assert tok.bos_id == hf.bos_token_id
    text = "Ava has 3 marbles.\nShe buys 4 more: 3 + 4 = 7.\n#### 7"
    assert tok.decode(tok.encode(text, bos=False)) == text
    newline = tok.encode("\n", bos=False)
    assert set(newline) & set(tok.line_stop_ids())
