"""examples/make_gallery.py: runs the numbered examples, copies the figures their GALLERY
lists name and writes the gallery page; here always into temporary folders (``--runs-dir``,
``--docs-dir``), so the committed docs/ stay untouched."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "make_gallery.py"
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


def make_gallery(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns
            for p in folder.rglob("*") if p.is_file()}


def image_links(page: Path) -> list[str]:
    return IMAGE.findall(page.read_text())


def test_smoke_gallery_of_one_example_in_a_temporary_docs_dir(tmp_path):
    docs_before = snapshot(ROOT / "docs")
    runs, docs = tmp_path / "runs", tmp_path / "docs"
    proc = make_gallery("--smoke", "--only", "10", "--runs-dir", str(runs), "--docs-dir",
                        str(docs), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    page = docs / "gallery.md"
    text = page.read_text()
    links = image_links(page)
    assert links, "the page shows no figure"
    for link in links:
        assert (docs / link).is_file(), f"gallery.md links {link}, which does not exist"
    assert all(link.startswith("gallery/10_") for link in links)
    # every numbered example has its section, run or not
    for path in sorted((ROOT / "examples").glob("[0-9][0-9]_*.py")):
        assert f"\n## {path.name[:2]} " in text, f"no section for {path.name}"
    assert "python examples/10_efficiency_energy.py --smoke" in text
    assert (docs / "gallery" / "10_summary.json").is_file()
    assert "**Smoke settings**" in text
    assert snapshot(ROOT / "docs") == docs_before, "make_gallery touched the committed docs/"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs", "runs"]


FAKE = '''"""{nn} Fake {nn}: writes {what}.

More text that the gallery does not show.
"""
import argparse, json, sys
from pathlib import Path
GALLERY = [("fig.png", "caption {nn}")]
ap = argparse.ArgumentParser()
ap.add_argument("--out")
ap.add_argument("--smoke", action="store_true")
a, _ = ap.parse_known_args()
out = Path(a.out)
out.mkdir(parents=True, exist_ok=True)
if {fail}:
    sys.exit("broken on purpose")
(out / "fig.png").write_bytes(b"png {nn}")
(out / "summary.json").write_text(json.dumps({{"accuracy": 0.5, "events": 123456.0, "ok": True}}))
'''


def write_fake(folder: Path, nn: str, fail: bool) -> None:
    (folder / f"{nn}_fake.py").write_text(FAKE.format(nn=nn, fail=fail, what="a figure"))


def test_a_failing_example_keeps_its_earlier_figures_and_the_exit_status_says_so(tmp_path):
    ex, runs, docs = tmp_path / "ex", tmp_path / "runs", tmp_path / "docs"
    ex.mkdir()
    write_fake(ex, "01", fail=False)
    write_fake(ex, "02", fail=False)
    args = ("--examples-dir", str(ex), "--runs-dir", str(runs), "--docs-dir", str(docs))
    assert make_gallery(*args, cwd=tmp_path).returncode == 0
    assert (docs / "gallery" / "02_fig.png").read_bytes() == b"png 02"
    write_fake(ex, "02", fail=True)
    (runs / "02_fake" / "fig.png").write_bytes(b"stale")   # a failed run's leftovers
    proc = make_gallery(*args, cwd=tmp_path)
    assert proc.returncode == 1
    assert "02_fake.py" in proc.stderr and "broken on purpose" in proc.stderr
    assert (docs / "gallery" / "02_fig.png").read_bytes() == b"png 02"
    text = (docs / "gallery.md").read_text()
    assert "## 01 Fake 01" in text and "## 02 Fake 02" in text
    assert "Writes a figure." in text and "More text" not in text
    assert "| `events` | 123,456 |" in text and "| `ok` | true |" in text
    assert image_links(docs / "gallery.md") == ["gallery/01_fig.png", "gallery/02_fig.png"]
    assert json.loads((docs / "gallery" / "01_summary.json").read_text())["accuracy"] == 0.5


def test_only_names_an_existing_example(tmp_path):
    proc = make_gallery("--only", "99", "--runs-dir", str(tmp_path / "r"), "--docs-dir",
                        str(tmp_path / "d"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "--only 99" in proc.stderr
    assert not (tmp_path / "d").exists()
