"""Notebooks and reports: every notebook executed by papermill on the tiny study, results.json checked
against the tables, HTML offline with embedded figures, the index, caching; the claims on a made-up study."""
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rlearly import study
from rlearly.errors import RlearlyError
from rlearly.results import analysis, claims, report

REPO = Path(__file__).resolve().parent.parent
QUIET = lambda *a, **k: None  # noqa: E731


# ---------------------------------------------------------------- the tiny study, executed once

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny study (pretrain, 10 branches, 12 evaluations) and its report, under a temp dir."""
    spec = study.load_study(REPO / "studies" / "tiny.yaml")
    root = tmp_path_factory.mktemp("study") / "tiny"
    study.run(spec, root, log=QUIET)
    out = tmp_path_factory.mktemp("report")
    res = report.report(spec, root, runs_dir=out / "papermill_runs", reports_dir=out / "reports", log=QUIET)
    return spec, root, out, res


def _results(out: Path, name: str) -> dict:
    return json.loads((out / "papermill_runs" / "tiny" / f"{name}.results.json").read_text())


@pytest.mark.notebooks
def test_every_notebook_writes_finite_results(tiny):
    spec, root, out, res = tiny
    assert [p.stem for p in res["notebooks"]] == list(report.NOTEBOOKS)
    for name in report.NOTEBOOKS:
        values = _results(out, name)
        assert values, name
        for key, v in values.items():
            assert v is None or (isinstance(v, (int, float)) and math.isfinite(v)), (name, key, v)
        assert any(v is not None for v in values.values()), name
        # the report copy is the same file
        assert json.loads((out / "reports" / "tiny" / f"{name}.results.json").read_text()) == values
    # each executed notebook's seconds, for the study's stage breakdown (benchmarks/bench_study.py)
    times = [json.loads(line) for line in (out / "papermill_runs" / "tiny" / "timings.jsonl").read_text().splitlines()]
    assert [t["key"] for t in times] == [f"notebook {n}" for n in report.NOTEBOOKS]
    assert all(t["kind"] == "notebook" and t["seconds"] > 0 for t in times)


@pytest.mark.notebooks
def test_results_equal_what_the_tables_give(tiny):
    spec, root, out, res = tiny
    every = pd.read_csv(root / "tables" / "passk.csv")
    main = lambda t: t[t.arm == "main"]  # noqa: E731
    passk = main(every).query("split == 'test'")
    general = main(pd.read_csv(root / "tables" / "general.csv"))
    pm = main(pd.read_csv(root / "tables" / "pretrain_metrics.csv"))
    bm_every = pd.read_csv(root / "tables" / "branch_metrics.csv")
    bm = main(bm_every)
    last = passk["parent_tokens"].max()
    kmax = max(spec.eval.ks)

    def p(method, k):
        rows = passk[(passk.method == method) & (passk.parent_tokens == last) & (passk.k == k)]
        return rows["pass_at_k"].mean()

    curves, exp = _results(out, "passk_curves"), _results(out, "expansion_vs_sharpening")
    assert curves["k_max"] == kmax and curves["last_checkpoint_tokens"] == last
    for m in spec.branch.methods + ["base"]:
        assert curves[f"pass@1.{m}"] == pytest.approx(p(m, 1), abs=1e-12)
        assert curves[f"pass@k_max.{m}"] == pytest.approx(p(m, kmax), abs=1e-12)
    for m in spec.branch.methods:
        assert exp[f"dpass@1.{m}"] == pytest.approx(p(m, 1) - p("base", 1), abs=1e-12)
        assert exp[f"dpass@k_max.{m}"] == pytest.approx(p(m, kmax) - p("base", kmax), abs=1e-12)
    assert exp["sft_rl_vs_sft.dpass@1"] == pytest.approx(p("sft_rl", 1) - p("sft", 1), abs=1e-12)

    gen = _results(out, "general_capabilities")
    g = general[general.parent_tokens == last].groupby(["method", "metric"])["value"].mean()
    for m in spec.branch.methods:
        assert gen[f"dprobe_acc.{m}"] == pytest.approx(g[m, "probe_acc"] - g["base", "probe_acc"], abs=1e-12)
        assert gen[f"dheldout_nll.{m}"] == pytest.approx(g[m, "heldout_nll"] - g["base", "heldout_nll"], abs=1e-12)

    pre = _results(out, "pretrain")
    first_run = pm[pm.pretrain_seed == pm.pretrain_seed.min()] if "pretrain_seed" in pm else pm  # the main run's
    final = first_run.sort_values("tokens").iloc[-1]
    assert pre["heldout_general"] == pytest.approx(final["heldout_general"])
    assert pre["heldout_math"] == pytest.approx(final["heldout_math"])

    dyn = _results(out, "training_dynamics")
    rl = bm[(bm.method == "rl") & (bm.parent_tokens == last)].sort_values("step")
    assert dyn["final_reward.rl"] == pytest.approx(rl["reward_mean"].iloc[-1])
    assert "final_reward.sft" not in dyn  # SFT logs no reward

    par = _results(out, "parallel_averaging")
    assert par["parent_tokens"] == last
    for m in ("base", "rl", "sft", "sft_rl", "parallel"):
        assert par[f"pass@1.{m}"] == pytest.approx(p(m, 1), abs=1e-12)
        assert par[f"pass@k_max.{m}"] == pytest.approx(p(m, kmax), abs=1e-12)

    ready = _results(out, "readiness")
    train = main(every).query("split == 'train' and method == 'base'")
    for t in sorted(train["parent_tokens"].unique()):
        assert ready[f"{t}.base_train_pass@{kmax}"] == pytest.approx(
            train[(train.parent_tokens == t) & (train.k == kmax)]["pass_at_k"].iloc[0], abs=1e-12)
        rl1 = passk[(passk.method == "rl") & (passk.parent_tokens == t) & (passk.k == 1)]["pass_at_k"].mean()
        b1 = passk[(passk.method == "base") & (passk.parent_tokens == t) & (passk.k == 1)]["pass_at_k"].mean()
        assert ready[f"{t}.rl_dpass@1"] == pytest.approx(rl1 - b1, abs=1e-12)

    budget = _results(out, "rollout_budget")
    for arm, g in (("rollouts_2", 2), ("rollouts_8", 8)):
        rows = every[(every.arm == arm) & (every.method == "rl") & (every.split == "test")]
        assert budget[f"G{g}.test_pass@1"] == pytest.approx(rows[rows.k == 1]["pass_at_k"].mean(), abs=1e-12)
        steps = bm_every[bm_every.arm == arm].sort_values("step")
        assert budget[f"G{g}.val_pass@1"] == pytest.approx(steps["val_pass@1"].iloc[-1], abs=1e-12)
        assert budget[f"G{g}.prompts_seen"] == steps["step"].iloc[-1] * steps["prompts_per_step"].iloc[-1]

    comp = _results(out, "composition_vs_scale")
    for arm in ("main", "math_heavy", "wider"):
        for split in ("test", "hard"):
            rows = every[(every.arm == arm) & (every.split == split) & (every.parent_tokens == last) & (every.k == 1)]
            rl1, b1 = (rows[rows.method == m]["pass_at_k"].mean() for m in ("rl", "base"))
            assert comp[f"{arm}.{split}.pass@1.gain"] == pytest.approx(rl1 - b1, abs=1e-12)

    summ = _results(out, "summary")
    assert summ["claim1.dpass1_last"] == pytest.approx(p("rl", 1) - p("base", 1), abs=1e-12)
    assert summ["claims_measured"] + 0 <= 10
    # the side experiments' claims read the arms: rollout budget (G=2 vs G=8) and composition vs scale
    assert summ["claim8.few_G"] == 2 and summ["claim8.many_G"] == 8
    # same tokens: G=2 against the G=8 run stopped after 1 step (arm same_tokens_8), on the test split
    g2, g8 = (every[(every.arm == a) & (every.method == "rl") & (every.split == "test") & (every.k == 1)]["pass_at_k"].mean()
              for a in ("rollouts_2", "same_tokens_8"))
    assert summ["claim8.dpass1_same_tokens"] == pytest.approx(g2 - g8, abs=1e-12)
    bm8 = bm_every[bm_every.arm == "same_tokens_8"]
    bm2 = bm_every[bm_every.arm == "rollouts_2"]
    assert summ["claim8.many_tokens_over_few"] == pytest.approx(
        (bm8.response_len * 8 * bm8.prompts_per_step).sum() / (bm2.response_len * 2 * bm2.prompts_per_step).sum())
    for arm, role in (("main", "main"), ("math_heavy", "targeted"), ("wider", "wider")):  # arms found by role
        assert summ[f"claim9.gain_{role}"] == pytest.approx(comp[f"{arm}.hard.pass@1.gain"], abs=1e-12)
    assert summ["claim1.floor.test.passkmax"] == pytest.approx(
        pd.read_csv(root / "tables" / "floor.csv").query("arm == 'main' and split == 'test' and k == @kmax")
        ["pass_at_k"].max())


@pytest.mark.notebooks
def test_html_reports_are_offline_and_show_figures(tiny):
    spec, root, out, res = tiny
    assert [p.name for p in res["html"]] == [f"{n}.html" for n in report.NOTEBOOKS]
    for page in res["html"]:
        text = page.read_text()
        if page.stem != "summary":  # the summary is a table; every other report has figures
            assert "data:image/png;base64," in text, page.name
        scripts = re.findall(r"<script[^>]*\bsrc\s*=\s*['\"]([^'\"]*)", text)
        assert not [s for s in scripts if s.startswith(("http", "//")) or "cdn" in s], (page.name, scripts)
        assert "study_root = " not in text  # the parameters cells are removed
        assert "analysis.load_tables" not in text  # set-up code is hidden
    assert "<table" in res["html"][-1].read_text() and "claim" in res["html"][-1].read_text()


@pytest.mark.notebooks
def test_index_links_every_report_with_headline_numbers(tiny):
    spec, root, out, res = tiny
    index = res["index"]
    assert index == out / "reports" / "index.html"
    text = index.read_text()
    for name in report.NOTEBOOKS:
        assert f"href='tiny/{name}.html'" in text
        assert (index.parent / "tiny" / f"{name}.html").is_file()
    assert "pass@1.rl = " in text and "heldout_general = " in text
    assert "<script" not in text
    # a dashboard: the verdict count first (from the summary), the key figure, provenance and the smoke banner
    summary = json.loads((out / "reports" / "tiny" / "summary.results.json").read_text())
    head = f"{summary['claims_held']} of 10 claims held"
    assert head in text and text.index(head) < text.index("data:image/png") < text.index("href='tiny/pretrain.html'")
    assert text.index("href='tiny/summary.html'") < text.index("href='tiny/pretrain.html'")
    assert "Smoke test: the tiny preset" in text and "study tiny (" in text and "pretraining tokens" in text
    for name in report.NOTEBOOKS:  # every page says what it was made from
        page = (index.parent / "tiny" / f"{name}.html").read_text()
        assert "rlearly 0." in page and "Smoke test: the tiny preset" in page, name


def test_findings_log_is_rendered_and_linked(tmp_path):
    assert report.write_findings(tmp_path) is None  # no log, no page, no link
    assert "findings.html" not in report.write_index(tmp_path).read_text()
    (tmp_path / report.FINDINGS).write_text("# Findings\n\n| claim | verdict |\n|---|---|\n| 1 | held |\n")
    text = report.write_index(tmp_path).read_text()
    page = (tmp_path / "findings.html").read_text()
    assert "href='findings.html'" in text and "<table>" in page and "<td>held</td>" in page
    assert (REPO / "reports" / report.FINDINGS).is_file()  # the repository's log, which the summary links


def test_every_table_of_the_findings_log_renders_as_a_table():
    """A '|' inside a cell (|Δ|) ends the cell: such a table rendered as raw pipes on findings.html. Each table of
    reports/FINDINGS.md has one column count (unescaped pipes) and renders as an HTML table."""
    import re

    from nbconvert.filters.markdown import markdown2html

    src = (REPO / "reports" / report.FINDINGS).read_text("utf-8")
    tables = re.findall(r"(?:^\|.*\|[ \t]*$\n?)+", src, re.M)
    pipes = lambda line: len(re.findall(r"(?<!\\)\|", line))  # noqa: E731
    for block in tables:
        lines = block.strip().splitlines()
        assert {pipes(line) for line in lines} == {pipes(lines[0])}, lines[0]
    assert len(tables) > 20 and markdown2html(src).count("<table") == len(tables)


@pytest.mark.notebooks
def test_second_report_executes_and_renders_nothing(tiny):
    spec, root, out, res = tiny
    files = [*res["notebooks"], *res["html"]]
    before = {p: p.stat().st_mtime_ns for p in files}
    lines = []
    again = report.report(spec, root, runs_dir=out / "papermill_runs", reports_dir=out / "reports", log=lines.append)
    assert {p: p.stat().st_mtime_ns for p in files} == before
    assert again["notebooks"] == res["notebooks"] and all("up to date" in line for line in lines)


@pytest.mark.notebooks
def test_failing_notebook_names_itself_and_its_line(tiny, tmp_path):
    spec, root, out, res = tiny
    bad = tmp_path / "bad"
    (bad / "tables").mkdir(parents=True)
    for f in (root / "tables").glob("*.csv"):
        (bad / "tables" / f.name).write_text(f.read_text())
    passk = pd.read_csv(root / "tables" / "passk.csv")
    passk.assign(split="hard").to_csv(bad / "tables" / "passk.csv", index=False)  # no "test" rows
    with pytest.raises(RlearlyError, match=r"notebook passk_curves failed in cell \d+, line `km = analysis.k_max"):
        report.execute_notebooks(spec, bad, names=["passk_curves"], out_dir=tmp_path / "runs", log=QUIET)
    assert not (tmp_path / "runs" / "passk_curves.ipynb").exists()  # nothing that looks finished
    assert not (tmp_path / "runs" / "passk_curves.results.json").exists()
    assert (tmp_path / "runs" / "passk_curves.failed.ipynb").is_file()


def test_report_without_tables_says_run_the_study(tmp_path):
    with pytest.raises(RlearlyError, match="rlearly study run"):
        report.execute_notebooks(REPO / "studies" / "tiny.yaml", tmp_path / "nothing", out_dir=tmp_path / "o")


def test_notebooks_of_side_experiments_are_skipped_without_their_arms():
    """studies/quick.yaml has no rollout or composition arms: those two notebooks are skipped (its report
    failed in rollout_budget before), the rest run; the default study runs every notebook."""
    from rlearly import study
    quick, default = (study.load_study(REPO / "studies" / f"{n}.yaml") for n in ("quick", "default"))
    assert report.missing_roles(quick, "rollout_budget") == ["rollouts_few", "rollouts_many"]
    assert report.missing_roles(quick, "composition_vs_scale") == ["targeted_mix", "wider_model"]
    assert [n for n in report.NOTEBOOKS if report.missing_roles(quick, n)] == ["rollout_budget", "composition_vs_scale"]
    assert not any(report.missing_roles(default, n) for n in report.NOTEBOOKS)


def test_the_shipped_real_task_study_runs_offline_and_its_report_renders(tmp_path):
    """studies/gsm-symbolic.yaml: branches train on reasoning-gym's gsm_symbolic (offline), evaluations read its
    test split; the report renders, skipping what the study has no runs for (parallel averaging, side arms), and
    its summary says there is no adversary floor for a real task."""
    spec = study.load_study(REPO / "studies" / "gsm-symbolic.yaml")
    root = tmp_path / "run"
    study.run(spec, root, log=QUIET)
    passk = pd.read_csv(root / "tables" / "passk.csv")
    assert set(passk["method"]) == {"base", "rl", "sft"} and passk["task_id"].str.startswith("gsm_symbolic-").all()
    assert set(passk["split"]) == {"test", "train"}  # train: the readiness diagnostic on its RL prompts
    lines = []
    report.report(spec, root, runs_dir=tmp_path / "papermill_runs", reports_dir=tmp_path / "reports", log=lines.append)
    pages = {p.stem for p in (tmp_path / "reports" / "gsm-symbolic").glob("*.html")}
    assert {"pretrain", "passk_curves", "readiness", "samples", "summary"} <= pages
    assert "parallel_averaging" not in pages
    assert "notebook parallel_averaging: skipped (the study trains no parallel branch)" in lines
    assert "no adversary floor" in (tmp_path / "reports" / "gsm-symbolic" / "summary.html").read_text()
    assert (tmp_path / "reports" / "index.html").is_file()


def test_cli_study_report_calls_report(tmp_path, monkeypatch, capsys):
    from rlearly import cli

    seen = {}

    def fake(spec, root, reports_dir):
        seen.update(spec=spec.name, root=Path(root), reports=reports_dir)
        return {"index": Path(reports_dir) / "index.html"}

    monkeypatch.setattr(report, "report", fake)
    assert cli.main(["study", "report", str(REPO / "studies" / "tiny.yaml"), "--root", str(tmp_path)]) == 0
    assert seen == {"spec": "tiny", "root": tmp_path, "reports": "reports"}
    assert "index.html" in capsys.readouterr().out
    # the pages can go anywhere
    assert cli.main(["study", "report", str(REPO / "studies" / "tiny.yaml"), "--root", str(tmp_path),
                     "--reports", str(tmp_path / "pages")]) == 0
    assert seen["reports"] == str(tmp_path / "pages")
    assert f"done: {tmp_path / 'pages' / 'index.html'}" in capsys.readouterr().out


def test_write_results_keeps_finite_numbers_and_nulls(tmp_path):
    path = analysis.write_results({"a": np.float64(0.5), "b": float("nan"), "c": np.int64(3), "d": None},
                                tmp_path, "x")
    assert json.loads(path.read_text()) == {"a": 0.5, "b": None, "c": 3, "d": None}
    with pytest.raises(RlearlyError, match="'e' is inf"):
        analysis.write_results({"e": float("inf")}, tmp_path, "y")


@pytest.mark.notebooks
def test_nothing_solved_is_not_measured_not_a_verdict(tiny):
    spec, root, out, res = tiny
    passk = pd.read_csv(root / "tables" / "passk.csv")
    if passk["pass_at_k"].max() > 0:
        pytest.skip("the tiny study solved something; nothing to check here")
    cl = {c.id: c for c in claims.claims(root)}
    for i in (1, 3, 4, 5, 7):
        assert cl[i].verdict == claims.NOT_MEASURED and "solved" in cl[i].why, (i, cl[i].verdict)


def test_templates_are_thin_with_cleared_outputs():
    import nbformat

    names = sorted(p.stem for p in (REPO / "notebooks").glob("*.ipynb"))
    assert names == sorted(report.NOTEBOOKS)
    for name in names:
        nb = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), f"{name}: clear its outputs"
        params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1 and "study_root = " in params[0].source and "study_name = " in params[0].source
        assert f'"{name}")' in code[-1].source and "write_results" in code[-1].source  # results.json last
        assert max(len(c.source.splitlines()) for c in code) <= 6, f"{name}: a long cell belongs in the package"


def test_the_report_cache_covers_every_module_a_report_reads():
    names = {str(p.relative_to(REPO / "rlearly")) for p in report.code_files()}
    assert {"results/claims/rules.py", "results/claims/paper.py", "evaluation/adversaries.py", "results/analysis.py",
            "results/plots.py", "evaluation/passk.py", "evaluation/store.py", "data/graph.py",
            "data/math_world.py"} <= names
    assert names == {str(p.relative_to(REPO / "rlearly")) for p in (REPO / "rlearly").rglob("*.py")}
