"""`make lab`: JupyterLab serves the notebooks, lists the project's kernel, and a notebook run by that kernel
imports rlearly and finds studies from $RLEARLY_ROOT (what `make lab` sets), not from notebooks/."""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read().decode()


@pytest.mark.notebooks
def test_jupyterlab_serves_the_notebooks_and_their_kernel_runs_rlearly(tmp_path):
    from rlearly.results import report

    report.ensure_kernel()  # what `make lab` does first
    port, token = _free_port(), "rlearly-test"
    env = {**os.environ, "RLEARLY_ROOT": str(tmp_path), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt")}
    lab = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
                            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={REPO / 'notebooks'}",
                            *(["--allow-root"] if os.geteuid() == 0 else [])],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO)
    try:
        base, deadline = f"http://127.0.0.1:{port}", time.time() + 90
        while True:
            try:
                status, _ = _get(f"{base}/api/status?token={token}")
                break
            except OSError:
                assert lab.poll() is None, lab.stderr.read().decode()[-2000:]
                assert time.time() < deadline, "JupyterLab did not answer in 90 s"
                time.sleep(0.5)
        status, page = _get(f"{base}/lab?token={token}")
        assert status == 200 and "JupyterLab" in page
        _, contents = _get(f"{base}/api/contents?token={token}")
        assert "samples.ipynb" in {f["name"] for f in json.loads(contents)["content"]}
        _, specs = _get(f"{base}/api/kernelspecs?token={token}")
        kernel = json.loads(specs)["default"]
        assert kernel == report.KERNEL
    finally:
        lab.terminate()
        lab.wait(30)
    (tmp_path / "runs" / "x").mkdir(parents=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import rlearly\nfrom rlearly import analysis\nprint(rlearly.__version__, analysis.resolve_path('runs/x'))")])
    from nbclient import NotebookClient

    NotebookClient(nb, kernel_name=kernel, resources={"metadata": {"path": str(REPO / "notebooks")}}).execute(env=env)
    from rlearly import __version__

    assert nb.cells[0].outputs[0]["text"].split() == [__version__, str((tmp_path / "runs" / "x").resolve())]
