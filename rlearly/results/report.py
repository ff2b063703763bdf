"""Reports: execute every notebook of `notebooks/` with papermill into `papermill_runs/<study>/`, render each
to self-contained HTML in `reports/<study>/`, and write `reports/index.html` (docs/DESIGN.md §3, §6).
"""
from __future__ import annotations

import hashlib
import html
import json
import os
import re
import time
from pathlib import Path

from rlearly.errors import RlearlyError
from rlearly.files import PACKAGE, git_commit, write_atomic
from rlearly.results.analysis import load_tables, repo_root

NOTEBOOKS = ("pretrain", "passk_curves", "expansion_vs_sharpening", "general_capabilities", "parallel_averaging",
             "training_dynamics", "readiness", "rollout_budget", "composition_vs_scale", "samples",
             "summary")  # execution and index order
KERNEL = "python3"
# notebooks that read side experiments: the arm roles they need (a study without them, e.g. studies/quick.yaml,
# skips the notebook and says so)
NEEDS_ROLES = {"rollout_budget": ("rollouts_few", "rollouts_many"), "composition_vs_scale": ("targeted_mix",
                                                                                             "wider_model")}


NEEDS_METHODS = {"parallel_averaging": ("parallel",)}  # notebooks about one recipe


def missing_roles(spec, name: str) -> list[str]:
    """The arm roles notebook `name` needs that the study `spec` has no arm for ([] when it can run)."""
    have = {arm.role for arm in spec.arms.values()}
    return [r for r in NEEDS_ROLES.get(name, ()) if r not in have]


def why_skipped(spec, name: str) -> str | None:
    """Why notebook `name` cannot run on study `spec` (an arm role or a recipe it reads is missing), or None."""
    if missing := missing_roles(spec, name):
        return f"the study has no arm with role {', '.join(missing)}"
    methods = {m for arm in spec.all_arms() for m in arm.branch.methods}
    if lacking := [m for m in NEEDS_METHODS.get(name, ()) if m not in methods]:
        return f"the study trains no {', '.join(lacking)} branch"
    if name == "pretrain" and spec.base:
        return "the study branches a checkpoint suite: it pretrains nothing"
    if name == "readiness" and not any(arm.eval.readiness for arm in spec.all_arms()):
        return "the study evaluates no base on its RL prompts (eval.readiness: false)"
    return None


# ---------------------------------------------------------------- executing notebooks (papermill)

def ensure_kernel() -> None:
    """The `python3` kernel must run this interpreter (which has rlearly): install its spec into the venv if not."""
    import shutil
    import sys

    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        argv0 = KernelSpecManager().get_kernel_spec(KERNEL).argv[0]
    except NoSuchKernel:
        argv0 = None
    # jupyter_client runs a spec's bare "python"/"python3" with sys.executable; anything else must be us
    if argv0 in ("python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"):
        return
    if argv0 and Path(shutil.which(argv0) or argv0).resolve() == Path(sys.executable).resolve():
        return
    from ipykernel.kernelspec import install
    install(prefix=sys.prefix, kernel_name=KERNEL)


def _kernel_config() -> dict:
    """Encrypt the kernel's local TCP channels when zmq can (otherwise ipykernel warns on every start), and shut the
    kernel down without a SIGINT first (quiet_shutdown_manager)."""
    import zmq
    from traitlets.config import Config

    out = {"kernel_manager_class": quiet_shutdown_manager()}
    if not zmq.has("curve"):
        return out
    c = Config()
    c.KernelManager.transport_encryption = "auto"
    return {**out, "config": c}


def quiet_shutdown_manager() -> type:
    """jupyter_client's kernel manager without the SIGINT it sends a kernel just before asking it to shut down: a
    kernel caught inside a message handler by it logs "[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel."
    to the terminal of a run that succeeded. The shutdown request alone stops an idle kernel (one that does not
    stop is killed after jupyter_client's wait); an interrupt asked for at any other time is sent as before."""
    from jupyter_client.manager import AsyncKernelManager

    class QuietShutdownKernelManager(AsyncKernelManager):
        async def _async_interrupt_kernel(self) -> None:
            if not self.shutting_down:
                await super()._async_interrupt_kernel()

    return QuietShutdownKernelManager


def _fingerprint(template: Path, tables: Path, params: dict) -> str:
    """What an executed notebook depends on: its template, the tables, the parameters and the package's code
    (every module of rlearly: the views, the claims' rules, the adversaries, and what they import)."""
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    package = PACKAGE
    for f in [template, *sorted(tables.glob("*.csv")), *code_files()]:
        name = str(f.relative_to(package)) if f.is_relative_to(package) else f.name
        h.update(name.encode() + b"\0" + (f.read_bytes() if f.is_file() else b"missing"))
    return h.hexdigest()[:16]


def code_files() -> list[Path]:
    """Every module of the package, which a report's notebooks may read (directly or through imports)."""
    return sorted(PACKAGE.rglob("*.py"))


def _stored_fingerprint(nb_path: Path) -> str | None:
    try:
        return json.loads(nb_path.read_text())["metadata"].get("rlearly", {}).get("fingerprint")
    except (OSError, ValueError, KeyError, AttributeError):
        return None


def _cell_error(e) -> str:
    """'cell 4, line `x = f()`: ValueError: ...' from a papermill execution error."""
    tb = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(getattr(e, "traceback", None) or []))
    lines = re.findall(r"^-*>\s*\d+\s+(.*)$", tb, flags=re.M)  # the first arrow is in the cell itself
    where = f"cell {getattr(e, 'exec_count', None) or '?'}" + (f", line `{lines[0].strip()}`" if lines else "")
    return f"{where}: {getattr(e, 'ename', type(e).__name__)}: {getattr(e, 'evalue', str(e))}"


def template_parameters(template: str | os.PathLike) -> dict[str, type]:
    """The parameters a template's `parameters` cell declares: name -> type of its literal (no kernel run)."""
    import ast

    template = Path(template)
    try:
        cells = json.loads(template.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RlearlyError(f"notebook template {template} is unreadable ({type(e).__name__})") from None
    cell = next((c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        raise RlearlyError(f"notebook template {template} has no cell tagged 'parameters'")
    src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    out = {}
    for node in ast.parse(src).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = type(ast.literal_eval(node.value))
            except ValueError:  # not a literal: papermill can still override it, with any type
                out[node.targets[0].id] = object
    return out


def check_parameters(template: str | os.PathLike, params: dict) -> None:
    """RlearlyError naming the parameter when `params` has one the template does not declare, or a value
    of another type than the template's literal (an int is fine where a float is declared)."""
    declared = template_parameters(template)
    name = Path(template).stem
    for key, value in params.items():
        if key not in declared:
            raise RlearlyError(f"notebook {name}: unknown parameter {key!r}; its parameters cell declares "
                               f"{', '.join(declared) or 'none'}")
        want = declared[key]
        ok = (want in (object, type(None)) or
              (isinstance(value, want) and not (isinstance(value, bool) and want is not bool)) or
              (want is float and isinstance(value, int) and not isinstance(value, bool)))
        if not ok:
            raise RlearlyError(f"notebook {name}: parameter {key!r} must be a {want.__name__} (as its parameters "
                               f"cell declares), got {type(value).__name__} {value!r}")


def execute_notebooks(spec, root, names=None, out_dir=None, log=print) -> list[Path]:
    """Run each template of notebooks/ with papermill on the study's tables; return the executed notebooks.

    Output: `<out_dir>/<name>.ipynb` (default papermill_runs/<study>/) and its `<name>.results.json`.
    A notebook whose template, tables, parameters and views are unchanged since its last run is skipped.
    A failing one raises RlearlyError naming it and the failing line; its executed copy is kept as
    `<name>.failed.ipynb` and no `<name>.ipynb` is left to look finished.
    """
    import nbformat
    try:
        import papermill as pm
    except ImportError:
        raise RlearlyError("executing notebooks needs papermill: pip install -e '.[dev]'") from None

    from rlearly.study import log_timing

    spec = _spec(spec)
    root = Path(root).resolve()
    tables = root / "tables"
    load_tables(root)  # missing tables: say "run the study first", not a papermill traceback
    _power_table(spec, tables)
    out_dir = Path(out_dir or Path("papermill_runs") / spec.name).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    templates = _templates(names)
    kernel_ok, done = False, []
    for name, template in templates.items():
        out = out_dir / f"{name}.ipynb"
        if why := why_skipped(spec, name):
            log(f"notebook {name}: skipped ({why})")
            continue
        params = {"study_root": str(root), "study_name": spec.name, "results_dir": str(out_dir)}
        check_parameters(template, params)
        fp = _fingerprint(template, tables, params)
        if out.is_file() and (out_dir / f"{name}.results.json").is_file() and _stored_fingerprint(out) == fp:
            log(f"notebook {name}: up to date ({out})")
            done.append(out)
            continue
        if not kernel_ok:
            ensure_kernel()
            kernel_ok = True
        log(f"notebook {name}: executing")
        tmp, failed = out_dir / f".{name}.tmp.ipynb", out_dir / f"{name}.failed.ipynb"
        for stale in (out, out_dir / f"{name}.results.json", failed):
            stale.unlink(missing_ok=True)
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(str(template), str(tmp), parameters=params, kernel_name=KERNEL,
                                cwd=str(repo_root()), progress_bar=False, log_output=False, **_kernel_config())
        except Exception as e:  # papermill's execution error, a dead kernel, a bad template
            if tmp.exists():
                tmp.replace(failed)
            kept = f" (executed copy: {failed})" if failed.exists() else ""
            raise RlearlyError(f"notebook {name} failed in {_cell_error(e)}{kept}") from None
        if not (out_dir / f"{name}.results.json").is_file():
            tmp.replace(failed)
            raise RlearlyError(f"notebook {name} ran but wrote no {name}.results.json (its last cell must call "
                               f"report.write_results); executed copy: {failed}")
        nb = nbformat.read(tmp, as_version=4)
        nb.metadata["rlearly"] = {"fingerprint": fp, "study": spec.name, "study_root": str(root)}
        nbformat.write(nb, tmp)
        tmp.replace(out)
        log_timing(out_dir, f"notebook {name}", "notebook", "-", time.perf_counter() - t0)
        done.append(out)
    return done


def _power_table(spec, tables: Path) -> None:
    """tables/power.csv: the design's cached power table when it is current (rlearly.results.power), else none."""
    from rlearly.results import power

    table = power.cached(spec)
    f = tables / "power.csv"
    if table is None:
        f.unlink(missing_ok=True)
    else:
        write_atomic(f, table.to_csv(index=False))


def _spec(spec):
    from rlearly import study
    return spec if isinstance(spec, study.StudySpec) else study.load_study(spec)


def _templates(names=None) -> dict[str, Path]:
    folder = repo_root() / "notebooks"
    found = {p.stem: p for p in sorted(folder.glob("*.ipynb"))}
    if not found:
        raise RlearlyError(f"no notebook templates in {folder}: run from a checkout of rlearly")
    order = [n for n in NOTEBOOKS if n in found] + sorted(set(found) - set(NOTEBOOKS))
    if names is None:
        return {n: found[n] for n in order}
    unknown = [n for n in names if n not in found]
    if unknown:
        raise RlearlyError(f"unknown notebook(s) {unknown}; known: {', '.join(order)}")
    return {n: found[n] for n in order if n in names}


# ---------------------------------------------------------------- HTML

_HTML_TEMPLATE = """{%- extends 'index.html.j2' -%}
{#- offline: no require.js, MathJax or mermaid from a CDN (docs/DESIGN.md §10) -#}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


def render_html(executed_nb: str | os.PathLike, out_html: str | os.PathLike, prov: dict | None = None) -> Path:
    """Self-contained HTML of an executed notebook: figures embedded, no CDN scripts, set-up code hidden,
    and (given `prov`, see provenance) a first line saying what it was made from.

    Removed: the parameters cells (template and papermill's injected one) and cells tagged `remove-cell`;
    the input of cells tagged `hide-input`; prompts. Markdown and outputs stay.
    """
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    nb = nbformat.read(executed_nb, as_version=4)
    tags = TagRemovePreprocessor(remove_cell_tags={"parameters", "injected-parameters", "remove-cell"},
                                 remove_input_tags={"hide-input"}, enabled=True)
    exporter = HTMLExporter(template_name="lab", template_file="rlearly.html.j2", mathjax_url="",
                            require_js_url="", embed_images=True, exclude_input_prompt=True,
                            exclude_output_prompt=True,
                            extra_loaders=[jinja2.DictLoader({"rlearly.html.j2": _HTML_TEMPLATE})])
    exporter.register_preprocessor(tags, enabled=True)
    title = nb.metadata.get("title") or Path(executed_nb).stem.replace("_", " ")
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    if prov:
        body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + _prov_html(prov), body, count=1)
    out = Path(out_html)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(body, encoding="utf-8")
    tmp.replace(out)
    return out


_INDEX_CSS = """body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:72em;
color:#222;padding:0 1em}h1{font-size:1.6em}h2{font-size:1.2em;margin-top:1.6em}table{border-collapse:collapse;
width:100%}th,td{text-align:left;vertical-align:top;padding:.35em .6em;border-bottom:1px solid #ddd}
th{background:#f4f4f4}td.num{font:13px/1.5 ui-monospace,Menlo,monospace;color:#333}a{color:#0b61a4}
.muted{color:#777;font-size:.9em}"""


def provenance(spec, root) -> dict:
    """What a study's reports are made from: the study and its directory, the commit and version of rlearly,
    when, the model preset and pretraining tokens, the evaluation protocol, and whether it is a smoke test."""
    from rlearly import __version__

    cfg = spec.base_config()
    return {"study": spec.name, "root": str(root), "commit": git_commit() or "", "rlearly": __version__,
            "rendered": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "preset": str(spec.config.get("preset", "")), "pretrain_tokens": int(cfg.pretrain.tokens),
            "eval": f"{'/'.join(spec.eval.splits)}: up to {spec.eval.max_problems} problems x n={spec.eval.n}",
            "smoke": spec.config.get("preset") == "tiny"}


SMOKE_NOTE = ("Smoke test: the tiny preset trains for seconds, so zeros, flat curves and \"not measured\" are "
              "what it should show. Run studies/default.yaml for numbers.")


def _prov_text(p: dict) -> str:
    return (f"study {p['study']} ({p['root']}) · {p['preset'] or 'custom'} model, {p['pretrain_tokens']:,} "
            f"pretraining tokens · {p['eval']} · rlearly {p['rlearly']}"
            + (f", commit {p['commit']}" if p.get("commit") else "") + f" · rendered {p['rendered']}")


def _prov_html(p: dict) -> str:
    banner = f"<p style='{_BANNER}'>{html.escape(SMOKE_NOTE)}</p>" if p.get("smoke") else ""
    return (f"<div style='font:13px system-ui,sans-serif;color:#666;margin:.6em 1em'>{html.escape(_prov_text(p))}"
            f"</div>{banner}")


_BANNER = "background:#fff3cd;border:1px solid #e0c36b;padding:.5em .8em;margin:.6em 1em;font:14px system-ui,sans-serif"


def _headline(res: dict) -> str:
    """The summary's headline (claims.headline) from its results.json; "" without claims."""
    from rlearly.results.claims import COUNT_KEYS, headline_of_counts

    counts = {v: res.get(key) for v, key in COUNT_KEYS.items()}
    return "" if any(n is None for n in counts.values()) else headline_of_counts(counts)


def _key_figure(page: Path) -> str:
    """The largest figure of a rendered report (the template's icons are tiny), as an <img>; "" if none."""
    if not page.is_file():
        return ""
    found = re.findall(r"data:image/png;base64,[A-Za-z0-9+/=]+", page.read_text(encoding="utf-8"))
    return f"<img style='max-width:100%' alt='pass@k curves' src='{max(found, key=len)}'>" if found else ""


def _fmt(v) -> str:
    return "—" if v is None else f"{v:d}" if isinstance(v, int) else f"{v:.4g}"


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_INDEX_CSS}</style></head><body>{body}</body></html>\n")


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


FINDINGS = "FINDINGS.md"  # the committed findings log of reports/: what was tried to make the claims hold


def write_findings(root_reports: str | os.PathLike = "reports") -> Path | None:
    """`<root_reports>/findings.html` from the committed findings log `<root_reports>/FINDINGS.md`, if any."""
    from nbconvert.filters.markdown import markdown2html

    src = Path(root_reports) / FINDINGS
    if not src.is_file():
        return None
    return _write(src.with_name("findings.html"), _page("rlearly findings", markdown2html(src.read_text("utf-8"))))


def write_index(root_reports: str | os.PathLike = "reports", studies=None, max_numbers: int = 10) -> Path:
    """`<root_reports>/index.html`: every `<study>/<name>.html` with the headline numbers of its results.json,
    and the findings log (FINDINGS.md rendered to findings.html) when there is one."""
    root = Path(root_reports)
    folders = [root / s for s in studies] if studies is not None else sorted(p for p in root.glob("*") if p.is_dir())
    parts = ["<h1>rlearly reports</h1>"]
    if write_findings(root):
        parts.append("<p><a href='findings.html'>Findings log</a>: what was tried, with numbers, to make the "
                     "paper's claims show at this scale.</p>")
    for folder in folders:
        pages = {p.stem: p for p in folder.glob("*.html")}
        if not pages:
            continue
        order = [n for n in NOTEBOOKS if n in pages] + sorted(set(pages) - set(NOTEBOOKS))
        order.sort(key=lambda n: n != "summary")  # the answer first
        parts.append(f"<h2>study <code>{html.escape(folder.name)}</code></h2>")
        prov_file = folder / "provenance.json"
        if prov_file.is_file():
            parts.append(_prov_html(json.loads(prov_file.read_text())))
        summary = folder / "summary.results.json"
        head = _headline(json.loads(summary.read_text())) if summary.is_file() else ""
        if head:
            parts.append(f"<p style='font-size:1.3em'><a href='{html.escape(folder.name)}/summary.html'>"
                         f"{html.escape(head)}</a></p>")
        parts.append(_key_figure(folder / "passk_curves.html"))
        parts.append("<table><tr><th>report</th><th>headline numbers (results.json)</th></tr>")
        for name in order:
            res_path = folder / f"{name}.results.json"
            res = json.loads(res_path.read_text()) if res_path.is_file() else {}
            shown = "<br>".join(f"{html.escape(k)} = {_fmt(v)}" for k, v in list(res.items())[:max_numbers])
            more = len(res) - max_numbers
            if more > 0 or res:
                shown += f"<br><a class='muted' href='{html.escape(folder.name)}/{html.escape(res_path.name)}'>" \
                         f"{'all ' + str(len(res)) + ' numbers' if more > 0 else 'results.json'}</a>"
            href = f"{html.escape(folder.name)}/{html.escape(pages[name].name)}"
            parts.append(f"<tr><td><a href='{href}'>{html.escape(name.replace('_', ' '))}</a></td>"
                         f"<td class='num'>{shown or '<span class=muted>no results.json</span>'}</td></tr>")
        parts.append("</table>")
    return _write(root / "index.html", _page("rlearly reports", "\n".join(parts)))


def report(spec, root, *, runs_dir="papermill_runs", reports_dir="reports", names=None, log=print) -> dict:
    """Execute the notebooks (skipping up-to-date ones), render each to HTML, write the index.

    Returns {"notebooks": [...], "html": [...], "index": path}. HTML newer than its notebook is kept.
    """
    import shutil

    spec = _spec(spec)
    notebooks = execute_notebooks(spec, root, names, Path(runs_dir) / spec.name, log)
    pages, prov = [], provenance(spec, root)
    _write(Path(reports_dir) / spec.name / "provenance.json", json.dumps(prov, indent=2) + "\n")
    for nb in notebooks:
        page = Path(reports_dir) / spec.name / f"{nb.stem}.html"
        if not page.is_file() or page.stat().st_mtime < nb.stat().st_mtime:
            render_html(nb, page, prov)
            shutil.copy2(nb.with_name(f"{nb.stem}.results.json"), page.with_name(f"{nb.stem}.results.json"))
            log(f"report {page}")
        pages.append(page)
    return {"notebooks": notebooks, "html": pages, "index": write_index(reports_dir)}
