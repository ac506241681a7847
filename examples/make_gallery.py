"""Regenerate the figure gallery (docs/gallery.md) from the numbered tutorials.

    python examples/make_gallery.py [--only NN ...] [--smoke] [--runs-dir DIR] [--docs-dir DIR]

Runs every ``examples/NN_name.py`` with its default settings, each in its own interpreter
(``--out RUNS/NN_name``), copies the figures its module-level ``GALLERY`` list names (read
from its syntax tree, without importing it) to ``DOCS/gallery/NN_file.png`` together with
its ``summary.json`` (``DOCS/gallery/NN_summary.json``), and rewrites ``DOCS/gallery.md``
from the examples and ``DOCS/gallery/`` (every file is replaced atomically).  With
``--only`` the other examples keep the figures they already have there.  An example that
fails is reported and leaves its earlier figures alone; the exit status is then 1.

``--smoke`` runs the examples with their tiny test settings, into ``runs/gallery_smoke``
(runs and docs) unless ``--runs-dir``/``--docs-dir`` say otherwise: smoke figures are for a
quick check and never belong in docs/.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_GLOB = "[0-9][0-9]_*.py"
HIDDEN_SUMMARY_KEYS = {"figures", "outputs"}    # file lists: the gallery shows the figures


# ---------------------------------------------------------------------------------------
# reading an example without running it
# ---------------------------------------------------------------------------------------
def gallery_entries(path: Path) -> list[tuple[str, str]]:
    """The example's ``GALLERY = [(file, caption), ...]``, read from its syntax tree
    (literal strings only; ``[]`` when it defines none)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "GALLERY"
                                                for t in node.targets):
            return [(str(f), str(c)) for f, c in ast.literal_eval(node.value)]
    return []


def first_paragraph(path: Path) -> str:
    """The first paragraph of the example's module docstring, on one line."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    para = doc.strip().split("\n\n")[0]
    return " ".join(para.split()).replace("``", "`")     # reST literals to markdown


def number(path: Path) -> str:
    """``"08"`` for ``08_event_data.py``."""
    return path.name[:2]


def gallery_name(path: Path, figure: str) -> str:
    """The figure's file name in docs/gallery: prefixed by the example's number, once."""
    prefix = f"{number(path)}_"
    return figure if figure.startswith(prefix) else prefix + figure


def title_and_text(path: Path) -> tuple[str, str]:
    """The example's title and what it shows.  A docstring that opens with its number and
    a title up to a colon (``"08 Event data: turn images ..."``) gives both; otherwise the
    title comes from the file name (``"08 Event data"``) and the text is the whole first
    paragraph."""
    para = first_paragraph(path)
    m = re.match(rf"{number(path)}\s+([^:.]{{1,60}}):\s+(\S.*)", para)
    if m:
        text = m.group(2)
        return f"{number(path)} {m.group(1).strip()}", text[:1].upper() + text[1:]
    words = path.stem[3:].replace("_", " ")
    return f"{number(path)} {words[:1].upper()}{words[1:]}", para


def find_examples(examples_dir: Path, only: list[str] | None) -> list[Path]:
    """The numbered examples in order; ``only``: their two-digit numbers (ValueError for a
    number that names no example)."""
    found = sorted(examples_dir.glob(EXAMPLE_GLOB))
    if only:
        wanted = {f"{int(n):02d}" for n in only}
        missing = sorted(wanted - {number(p) for p in found})
        if missing:
            raise ValueError(f"--only {' '.join(missing)}: no example "
                             f"{examples_dir}/{missing[0]}_*.py")
        found = [p for p in found if number(p) in wanted]
    return found


# ---------------------------------------------------------------------------------------
# running an example and keeping its figures
# ---------------------------------------------------------------------------------------
def run_example(path: Path, out: Path, smoke: bool, timeout: float) -> tuple[bool, str]:
    """Run one example in a fresh interpreter from the repository root; ``(ok, log tail)``."""
    env = dict(os.environ, MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join(p for p in [str(ROOT), os.environ.get("PYTHONPATH", "")] if p))
    cmd = [sys.executable, str(path), "--out", str(out)] + (["--smoke"] if smoke else [])
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:g} s"
    tail = (proc.stdout[-1500:] + "\n" + proc.stderr[-1500:]).strip()
    return proc.returncode == 0, tail


def _file_mode() -> int:
    """The mode a new file gets here (0666 less the umask; mkstemp's files are 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_copy(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` through a temporary file in ``dst``'s folder."""
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in its folder."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def collect(path: Path, out: Path, fig_dir: Path) -> list[str]:
    """Copy the example's GALLERY figures and summary.json from ``out`` into ``fig_dir``
    (checked first, copied only when all are there); returns the problems (empty: done)."""
    entries = gallery_entries(path)
    needed = [out / f for f, _ in entries] + [out / "summary.json"]
    missing = [str(p) for p in needed if not p.is_file()]
    if not entries:
        missing.insert(0, "GALLERY names no figure")
    if missing:
        return missing
    for f, _ in entries:
        atomic_copy(out / f, fig_dir / gallery_name(path, f))
    atomic_copy(out / "summary.json", fig_dir / f"{number(path)}_summary.json")
    return []


# ---------------------------------------------------------------------------------------
# the markdown
# ---------------------------------------------------------------------------------------
def _cell(value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, float) and abs(value) >= 1e4:
        return f"{value:,.0f}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and abs(value) >= 1e4:
        return f"{value:,d}"
    return str(value).replace("|", "\\|")


def summary_table(summary: dict, max_rows: int = 24) -> list[str]:
    """The numbers (and short strings) of a summary.json as a two-column markdown table."""
    rows = [(k, v) for k, v in summary.items()
            if k not in HIDDEN_SUMMARY_KEYS and not isinstance(v, (dict, list))
            and not (isinstance(v, str) and len(v) > 60)]
    if not rows:
        return []
    lines = ["| summary.json | value |", "|---|---|"]
    lines += [f"| `{k}` | {_cell(v)} |" for k, v in rows[:max_rows]]
    if len(rows) > max_rows:
        lines.append(f"| ... | {len(rows) - max_rows} more in summary.json |")
    return lines


HEADER = """# Gallery

Figures made by the numbered tutorials in `examples/`, each a plain script whose cells
(`# %%`) open as a notebook in VS Code or jupytext. Regenerate this page and its figures with

    python examples/make_gallery.py            # all examples (a few minutes)
    python examples/make_gallery.py --only 08  # one example; the others keep their figures

which runs each example with its defaults into `runs/gallery/NN_name/`, copies the figures
named by the example's `GALLERY` list and its `summary.json` into `docs/gallery/`, and
rewrites this page. The numbers below come from that run (accuracies on the bundled
5000/1000-image Fashion-MNIST subset; times depend on the machine and its load).

Each example `examples/NN_name.py` says what it shows in its docstring, takes `--out DIR`
(default `runs/NN_name`), `--seed` and `--smoke` (tiny settings, used by the test suite:
`tests/examples/test_examples.py` runs every example that way), writes only into `--out`
(its figures as PNG and a `summary.json`), and names its gallery figures in a module-level
`GALLERY = [(file, caption), ...]` of literal strings.
"""


def example_section(path: Path, fig_dir: Path, docs_dir: Path, smoke: bool) -> list[str]:
    """The markdown of one example: title, what it shows, command, figures, numbers."""
    rel = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
    head, text = title_and_text(path)
    lines = [f"## {head}", "", text, "",
             f"    python {rel}" + (" --smoke" if smoke else ""), ""]
    shown = 0
    for f, caption in gallery_entries(path):
        png = fig_dir / gallery_name(path, f)
        if png.is_file():
            link = png.relative_to(docs_dir).as_posix()
            lines += [f"![{caption}]({link})", "", f"*{caption}*", ""]
            shown += 1
    if not shown:
        lines += [f"(No figures yet: `python examples/make_gallery.py --only {number(path)}`.)", ""]
    summary_file = fig_dir / f"{number(path)}_summary.json"
    if summary_file.is_file():
        table = summary_table(json.loads(summary_file.read_text()))
        if table:
            lines += table + [""]
    return lines


def gallery_markdown(examples: list[Path], fig_dir: Path, docs_dir: Path, smoke: bool) -> str:
    """The whole page (every example, in order)."""
    lines = [HEADER]
    if smoke:
        lines += ["**Smoke settings** (tiny runs for a quick check): not the gallery's "
                  "figures.", ""]
    for path in examples:
        lines += example_section(path, fig_dir, docs_dir, smoke)
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--only", nargs="+", metavar="NN", default=None,
                    help="run only these examples (two-digit numbers); the page lists all")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny settings (a quick check; defaults to runs/gallery_smoke)")
    ap.add_argument("--runs-dir", default=None,
                    help="where the examples write (default runs/gallery, with --smoke "
                         "runs/gallery_smoke/runs)")
    ap.add_argument("--docs-dir", default=None,
                    help="folder of gallery.md and gallery/ (default docs, with --smoke "
                         "runs/gallery_smoke/docs)")
    ap.add_argument("--examples-dir", default=str(ROOT / "examples"), help=argparse.SUPPRESS)
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per example")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    smoke_root = ROOT / "runs" / "gallery_smoke"
    runs_dir = Path(args.runs_dir or (smoke_root / "runs" if args.smoke else ROOT / "runs" / "gallery"))
    docs_dir = Path(args.docs_dir or (smoke_root / "docs" if args.smoke else ROOT / "docs"))
    examples_dir = Path(args.examples_dir).resolve()
    try:
        every = find_examples(examples_dir, None)
        chosen = find_examples(examples_dir, args.only)
    except ValueError as e:
        print(f"make_gallery: {e}", file=sys.stderr)
        return 2
    if not every:
        print(f"make_gallery: no examples {examples_dir}/{EXAMPLE_GLOB}", file=sys.stderr)
        return 2
    fig_dir = docs_dir / "gallery"
    fig_dir.mkdir(parents=True, exist_ok=True)
    runs_dir.mkdir(parents=True, exist_ok=True)

    failed = []
    for path in chosen:
        out = runs_dir / path.stem
        t0 = time.perf_counter()
        print(f"make_gallery: {path.name} -> {out}", flush=True)
        ok, log = run_example(path, out, args.smoke, args.timeout)
        problems = collect(path, out, fig_dir) if ok else [f"failed:\n{log}"]
        if problems:
            failed.append(path.name)
            print(f"make_gallery: {path.name}: " + "; ".join(problems), file=sys.stderr)
        else:
            print(f"make_gallery: {path.name} done in {time.perf_counter() - t0:.0f} s", flush=True)
    page = docs_dir / "gallery.md"
    atomic_write_text(page, gallery_markdown(every, fig_dir, docs_dir, args.smoke))
    print(f"make_gallery: wrote {page}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
