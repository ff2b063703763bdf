"""The repository carries what it cites: every "docs/PAPER.md §N" or "docs/DESIGN.md §N" in the code, tests,
notebooks, studies, benchmarks and README names a shipped file and a section heading in it. The README fits the first
hour: short, the set-up and a first run on its first screen, checkpoints its runs really save, links that resolve, and
a package map with every module."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CITE = re.compile(r"docs/(\w+\.md) §(\d+[a-z]?(?:\.\d+)?)")


def _citations():
    for folder in ("rlearly", "tests", "notebooks", "studies", "benchmarks"):
        for f in (ROOT / folder).rglob("*"):
            if f.suffix in (".py", ".ipynb", ".yaml", ".md"):
                yield from ((f, m) for m in CITE.findall(f.read_text(encoding="utf-8")))
    for f in (ROOT / "README.md", ROOT / "Makefile"):
        yield from ((f, m) for m in CITE.findall(f.read_text(encoding="utf-8")))


def test_every_cited_section_ships():
    cites = list(_citations())
    assert len(cites) > 50  # the code does cite them
    for f, (doc, sec) in cites:
        text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
        assert re.search(rf"^#+ {re.escape(sec)}[. ]", text, re.M), f"{f.relative_to(ROOT)} cites docs/{doc} §{sec}"


README = ROOT / "README.md"


def _readme() -> str:
    return README.read_text(encoding="utf-8")


def test_the_readme_fits_the_first_hour():
    """At most 12 KB; the set-up and a first run on the first screen (~60 lines), and the package map present."""
    assert len(README.read_bytes()) <= 12_000, len(README.read_bytes())
    text = _readme()
    first = "\n".join(text.splitlines()[:60])
    for needle in ("make test", "make report", "rlearly pretrain", "## Package map"):
        assert needle in first, f"{needle!r} is not in the README's first 60 lines"


def _pretrain_commands(text: str):
    """(preset, run directory, overrides) of every `rlearly pretrain ... --preset P --out DIR` command in `text`."""
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if "pretrain" not in words or "rlearly" not in words[:words.index("pretrain")]:
            continue
        args = words[words.index("pretrain") + 1:]
        opts, overrides, i = {}, [], 0
        while i < len(args):
            if args[i].startswith("--") and args[i] != "--no-progress" and i + 1 < len(args):
                opts[args[i]] = args[i + 1]
                i += 2
                continue
            if "=" in args[i]:
                overrides.append(args[i])
            i += 1
        if "--preset" in opts and "--out" in opts:
            yield opts["--preset"], opts["--out"].rstrip("/"), overrides


def _named_checkpoints(text: str, run_dir: str) -> set[str]:
    """Every `ckpt-N` the text names under `run_dir` (the run's own checkpoints, its eval/ and branch/ folders)."""
    return set(re.findall(rf"(?<![\w./-]){re.escape(run_dir)}/(?:[\w.<>-]+/)*?(ckpt-\d+)", text))


def _saved_checkpoints(preset: str, overrides: list[str]) -> set[str]:
    from rlearly.config import load_config
    from rlearly.train.common import ckpt_name

    cfg = load_config(preset=preset, overrides=overrides)
    return {ckpt_name(s * cfg.pretrain.tokens_per_step) for s in cfg.pretrain.checkpoint_steps()}


def test_the_readme_names_checkpoints_its_runs_save():
    """Every `DIR/ckpt-N` the README names is a checkpoint its `rlearly pretrain --preset P --out DIR` saves."""
    text = _readme()
    runs = list(_pretrain_commands(text))
    assert runs, "the README shows no `rlearly pretrain --preset P --out DIR`"
    named_any = False
    for preset, run_dir, overrides in runs:
        named = _named_checkpoints(text, run_dir)
        named_any |= bool(named)
        missing = named - _saved_checkpoints(preset, overrides)
        assert not missing, f"the README names {sorted(missing)} under {run_dir}, which --preset {preset} never saves"
    assert named_any, "the README names no checkpoint of its runs"


def test_the_checkpoint_check_fails_on_a_checkpoint_the_preset_never_saves():
    """The check above catches a small-preset name under a tiny run (and accepts the tiny run's own)."""
    small = sorted(_saved_checkpoints("small", []))
    tiny = sorted(_saved_checkpoints("tiny", []))
    text = (f"rlearly pretrain --preset tiny --out runs/t\nrlearly info runs/t/{small[-1]}\n"
            f"rlearly eval runs/t/{tiny[-1]}  # -> runs/t/eval/{tiny[0]}/test.json\n")
    ((preset, run_dir, overrides),) = _pretrain_commands(text)
    assert (preset, run_dir) == ("tiny", "runs/t")
    assert _named_checkpoints(text, run_dir) - _saved_checkpoints(preset, overrides) == {small[-1]}


def test_every_file_the_readme_links_ships():
    """Markdown links, and the docs/, benchmarks/, reports/, studies/ and tests/ files the README names, ship."""
    text = _readme()
    links = {m for m in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text) if "://" not in m}
    named = set(re.findall(r"(?<![\w/<])((?:docs|benchmarks|reports|studies|tests)/[\w./-]+\.(?:md|yaml|py))", text))
    assert links, "the README links to nothing"
    for path in sorted(links | named):
        assert (ROOT / path).is_file(), f"the README links to {path}, which does not exist"


def test_the_package_map_names_every_module():
    """One row per top-level module or folder of rlearly/, naming each module in it (subpackages' __init__.py aside)."""
    package = ROOT / "rlearly"
    text = _readme()
    rows = {}
    for line in text[text.index("## Package map"):].splitlines():
        m = re.match(r"\| `([\w./]+)` \| (.*) \|$", line)
        if m:
            rows[m.group(1)] = m.group(2)
    top = {p.name + ("/" if p.is_dir() else "") for p in package.iterdir()
           if p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists())}
    assert set(rows) == top, (sorted(top - set(rows)), sorted(set(rows) - top))
    for folder, cell in rows.items():
        if not folder.endswith("/"):
            continue
        have = {p.name for p in (package / folder).rglob("*.py") if p.name != "__init__.py"}
        named = set(re.findall(r"`(\w+\.py)`", cell)) - {"__init__.py"}
        assert have <= named, f"the package map's {folder} row leaves out {sorted(have - named)}"
        assert named <= have, f"the package map's {folder} row names {sorted(named - have)}, which do not exist"
