"""The repository carries what it cites: every "docs/PAPER.md §N" or "docs/DESIGN.md §N" in the code, tests,
notebooks, studies and README names a shipped file and a section heading in it."""
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


def test_the_readme_names_checkpoints_the_small_preset_writes():
    """The Quick start's `runs/demo/ckpt-…` are checkpoints `rlearly pretrain --preset small` saves."""
    from rlearly.config import load_config
    from rlearly.train.pretrain import ckpt_name

    cfg = load_config(preset="small")
    saved = {ckpt_name(s * cfg.pretrain.tokens_per_step) for s in cfg.pretrain.checkpoint_steps()}
    named = set(re.findall(r"runs/demo/(ckpt-\d+)", (ROOT / "README.md").read_text(encoding="utf-8")))
    assert named and named <= saved, sorted(named - saved)
