"""The repository documents itself: no file points outside it, and the README's links resolve.

A clone has no shared design directory beside it; the equations and
conventions live in ``docs/methods.md`` and ``docs/architecture.md``.  These tests read every
file git tracks (every file under the root, skipping hidden and build directories, when git
is not available) and the README's markdown links into ``docs/``.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# spelled in pieces so this file does not match itself
FORBIDDEN = ("../" + "shared", "METHODS" + ".md", "ARCHITECTURE" + ".md")
_SKIP_DIRS = {"__pycache__", "build", "dist", "runs", "node_modules"}
_BINARY_SUFFIXES = {".gz", ".h5", ".hdf5", ".npz", ".npy", ".png", ".pdf", ".bin", ".pyc", ".so"}

_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def tracked_files() -> list[Path]:
    """Files git tracks under ROOT, or every non-hidden file when git is unavailable."""
    if shutil.which("git") and (ROOT / ".git").exists():
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
        return [ROOT / p for p in out.stdout.decode().split("\0") if p]
    files = []
    for p in ROOT.rglob("*"):
        rel = p.relative_to(ROOT).parts
        if p.is_file() and not any(part.startswith(".") or part in _SKIP_DIRS for part in rel):
            files.append(p)
    return files


def outside_references(path: Path) -> list[str]:
    """``"file:line: text"`` for every line of ``path`` that names a forbidden target."""
    if path.suffix in _BINARY_SUFFIXES or not path.is_file():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return []
    rel = path.relative_to(ROOT)
    return [f"{rel}:{n}: {line.strip()}" for n, line in enumerate(text.splitlines(), 1)
            if any(s in line for s in FORBIDDEN)]


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a markdown heading: lower case, punctuation dropped, spaces to -."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors(md: Path) -> set[str]:
    heads = re.findall(r"^#{1,6}\s+(.*?)\s*#*\s*$", md.read_text(encoding="utf-8"), flags=re.M)
    return {github_slug(h) for h in heads}


def docs_links(md: Path) -> list[str]:
    """Targets of the markdown links in ``md`` that point into ``docs/``."""
    targets = _LINK.findall(md.read_text(encoding="utf-8"))
    return [t for t in targets if t.removeprefix("./").startswith("docs/")]


def broken_links(md: Path) -> list[str]:
    """Links of ``md`` into ``docs/`` whose file or ``#anchor`` does not exist."""
    bad = []
    for target in docs_links(md):
        file_part, _, fragment = target.partition("#")
        path = (md.parent / file_part).resolve()
        if not path.is_file():
            bad.append(f"{target}: no file {path.relative_to(ROOT)}")
        elif fragment and fragment not in anchors(path):
            bad.append(f"{target}: no heading with anchor #{fragment} in {file_part}")
    return bad


# ---------------------------------------------------------------------------------------
def test_no_file_points_outside_the_repository():
    hits = [h for p in tracked_files() for h in outside_references(p)]
    assert not hits, "references to files a clone does not have:\n" + "\n".join(hits)


def test_outside_reference_detector_finds_each_form(tmp_path, monkeypatch):
    """The scan above can fail: each forbidden form is caught in a file under the root."""
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    for i, needle in enumerate(FORBIDDEN):
        f = tmp_path / f"m{i}.py"
        f.write_text(f'"""See {needle} section 1."""\n')
        assert outside_references(f) == [f"m{i}.py:1: \"\"\"See {needle} section 1.\"\"\""]
    ok = tmp_path / "ok.py"
    ok.write_text('"""See docs/methods.md section 2 (and docs/architecture.md)."""\n')
    assert outside_references(ok) == []


def test_readme_links_to_the_project_docs():
    readme = ROOT / "README.md"
    targets = {t.partition("#")[0].removeprefix("./") for t in docs_links(readme)}
    assert {"docs/methods.md", "docs/architecture.md", "docs/model-format.md"} <= targets, targets


def test_readme_links_into_docs_resolve():
    bad = broken_links(ROOT / "README.md")
    assert not bad, "broken links in README.md:\n" + "\n".join(bad)


def test_broken_link_detector(tmp_path, monkeypatch):
    """A missing file and a missing anchor are both reported; a good link is not."""
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Title\n\n## 2. The canonical neuron\n")
    md = tmp_path / "README.md"
    md.write_text("[ok](docs/a.md#2-the-canonical-neuron) [f](docs/b.md) "
                  "[x](docs/a.md#nothing) [web](https://example.org/docs/x)\n")
    bad = broken_links(md)
    assert len(bad) == 2 and bad[0].startswith("docs/b.md") and "#nothing" in bad[1], bad


@pytest.mark.parametrize("heading, slug", [
    ("2. The canonical neuron", "2-the-canonical-neuron"),
    ("4. Surrogate gradients and smooth mode", "4-surrogate-gradients-and-smooth-mode"),
    ("Import rules (today)", "import-rules-today"),
])
def test_github_slug(heading, slug):
    assert github_slug(heading) == slug
