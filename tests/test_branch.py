"""Every post-training recipe on the tiny preset: lineage, parameters move, losses finite, exact resume."""
import json
import math

import numpy as np
import pytest
import torch

from rlearly.config import load_config
from rlearly.errors import ConfigError
from rlearly.files import read_metrics
from rlearly.lm.checkpoint import load_checkpoint, read_meta
from rlearly.lm.losses import group_advantages
from rlearly.tasks import SyntheticTask, check_task_config, get_task
from rlearly.train import RECIPES, Recipe, branch, register
from rlearly.train.mix import CombinedRecipe, ParallelRecipe, interleave_schedule
from rlearly.train.rl import RLRecipe
from rlearly.train.sft import SFTRecipe, collate


def test_collate_masks_only_response_targets():
    x, y, mask = collate([([1, 5, 6], [7, 8, 2]), ([1, 9], [2])], pad_id=0)
    # row 0: seq 1 5 6 7 8 2 -> targets 5 6 7 8 2, response targets are 7 8 2 (positions 2..4)
    assert x.tolist() == [[1, 5, 6, 7, 8], [1, 9, 2, 0, 0]]
    assert y.tolist() == [[5, 6, 7, 8, 2], [9, 2, 0, 0, 0]]
    assert mask.tolist() == [[0, 0, 1, 1, 1], [0, 1, 0, 0, 0]]


def test_interleave_schedule_alternates_blocks():
    assert interleave_schedule(3, 5, 2) == [("sft", 0), ("sft", 1), ("rl", 0), ("rl", 1), ("sft", 2),
                                            ("rl", 2), ("rl", 3), ("rl", 4)]


def test_grpo_loss_with_shared_prompts_equals_the_per_sequence_loss(tiny_ckpt):
    """The GRPO loss runs each prompt once for its G rollouts and skips padding; its value and gradients
    equal scoring every prompt + completion on its own (the textbook computation)."""
    cfg = load_config(tiny_ckpt / "config.yaml", ["rl.kl_coef=0.1", "rl.mini_batches=2", "rl.epochs=2"])
    model, tok, _ = load_checkpoint(tiny_ckpt)
    recipe = RLRecipe(cfg, model, tok, get_task("synthetic", world=cfg.world))
    with torch.no_grad():  # move the policy off the KL reference so the KL term has a gradient
        for p in model.parameters():
            p.add_(1e-2 * torch.randn_like(p))
    ro, adv, _ = recipe.collect(0)
    adv = torch.randn(len(adv), generator=torch.Generator().manual_seed(0))
    G = cfg.rl.group_size
    batches = recipe.minibatches(0, len(adv))
    assert len(batches) == 4 and all(len(b) == len(adv) // 2 for b in batches)
    assert sorted(batches[0].tolist() + batches[1].tolist()) == list(range(len(adv)))
    assert all((b.reshape(-1, G) % G == range(G)).all() for b in batches)  # whole groups, rows in order
    rows = torch.from_numpy(batches[0])
    loss, _ = recipe.loss(ro, adv, rows)
    loss.backward()
    fast = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()

    def per_sequence_logprobs(m):  # log pi of each completion token, from the full unpadded sequence
        lp = torch.zeros(len(rows), ro.mask.size(1))
        for i, r in enumerate(rows.tolist()):
            g, n = r // G, int(ro.lengths[r])
            prompt = ro.prefix[g][ro.prefix_real[g]].tolist() + [int(ro.x[r, 0])]
            seq = torch.tensor(prompt + ro.y[r, :n].tolist())[None]
            lp[i, :n] = -m(seq[:, :-1], seq[:, 1:], reduction="none")[0, -n:]
        return lp

    from rlearly.lm.losses import grpo_loss
    with torch.no_grad():
        ref_lp = per_sequence_logprobs(recipe.ref)
    rc = cfg.rl
    slow, _ = grpo_loss(per_sequence_logprobs(model), ro.old_logprobs[rows], adv[rows], ro.mask[rows], ref_lp,
                        rc.kl_coef, clip_low=rc.clip_low, clip_high=rc.clip_high, dual_clip=rc.dual_clip,
                        kl_estimator=rc.kl_estimator, agg=rc.loss_agg, max_len=rc.max_new_tokens)
    slow.backward()
    assert abs(float(loss.detach()) - float(slow.detach())) < 1e-5 and abs(float(slow.detach())) > 1e-3
    for a, p in zip(fast, model.parameters()):
        assert torch.allclose(a, p.grad, atol=1e-5)
    with pytest.raises(ValueError, match="whole groups"):
        recipe.loss(ro, adv, rows[1:])


@pytest.mark.parametrize("method", ["sft", "sft_gold", "rl", "parallel", "combined", "interleaved", "sft_rl"])
def test_every_recipe_moves_every_parameter(method, tiny_ckpt, tmp_path, monkeypatch):
    # the tiny model never solves a problem, so every GRPO group would have zero reward variance and zero
    # gradient; a reward on the parity of the completion length gives mixed groups and exercises the update
    monkeypatch.setattr(SyntheticTask, "reward", lambda self, text, problem: float(len(text) % 2))
    cfg = load_config(tiny_ckpt / "config.yaml", ["rl.lr=1e-2", "sft.lr=1e-2"])
    out = branch.run(cfg, tiny_ckpt, tmp_path / method, method, show_progress=False)
    assert (out / "DONE").exists()
    start, _, _ = load_checkpoint(tiny_ckpt)
    final, _, meta = load_checkpoint(out / "final")
    for (name, a), (_, b) in zip(start.named_parameters(), final.named_parameters()):
        assert not torch.equal(a, b), f"{method} left {name} unchanged"
    assert meta["method"] == method and meta["config_hash"] == cfg.hash()
    expected_parent = out / "sft" / "final" if method == "sft_rl" else tiny_ckpt
    assert meta["parent"] == str(expected_parent)
    assert meta["parent_id"] == read_meta(expected_parent)["files"]["model.safetensors"]["sha256"][:16]
    rows = read_metrics(out / "metrics.jsonl")
    n_steps = cfg.rl.steps if method == "sft_rl" else branch.total_steps(method, cfg)
    assert [r["step"] for r in rows] == list(range(1, n_steps + 1))
    losses = [v for r in rows for k, v in r.items() if k.endswith("loss")]
    assert losses and all(math.isfinite(v) for v in losses)
    assert "val_pass@1" in rows[-1] and 0.0 <= rows[-1]["val_pass@1"] <= 1.0
    if method in ("rl", "parallel", "combined", "sft_rl"):
        assert all(0.0 <= r["reward_mean"] <= 1.0 and 0.0 <= r["frac_zero_std"] <= 1.0 for r in rows)


def test_sft_gold_trains_on_all_demos_and_sft_on_one(tiny_ckpt):
    cfg = load_config(tiny_ckpt / "config.yaml")
    model, tok, _ = load_checkpoint(tiny_ckpt)
    task = get_task("synthetic", world=cfg.world)
    problems = task.problems("train")
    one = SFTRecipe(cfg, model, tok, task, all_demos=False)
    gold = SFTRecipe(cfg, model, tok, task, all_demos=True)
    assert len(one.examples) == len(problems)
    assert len(gold.examples) == sum(len(p.solutions) for p in problems) > 3 * len(problems)


def test_parallel_is_the_average_of_two_steps_from_one_snapshot(tiny_ckpt):
    cfg = load_config(tiny_ckpt / "config.yaml", ["rl.lr=1e-2", "sft.lr=3e-3"])
    task = get_task("synthetic", world=cfg.world)
    model, tok, _ = load_checkpoint(tiny_ckpt)
    par = ParallelRecipe(cfg, model, tok, task)
    par.step(0)
    # the same two steps taken separately from the same start, each with a fresh optimizer
    m_rl, _, _ = load_checkpoint(tiny_ckpt)
    RLRecipe(cfg, m_rl, tok, task).step(0)
    m_sft, _, _ = load_checkpoint(tiny_ckpt)
    SFTRecipe(cfg, m_sft, tok, task, all_demos=False).step(0)
    for p, a, b in zip(model.parameters(), m_rl.parameters(), m_sft.parameters()):
        assert torch.allclose(p, 0.5 * (a + b), atol=1e-6)
    # two optimizers, each with its own Adam moments: the RL and SFT gradients differ, so do the moments
    rl_state = par.rl.opt.state[next(iter(model.parameters()))]
    sft_state = par.sft.opt.state[next(iter(model.parameters()))]
    assert par.rl.opt is not par.sft.opt
    assert not torch.equal(rl_state["exp_avg"], sft_state["exp_avg"])


def test_killed_rl_branch_resumes_to_identical_weights(tiny_ckpt, tmp_path):
    cfg = load_config(tiny_ckpt / "config.yaml", ["rl.steps=4", "branch.save_every=2", "rl.lr=1e-2"])
    full = branch.run(cfg, tiny_ckpt, tmp_path / "full", "rl", show_progress=False)
    part = tmp_path / "part"
    branch.run(cfg, tiny_ckpt, part, "rl", show_progress=False, stop_after=3)  # dies after step 3
    assert not (part / "DONE").exists() and (part / "state").exists()
    branch.run(cfg, tiny_ckpt, part, "rl", show_progress=False)
    a, _, _ = load_checkpoint(full / "final")
    b, _, _ = load_checkpoint(part / "final")
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), k
    assert [r["step"] for r in read_metrics(part / "metrics.jsonl")] == [1, 2, 3, 4]
    assert json.loads((part / "meta.json").read_text())["steps"] == 4


def test_sft_epochs_set_the_steps_of_sft_gold_and_parallel(tiny_ckpt, tmp_path):
    """sft.epochs: SFT and SFT-Gold train that many passes over their own demonstrations (so SFT-Gold, with
    more demos, trains more steps), and parallel averaging at least as many steps as SFT."""
    cfg = load_config(tiny_ckpt / "config.yaml", ["sft.epochs=2", "sft.batch_size=8", "rl.steps=3"])
    assert branch.total_steps("sft", cfg, 64) == 16 and branch.total_steps("sft_gold", cfg, 300) == 75
    assert branch.total_steps("parallel", cfg, 64) == 16 and branch.total_steps("rl", cfg, 0) == 3
    # parallel averaging is not stopped for a plateau before its SFT half has seen SFT's epochs
    assert branch.min_steps("parallel", cfg, 64) == 16 and branch.min_steps("sft", cfg, 64) == 0
    assert branch.total_steps("sft", load_config(tiny_ckpt / "config.yaml"), 64) == cfg.sft.steps  # epochs 0
    out = branch.run(load_config(tiny_ckpt / "config.yaml", ["sft.epochs=0.25", "sft.batch_size=8"]), tiny_ckpt,
                     tmp_path / "sft", "sft", show_progress=False)
    task = get_task("synthetic", world=cfg.world)
    n = len(task.training_problems("train"))  # one demonstration each
    assert json.loads((out / "meta.json").read_text())["steps"] == math.ceil(0.25 * n / 8)


def test_plateau_rule_by_hand():
    # best before the last 2 is 0.30; the last two (0.29, 0.31) do not beat it by more than 0.02: plateau
    assert branch.plateaued([0.10, 0.30, 0.29, 0.31], patience=2, min_delta=0.02)
    # the last two (0.22, 0.26) against the best before them (0.20): 0.26 rises by 0.06 > 0.02, still rising
    assert not branch.plateaued([0.10, 0.20, 0.22, 0.26], patience=2, min_delta=0.02)
    assert not branch.plateaued([0.3, 0.3], patience=2, min_delta=0.0)  # too few validations to judge


def test_branch_stops_once_validation_plateaus_and_resumes_to_the_same_stop(tiny_ckpt, tmp_path):
    """The tiny model never solves a dev problem, so validation pass@1 stays 0: with patience 2 the SFT branch
    stops after its third validation (step 3 of 10), and a run killed at step 2 resumes to the same weights."""
    cfg = load_config(tiny_ckpt / "config.yaml", ["sft.steps=10", "branch.eval_every=1", "branch.patience=2",
                                                  "branch.save_every=1", "sft.lr=1e-2"])
    full = branch.run(cfg, tiny_ckpt, tmp_path / "full", "sft", show_progress=False)
    meta = json.loads((full / "meta.json").read_text())
    assert meta["steps"] == 3 and meta["stopped"] == "plateau" and (full / "DONE").exists()
    assert [r["step"] for r in read_metrics(full / "metrics.jsonl")] == [1, 2, 3]
    part = tmp_path / "part"
    branch.run(cfg, tiny_ckpt, part, "sft", show_progress=False, stop_after=2)
    assert not (part / "DONE").exists()
    branch.run(cfg, tiny_ckpt, part, "sft", show_progress=False)
    a, _, _ = load_checkpoint(full / "final")
    b, _, _ = load_checkpoint(part / "final")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert json.loads((part / "meta.json").read_text())["steps"] == 3


def test_unknown_method_is_refused(tiny_ckpt, tmp_path):
    with pytest.raises(ConfigError, match="unknown method 'dpo'; known: rl, sft, sft_gold"):
        branch.run(load_config(preset="tiny"), tiny_ckpt, tmp_path / "x", "dpo")


def test_cli_branch_runs_and_refuses_bad_input(tiny_ckpt, tmp_path):
    import subprocess
    import sys

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "rlearly.cli", "branch", *args], capture_output=True, text=True)

    out = tmp_path / "b"
    r = cli(str(tiny_ckpt), "--method", "sft", "--out", str(out), "--no-progress", "sft.steps=2", "branch.eval_every=0")
    assert r.returncode == 0, r.stderr
    assert f"done: {out}" in r.stdout and (out / "final" / "meta.json").exists()
    bad = cli(str(tiny_ckpt), "--method", "ppo")
    assert bad.returncode == 2 and "unknown method 'ppo'" in bad.stderr and bad.stderr.count("\n") == 1
    missing = cli(str(tmp_path / "nope"), "--method", "rl")
    assert missing.returncode == 2 and "checkpoint not found" in missing.stderr
    typo = cli(str(tiny_ckpt), "--method", "rl", "rl.stepz=3")
    assert typo.returncode == 2 and "unknown config key 'rl.stepz'" in typo.stderr


def test_filter_groups_drops_groups_without_signal_and_rescales_the_token_mean(tiny_ckpt):
    """rl.filter_groups: mini-batches hold only groups whose rewards differ; the loss on them is the whole
    batch's token-mean loss scaled by (all tokens / their tokens), since the other groups' advantages are 0."""
    cfg = load_config(tiny_ckpt / "config.yaml", ["rl.filter_groups=true", "rl.mini_batches=2"])
    model, tok, _ = load_checkpoint(tiny_ckpt)
    recipe = RLRecipe(cfg, model, tok, get_task("synthetic", world=cfg.world))
    ro, _, _ = recipe.collect(0)
    G, n_groups = cfg.rl.group_size, cfg.rl.prompts_per_step
    rewards = torch.zeros(n_groups, G)
    rewards[1, 0] = rewards[3, 1:] = 1.0  # groups 1 and 3 have a signal, 0 and 2 none (all 0 / all 1)
    rewards[2] = 1.0
    adv, _ = group_advantages(rewards.reshape(-1), G)
    keep = recipe.signal_groups(adv)
    assert keep.tolist() == [False, True, False, True]
    batches = recipe.minibatches(0, len(adv), keep)
    assert len(batches) == 2 and sorted(np.concatenate(batches).tolist()) == list(range(G, 2 * G)) + list(range(3 * G, 4 * G))
    assert recipe.minibatches(0, len(adv), np.zeros(n_groups, bool)) == []  # no signal: no update
    kept = torch.from_numpy(np.sort(np.concatenate(batches)))
    everything = torch.arange(len(adv))
    with torch.no_grad():
        l_kept, _ = recipe.loss(ro, adv, kept)
        l_all, _ = recipe.loss(ro, adv, everything)
    ratio = float(ro.mask.sum() / ro.mask[kept].sum())
    assert abs(float(l_kept) - ratio * float(l_all)) < 1e-6 and abs(float(l_all)) > 1e-4
    assert load_config(tiny_ckpt / "config.yaml").rl.filter_groups is False  # off by default (the paper's GRPO)
    with pytest.raises(ConfigError, match="filter_groups does not apply to the combined recipe"):
        CombinedRecipe(cfg, model, tok, get_task("synthetic", world=cfg.world))  # its SFT term has no groups


def test_format_score_credits_wrong_answers_in_the_graded_format(tiny_ckpt):
    """rl.format_score: a wrong answer the task can extract (a boxed integer) scores format_score, a right
    one 1, anything else 0; correct_mean logs the task's own score beside reward_mean."""
    cfg = load_config(tiny_ckpt / "config.yaml", ["rl.format_score=0.1"])
    model, tok, _ = load_checkpoint(tiny_ckpt)
    task = get_task("synthetic", world=cfg.world)
    task.reward = lambda text, p: float(len(text) % 3 == 0)  # stand-ins that a tiny model's text hits often
    task.extract = lambda text: 7 if len(text) % 2 else None
    ro, _, stats = RLRecipe(cfg, model, tok, task).collect(0)
    texts = [tok.decode(y[m.bool()].tolist()) for y, m in zip(ro.y, ro.mask)]
    want = [1.0 if len(t) % 3 == 0 else 0.1 if len(t) % 2 else 0.0 for t in texts]
    assert ro.rewards.tolist() == pytest.approx(want) and {1.0, 0.1, 0.0} <= set(round(w, 6) for w in want)
    assert stats["correct_mean"] == pytest.approx(np.mean([w == 1.0 for w in want]))
    assert stats["reward_mean"] == pytest.approx(np.mean(want))
    _, _, plain = RLRecipe(load_config(tiny_ckpt / "config.yaml"), model, tok, task).collect(0)
    assert "correct_mean" not in plain  # off by default (the paper's binary reward)
    with pytest.raises(ConfigError, match=r"rl.format_score=1.0 must lie in \[0, 1\)"):
        load_config(tiny_ckpt / "config.yaml", ["rl.format_score=1.0"])


def test_sft_demo_merge_trains_on_the_teacher_demonstrations(tiny_ckpt):
    """sft.demo_merge > 0: SFT's examples are the teacher's re-told solutions (one per problem for sft, all
    for sft_gold), picked as one_demo picks; tasks with fixed demonstrations refuse it."""
    from rlearly.data.math_world import teacher_solutions
    from rlearly.seeds import world_seed
    cfg = load_config(tiny_ckpt / "config.yaml", ["sft.demo_merge=1.0"])
    model, tok, _ = load_checkpoint(tiny_ckpt)
    task = get_task("synthetic", world=cfg.world)
    problems = task.problems("train")
    one = SFTRecipe(cfg, model, tok, task, all_demos=False).examples
    sols = [teacher_solutions(p.raw.spec, cfg.world.max_solutions, 1.0) for p in problems]
    want = [s[world_seed("demo", p.id) % len(s)] for p, s in zip(problems, sols)]
    assert [tok.decode(r[:-1]) for _, r in one] == want
    assert want != [p.demo for p in problems]  # folded steps: not the world's own demonstrations
    gold = SFTRecipe(cfg, model, tok, task, all_demos=True).examples
    assert len(gold) == sum(map(len, sols))
    plain = SFTRecipe(load_config(tiny_ckpt / "config.yaml"), model, tok, task, all_demos=False).examples
    assert [tok.decode(r[:-1]) for _, r in plain] == [p.demo for p in problems]
    with pytest.raises(ConfigError, match="sft.demo_merge=0.5 needs the synthetic task"):
        super(SyntheticTask, task).teacher_demos(problems, 0.5)


def test_no_training_or_validation_path_reads_test_or_hard(tmp_path, monkeypatch):
    """Only a frozen study's final evaluation reads test and hard: pretraining (its held-out loss and greedy
    checks), every recipe's training data and its validation pass@k run with those splits made unreadable."""
    from rlearly.data import math_world as mw
    from rlearly.train import pretrain

    real = mw.MathWorld.split

    def guarded(self, name):
        if name in mw.EVAL_SPLITS:
            raise AssertionError(f"a training or validation path read the {name!r} split")
        return real(self, name)

    monkeypatch.setattr(mw.MathWorld, "split", guarded)
    cfg = load_config(preset="tiny", overrides={"pretrain.tokens": 4096, "pretrain.n_checkpoints": 1,
                                                "pretrain.first_checkpoint_tokens": 4096, "rl.steps": 2, "sft.steps": 2,
                                                "branch.eval_every": 1, "branch.save_every": 1})
    run = pretrain.run(cfg, tmp_path / "pre", show_progress=False)
    ckpt = pretrain.list_checkpoints(run)[-1]
    rows = read_metrics(run / "metrics.jsonl")
    assert any("greedy_0shot_graded" in r for r in rows) and any("heldout_math" in r for r in rows)
    for method in RECIPES:
        out = branch.run(cfg, ckpt, tmp_path / method, method, show_progress=False)
        assert (out / "DONE").exists() and any("val_pass@1" in r for r in read_metrics(out / "metrics.jsonl"))
    with pytest.raises(ConfigError, match="split 'test' is held out"):
        branch.run(load_config(preset="tiny", overrides={"rl.split": "test"}), ckpt, tmp_path / "bad", "rl",
                   show_progress=False)


def test_rl_without_signal_is_counted_by_hand():
    """Warned about: RL in which no step had a group with differing rewards learnt nothing."""
    assert branch.rl_without_signal([{"frac_zero_std": 1.0}, {"frac_zero_std": 1.0}]) == 2
    assert branch.rl_without_signal([{"frac_zero_std": 1.0}, {"frac_zero_std": 0.75}]) == 0
    assert branch.rl_without_signal([{"sft_loss": 1.0}]) == 0  # no RL: nothing to warn about


def test_an_rl_branch_that_learnt_nothing_says_so(tiny_ckpt, tmp_path, capsys):
    """The tiny checkpoint solves nothing: every group's reward is 0, and the branch warns (once it is done)."""
    branch.run(load_config(tiny_ckpt / "config.yaml", ["rl.steps=2", "branch.eval_every=0"]), tiny_ckpt,
               tmp_path / "rl", "rl", show_progress=False)
    err = capsys.readouterr().err
    assert "in all 2 RL steps every group's rollouts got the same reward" in err


def _gsm8k_file(path, n: int, start: int = 0):
    rows = [{"question": f"Ava has {i} marbles and buys {i + 2} more. How many marbles does she have?",
             "answer": f"Ava has {i} + {i + 2} = <<{i}+{i + 2}={2 * i + 2}>>{2 * i + 2} marbles.\n#### {2 * i + 2}"}
            for i in range(start, start + n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_branch_trains_and_validates_on_a_real_task_named_in_its_config(tiny_ckpt, tmp_path):
    """task.name / task.files (rlearly branch --task, --data): SFT and RL on a GSM8K-format file, validated on
    its dev file; the task is part of the branch's config and hash, and the branch evaluates on the task."""
    import subprocess
    import sys

    from rlearly.evaluation import evaluate

    train, dev = _gsm8k_file(tmp_path / "train.jsonl", 24), _gsm8k_file(tmp_path / "dev.jsonl", 6, start=100)
    files = [f"train={train}", f"dev={dev}"]
    cfg = load_config(tiny_ckpt / "config.yaml", {"task.name": "gsm8k", "task.files": files, "rl.steps": 2,
                                                  "branch.eval_every": 2, "branch.eval_problems": 4})
    assert cfg.hash() != load_config(tiny_ckpt / "config.yaml", {"rl.steps": 2, "branch.eval_every": 2,
                                                                 "branch.eval_problems": 4}).hash()
    out = branch.run(cfg, tiny_ckpt, tmp_path / "rl", "rl", show_progress=False)
    rows = read_metrics(out / "metrics.jsonl")
    assert (out / "DONE").exists() and "val_pass@1" in rows[-1]
    assert load_config(out / "config.yaml").task.file_map() == {"train": str(train), "dev": str(dev)}
    res = evaluate.evaluate_passk(out / "final", get_task("gsm8k", files={"test": str(dev)}), "test", 2, [1, 2], 0,
                                  tmp_path / "samples", progress=False)
    assert res["task"] == "gsm8k" and res["n_problems"] == 6

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "rlearly.cli", "branch", str(tiny_ckpt), "--method", "sft",
                               "--no-progress", "sft.steps=2", *args], capture_output=True, text=True)
    r = cli("--task", "gsm8k", "--data", f"train={train}", "--data", f"dev={dev}", "--out",
            str(tmp_path / "sft"))
    assert r.returncode == 0, r.stderr
    assert load_config(tmp_path / "sft" / "config.yaml").task.name == "gsm8k"
    missing = cli("--task", "gsm8k", "--data", f"train={tmp_path / 'nope.jsonl'}")
    assert missing.returncode == 2 and "nope.jsonl" in missing.stderr and missing.stderr.count("\n") == 1
    assert not (tmp_path / "nope").exists()
    bad = cli("--task", "gsm8k", "--data", "train")
    assert bad.returncode == 2 and "must look like split=path" in bad.stderr
    on_test = cli("--task", "gsm8k", "--data", f"test={dev}", "sft.split=test")
    assert on_test.returncode == 2 and "held out" in on_test.stderr


@pytest.mark.parametrize("style", ["llama", "gpt2"])
def test_a_hugging_face_tokenizer_directory_branches_and_evaluates(style, tmp_path):
    """Any Hugging Face fast tokenizer: its special tokens mapped by name (Llama's <s>, </s> from
    tokenizer_config.json) or by convention (GPT-2's one <|endoftext|> as BOS, EOS and padding)."""
    from conftest import TEXTS
    from tokenizers import Tokenizer as HF
    from tokenizers import decoders, models, pre_tokenizers, trainers

    from rlearly.data.world import World
    from rlearly.evaluation import evaluate
    from rlearly.lm.checkpoint import save_checkpoint
    from rlearly.lm.model import LlamaLM
    from rlearly.lm.tokenizer import Tokenizer

    specials = ["<unk>", "<s>", "</s>"] if style == "llama" else ["<|endoftext|>"]
    hf = HF(models.BPE())
    hf.pre_tokenizer, hf.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    cfg = load_config(preset="tiny", overrides={"sft.steps": 2, "branch.eval_every": 0})
    world = World(cfg.world)
    texts = TEXTS + [world.math.prompt(p) + world.math.one_demo(p) for p in world.math.split("train")]
    hf.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=400, special_tokens=specials, show_progress=False,
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    folder = tmp_path / "hf-tokenizer"
    folder.mkdir()
    hf.save(str(folder / "tokenizer.json"))
    if style == "llama":  # the dict form transformers writes
        (folder / "tokenizer_config.json").write_text(json.dumps(
            {"bos_token": {"content": "<s>"}, "eos_token": {"content": "</s>"}, "unk_token": "<unk>"}))
    tok = Tokenizer.load(folder)
    first, end = ("<s>", "</s>") if style == "llama" else ("<|endoftext|>", "<|endoftext|>")
    assert (tok.bos_id, tok.eos_id) == (hf.token_to_id(first), hf.token_to_id(end))
    assert tok.pad_id == tok.eos_id and tok.encode("Ava has 3")[0] == tok.bos_id
    torch.manual_seed(0)
    model = LlamaLM(cfg.model, tok.vocab_size)
    ckpt = save_checkpoint(tmp_path / "base", model, tok, {"method": "pretrain", "tokens": 0, "seed": 0}, cfg)
    assert Tokenizer.load(ckpt).bos_id == tok.bos_id  # the checkpoint keeps the tokenizer's own special tokens
    out = branch.run(cfg, ckpt, tmp_path / "sft", "sft", show_progress=False)
    assert (out / "DONE").exists()
    res = evaluate.evaluate_passk(out / "final", "synthetic", "dev", 2, [1, 2], 0, tmp_path / "samples",
                                  max_problems=4, progress=False)
    assert res["n_problems"] == 4 and 0.0 <= res["passk"][-1]["pass_at_k"] <= 1.0


def test_a_multi_line_task_keeps_its_lines_and_stops_at_eos(tiny_ckpt, tmp_path):
    """task.multiline: demonstrations keep their lines, sampling stops at EOS alone within task.max_new_tokens,
    an answer ends at the first blank line, and the task's id says so; the default stays one line."""
    from rlearly.config import TaskConfig
    from rlearly.evaluation import evaluate
    from rlearly.evaluation.store import SampleStore
    from rlearly.lm.tokenizer import Tokenizer
    from rlearly.tasks import config_task

    rows = [{"question": f"Ava has {i} marbles and buys {i + 2} more. How many?",
             "answer": f"Ava starts with {i} marbles.\nShe buys {i + 2} more: {i} + {i + 2} = {2 * i + 2}.\n#### {2 * i + 2}"}
            for i in range(20)]
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows[:14]))
    test.write_text("".join(json.dumps(r) + "\n" for r in rows[14:]))
    multi = config_task(TaskConfig("gsm8k", [f"train={train}"], multiline=True, max_new_tokens=40), None)
    one = config_task(TaskConfig("gsm8k", [f"train={train}"]), None)
    p, q = multi.problems("train")[0], one.problems("train")[0]
    assert p.demo == "Ava starts with 0 marbles.\nShe buys 2 more: 0 + 2 = 2.\nThe answer is \\boxed{2}."
    assert "\n" not in q.demo and multi.reward(p.demo, p) == 1.0
    assert multi.answer_text("a\nb\n\nc") == "a\nb" and one.answer_text("a\nb\n\nc") == "a"
    tok = Tokenizer.load(tiny_ckpt)
    assert multi.stop_ids(tok) == [tok.eos_id] and tok.eos_id in one.stop_ids(tok) and len(one.stop_ids(tok)) > 1
    assert multi.task_id("train") != one.task_id("train") and multi.max_new_tokens == 40
    with pytest.raises(ConfigError, match="synthetic task"):  # the task says what its config cannot ask
        check_task_config(TaskConfig("synthetic", multiline=True))

    cfg = load_config(tiny_ckpt / "config.yaml", {"task.name": "gsm8k", "task.files": [f"train={train}"],
                                                  "task.multiline": True, "task.max_new_tokens": 40, "rl.steps": 2,
                                                  "rl.max_new_tokens": 40, "branch.eval_every": 0})
    out = branch.run(cfg, tiny_ckpt, tmp_path / "rl", "rl", show_progress=False)
    assert all(r["response_len"] <= 40 for r in read_metrics(out / "metrics.jsonl"))
    task = config_task(TaskConfig("gsm8k", [f"test={test}"], multiline=True, max_new_tokens=40), None)
    res = evaluate.evaluate_passk(out / "final", task, "test", 2, [1, 2], 0, tmp_path / "samples", progress=False)
    df = SampleStore(tmp_path / "samples").load(res["task_id"], res["checkpoint_id"], "test")
    assert len(df) == 12 and (df["tokens"] <= 40).all() and set(df["max_new_tokens"]) == {40}
    assert not df["completion"].str.contains("\n\n").any()  # stored as scored: up to the first blank line


def test_a_registered_recipe_runs_as_a_branch_and_shows_in_the_cli_and_figures(tiny_ckpt, tmp_path, monkeypatch,
                                                                               capsys):
    """Adding a recipe is one `register` call: the branch runner builds it, its optimizer warms up from the
    section it names, and the CLI and figures know it; a second recipe of the same name is refused."""
    from rlearly.cli import main
    from rlearly.results import plots

    class SFTAtRLRate(SFTRecipe):  # a made-up recipe: SFT whose learning rate comes from the rl section
        sections = {"sft": "rl"}

    monkeypatch.setitem(globals(), "SFTAtRLRate", SFTAtRLRate)  # importable as test_branch:SFTAtRLRate
    monkeypatch.setitem(RECIPES, "sft_at_rl_lr", Recipe("sft_at_rl_lr", "SFT at RL's lr", "#123456", "SFT at rl.lr",
                                                        f"{__name__}:SFTAtRLRate", (("all_demos", False),)))
    cfg = load_config(tiny_ckpt / "config.yaml", ["rl.lr=3e-4", "rl.warmup_steps=0", "sft.lr=1e-1"])
    out = branch.run(cfg, tiny_ckpt, tmp_path / "b", "sft_at_rl_lr", show_progress=False)
    assert (out / "DONE").exists() and read_meta(out / "final")["method"] == "sft_at_rl_lr"
    assert branch.total_steps("sft_at_rl_lr", cfg, 64) == cfg.sft.steps
    model, tok, _ = load_checkpoint(tiny_ckpt)
    recipe = branch.make_recipe("sft_at_rl_lr", cfg, model, tok, get_task("synthetic", world=cfg.world))
    branch._warmup(recipe, cfg, 0)
    assert recipe.opt.param_groups[0]["lr"] == 3e-4  # from the section it names, not sft.lr
    assert plots.method_color("sft_at_rl_lr") == "#123456" and plots.method_label("sft_at_rl_lr") == "SFT at RL's lr"
    assert plots.method_order()[-1] == "sft_at_rl_lr"
    with pytest.raises(SystemExit):
        main(["branch", "--help"])
    assert "sft_at_rl_lr: SFT at rl.lr" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(ValueError, match="already registered"):
        register(Recipe("rl", "RL", "#000000", "", "rlearly.train.rl:RLRecipe"))


def test_rl_without_a_signal_stops_after_no_signal_steps_and_resumes_to_the_same_stop(tiny_ckpt, tmp_path,
                                                                                     monkeypatch):
    """branch.no_signal_steps: the tiny model solves nothing, so every group's rewards are equal (a zero policy
    gradient): RL stops after that many steps, also when killed in between; RL with a signal runs all its steps."""
    cfg = load_config(tiny_ckpt / "config.yaml", ["rl.steps=5", "branch.no_signal_steps=2", "branch.eval_every=0"])
    out = branch.run(cfg, tiny_ckpt, tmp_path / "silent", "rl", show_progress=False)
    rows = read_metrics(out / "metrics.jsonl")
    assert [r["frac_zero_std"] for r in rows] == [1.0, 1.0]
    assert json.loads((out / "meta.json").read_text())["stopped"] == "no_signal"
    killed = tmp_path / "killed"
    branch.run(cfg, tiny_ckpt, killed, "rl", show_progress=False, stop_after=1)
    branch.run(cfg, tiny_ckpt, killed, "rl", show_progress=False)
    assert [r["step"] for r in read_metrics(killed / "metrics.jsonl")] == [1, 2]
    monkeypatch.setattr(SyntheticTask, "reward", lambda self, text, problem: float(len(text) % 2))  # a signal
    out = branch.run(cfg, tiny_ckpt, tmp_path / "signal", "rl", show_progress=False)
    assert len(read_metrics(out / "metrics.jsonl")) == 5
    assert json.loads((out / "meta.json").read_text())["stopped"] == "steps"
    with pytest.raises(ConfigError, match="branch.no_signal_steps must be >= 0"):
        load_config(tiny_ckpt / "config.yaml", ["branch.no_signal_steps=-1"])
