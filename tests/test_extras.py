"""Optional engines (rlearly.extras, docs/DESIGN.md §7): without its extra, each of vllm, nanotron, lm-eval and
reasoning-gym is one `rlearly: error:` line naming the extra to install, exit status 2, no traceback.
Absence is simulated by a None entry in sys.modules (then `import x` raises ModuleNotFoundError)."""
import sys

import pytest
from conftest import tiny_model

from rlearly import cli
from rlearly.config import load_config
from rlearly.errors import RlearlyError
from rlearly.extras import require
from rlearly.lm.checkpoint import save_checkpoint


@pytest.fixture
def ckpt(tok, tmp_path):
    return save_checkpoint(tmp_path / "ckpt", tiny_model(tok.vocab_size), tok, {"method": "pretrain", "step": 1},
                           load_config(preset="tiny"))


CASES = {  # module made absent, command, extra named, what needs it
    "vllm": ("vllm", ["eval", "{ckpt}", "--backend", "vllm", "--n", "1", "--k", "1", "--store", "{tmp}/s"],
             "gpu", "the vllm backend"),
    "nanotron": ("nanotron", ["export", "nanotron-config", "--preset", "tiny", "--out", "{tmp}/nt", "--docs", "2",
                              "--check"], "scale", "checking a nanotron config"),
    "lm-eval": ("lm_eval", ["lm-eval", "{ckpt}"], "eval", "lm-eval benchmarks"),
    "reasoning-gym": ("reasoning_gym", ["eval", "{ckpt}", "--task", "gsm_symbolic"], "data",
                      "reasoning-gym problems"),
}


@pytest.mark.parametrize("engine", list(CASES))
def test_missing_extra_is_one_error_line_naming_it(engine, ckpt, tmp_path, monkeypatch, capsys):
    module, argv, extra, what = CASES[engine]
    monkeypatch.setitem(sys.modules, module, None)
    rc = cli.main([a.format(ckpt=ckpt, tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"rlearly: error: {what} needs the [{extra}] extra: pip install 'rlearly[{extra}]'"), err


def test_an_installed_package_that_fails_to_import_is_one_line_too(tmp_path, monkeypatch):
    pkg = tmp_path / "brokenengine"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from brokenengine.models import x\n")
    (pkg / "models.py").write_text("from brokenengine import y\nx = 1\n")  # a circular import, as nanotron 0.4's
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RlearlyError, match=r"^checking it: brokenengine is installed but fails to import "
                                           r"\(ImportError: cannot import name 'y'.*\); see pip install "
                                           r"'rlearly\[scale\]' in the README$"):
        require("brokenengine", "scale", "checking it")
    missing_dep = tmp_path / "needsdep"
    missing_dep.mkdir()
    (missing_dep / "__init__.py").write_text("import flash_attn_not_here\n")  # a dependency missing, not the package
    with pytest.raises(RlearlyError, match="needsdep is installed but fails to import .*flash_attn_not_here"):
        require("needsdep", "scale", "checking it")
