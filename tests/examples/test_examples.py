"""Every numbered tutorial in examples/ runs with its tiny settings, so an API change that
breaks an example fails here.

Each ``examples/NN_name.py`` defines ``main(argv) -> dict`` and accepts ``--out DIR`` and
``--smoke`` (tiny settings: a few samples, one short epoch); it writes its figures into
``DIR`` and returns a JSON-able summary.  ``GALLERY`` lists the figures the gallery shows.
"""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("[0-9][0-9]_*.py"))


def load_example(path: Path):
    """Import one example file as a module (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_with_smoke_settings(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)          # anything written relative to the cwd stays in tmp
    module = load_example(path)
    doc = (module.__doc__ or "").strip()
    assert doc, f"{path.name}: the module docstring must say what the example shows"
    out = tmp_path / "out"
    summary = module.main(["--smoke", "--out", str(out)])
    assert isinstance(summary, dict) and summary, f"{path.name}: main() must return a summary"
    json.dumps(summary, default=float)   # JSON-able
    figures = sorted(p.name for p in out.glob("*.png"))
    assert figures, f"{path.name}: wrote no figure into --out"
    for name, caption in getattr(module, "GALLERY", []):
        assert name in figures, f"{path.name}: GALLERY names {name}, which was not written"
        assert caption.strip()
    text = path.read_text()
    assert "# %%" in text, f"{path.name}: cells are marked with '# %%'"


def test_examples_are_numbered_without_gaps():
    numbers = [int(re.match(r"(\d\d)_", p.name).group(1)) for p in EXAMPLES]
    assert numbers == list(range(1, len(numbers) + 1)), numbers
