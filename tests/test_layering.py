"""The import rules of docs/architecture.md, checked on the source and at run time.

    examples/, benchmarks/, eventsim/cli.py     may import everything
    training/          eventsim/                never import each other
    snncore/                                    imports neither engine

Every import statement is read from the syntax tree (including imports inside functions),
so a lazy import cannot hide a dependency; the run-time checks import each package in a fresh
interpreter and look at ``sys.modules``.
"""
from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# package -> top-level packages it must never import; modules exempt from the rule
RULES = {
    "snncore": ({"training", "eventsim"}, set()),
    "training": ({"eventsim"}, set()),
    "eventsim": ({"training"}, {"cli.py"}),
}


def _imported_packages(path: Path) -> dict[str, int]:
    """Top-level package names imported anywhere in ``path`` -> first line number."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            found.setdefault(name.split(".")[0], node.lineno)
    return found


def _modules(package: str):
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(RULES))
def test_source_imports_follow_the_layers(package):
    forbidden, exempt = RULES[package]
    assert _modules(package), f"no modules found under {package}/"
    violations = []
    for path in _modules(package):
        if path.name in exempt and path.parent == ROOT / package:
            continue
        for name, line in _imported_packages(path).items():
            if name in forbidden:
                violations.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not violations, "layering broken:\n" + "\n".join(violations)


def test_the_checker_sees_lazy_imports(tmp_path):
    """The rule check reads imports inside functions too (so it can fail)."""
    mod = tmp_path / "m.py"
    mod.write_text("def f():\n    from training.export import to_model\n    import eventsim.kernels\n")
    assert set(_imported_packages(mod)) == {"training", "eventsim"}


def _loaded_after(code: str) -> list[str]:
    probe = textwrap.dedent(code) + textwrap.dedent("""
        import sys
        print("\\n".join(sorted(m for m in sys.modules
                               if m.split(".")[0] in ("training", "eventsim", "snncore", "numba"))))
    """)
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    return out.split()


def test_import_training_loads_no_simulator():
    loaded = _loaded_after("import training")
    assert not [m for m in loaded if m.startswith("eventsim")], loaded


def test_import_eventsim_loads_no_training():
    loaded = _loaded_after("import eventsim")
    assert not [m for m in loaded if m.startswith("training")], loaded


def test_import_snncore_loads_neither_engine_nor_numba():
    loaded = _loaded_after("import snncore.modelfile, snncore.encoding, snncore.datasets, "
                           "snncore.fileio, snncore.checks")
    assert not [m for m in loaded if m.split(".")[0] in ("training", "eventsim", "numba")], loaded


# run first in a probe: makes ``import training`` (and its submodules) fail
_BLOCK_TRAINING = ("import sys, importlib.abc; "
                   "Block = type('Block', (importlib.abc.MetaPathFinder,), {'find_spec': "
                   "lambda self, name, path=None, target=None: (_ for _ in ()).throw("
                   "ImportError('training is blocked in this test')) "
                   "if name.split('.')[0] == 'training' else None}); "
                   "sys.meta_path.insert(0, Block())")


def test_simulator_runs_a_model_file_without_the_training_package(tmp_path):
    """``eventsim`` runs a model file with ``training`` made unimportable."""
    from tests.eventsim.test_network import small_mlp
    from snncore import modelfile as mf

    path = mf.write_model(small_mlp(), tmp_path / "m.h5")
    code = f"""
        {_BLOCK_TRAINING}
        import numpy as np, eventsim
        x = (np.random.default_rng(0).random((6, 2, 8)) < 0.5).astype(np.float32)
        rec = eventsim.Simulator(eventsim.load({str(path)!r})).run(x)
        assert rec.readout.shape == (6, 2, 3)
        rec = eventsim.Simulator(eventsim.load({str(path)!r})).run(eventsim.inputs.direct(x[0], 6))
    """
    loaded = _loaded_after(code)
    assert not [m for m in loaded if m.startswith("training")], loaded


def test_command_line_simulates_without_the_training_package():
    """``eventsim simulate`` (no --compare-dense) needs only snncore and eventsim."""
    model = ROOT / "tests" / "data" / "fmnist_mlp.h5"
    code = f"""
        {_BLOCK_TRAINING}
        from eventsim import cli
        rc = cli.main(["simulate", {str(model)!r}, "--dataset", "fashion-mnist-small",
                       "--limit", "4", "--no-progress"])
        assert rc == 0, rc
    """
    loaded = _loaded_after(code)
    assert not [m for m in loaded if m.startswith("training")], loaded
