"""The public surface of ``import eventsim``: submodules reachable as attributes."""
import subprocess
import sys

import pytest


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_plot_reachable_after_plain_import_without_matplotlib():
    code = ("import sys, eventsim\n"
            "print('matplotlib' in sys.modules, 'eventsim.plot' in sys.modules)\n"
            "f = eventsim.plot.raster\n"
            "print(callable(f), eventsim.inputs.rate_code.__name__, 'matplotlib' in sys.modules)")
    first, second = _run(code).splitlines()
    assert first == "False False"          # import eventsim loads neither plot nor matplotlib
    assert second == "True rate_code False"  # eventsim.plot works; matplotlib waits for a figure


@pytest.mark.parametrize("name", ["plot", "cli", "inputs", "recording", "modelfile"])
def test_submodules_are_attributes(name):
    import importlib

    import eventsim

    assert getattr(eventsim, name) is importlib.import_module(f"eventsim.{name}")
    assert name in dir(eventsim)


def test_unknown_attribute_names_itself():
    import eventsim

    with pytest.raises(AttributeError, match="no attribute 'plots'"):
        eventsim.plots
