"""Every numbered tutorial in examples/ runs with its tiny settings, so an API change that
breaks an example fails here.

The convention (docs/gallery.md): ``examples/NN_name.py`` is a plain script whose cells are
marked ``# %%``; its first cell parses ``--out DIR`` and ``--smoke`` (tiny settings) with
``parse_known_args`` (so it also runs as a notebook); it writes its figures (PNG) and a
``summary.json`` into ``DIR``.  A module-level ``GALLERY = [(file, caption), ...]`` names
the figures the gallery shows.  Each runs here in its own interpreter, as a user runs it.
"""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("[0-9][0-9]_*.py"))


def gallery_entries(path: Path) -> list[tuple[str, str]]:
    """The ``GALLERY`` list of an example, read from its syntax tree (without running it)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "GALLERY" for t in node.targets):
            return [tuple(e) for e in ast.literal_eval(node.value)]
    return []


def run_example(path: Path, out: Path, *args: str, cwd: Path, timeout: float = 600) -> dict:
    """Run one example in a fresh interpreter; returns its ``summary.json``."""
    env = dict(os.environ, MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, str(path), "--out", str(out), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{path.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    summary_path = out / "summary.json"
    assert summary_path.is_file(), f"{path.name}: wrote no summary.json into --out"
    return json.loads(summary_path.read_text())


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_with_smoke_settings(path, tmp_path):
    text = path.read_text()
    doc = ast.get_docstring(ast.parse(text))
    assert doc and doc.strip(), f"{path.name}: the module docstring must say what the example shows"
    assert "# %%" in text, f"{path.name}: cells are marked with '# %%'"
    out = tmp_path / "out"
    summary = run_example(path, out, "--smoke", cwd=tmp_path)
    assert isinstance(summary, dict) and summary
    figures = {p.name for p in out.glob("*.png")}
    assert figures, f"{path.name}: wrote no figure into --out"
    entries = gallery_entries(path)
    assert entries, f"{path.name}: GALLERY names no figure"
    for name, caption in entries:
        assert name in figures, f"{path.name}: GALLERY names {name}, which was not written"
        assert caption.strip()
    leftovers = [p for p in tmp_path.iterdir() if p.name != "out"]
    assert not leftovers, f"{path.name} wrote outside --out: {leftovers}"


def test_examples_are_numbered_without_gaps():
    numbers = [int(re.match(r"(\d\d)_", p.name).group(1)) for p in EXAMPLES]
    assert numbers == list(range(1, len(numbers) + 1)), numbers
