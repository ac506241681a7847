"""Event-driven simulator: runs exported spiking networks spike by spike.

    net = eventsim.load("model.h5")                 # validate + compile (no Numba yet)
    rec = eventsim.Simulator(net).run(x)            # x: [T, B, *input_shape] or EventBatch
    rec.readout, rec.predictions, rec.spikes[layer], rec.membrane[layer], rec.synaptic_events
    eventsim.plot.raster(...), eventsim.inputs.rate_code(...)   # submodules as attributes
    eventsim.nir.export("model.h5", "net.nir", dt=1e-3), eventsim.nir.load("net.nir", dt=...)

``eventsim.plot``, ``eventsim.nir`` and ``eventsim.cli`` are imported on first access (PEP 562 module
``__getattr__``), so ``import eventsim`` stays light: no matplotlib, no argument parser.
"""
import importlib

from snncore import modelfile

from . import inputs, recording
from .inputs import EventBatch
from snncore.modelfile import Model, ModelFormatError, read_model, write_model
from .network import CompiledNetwork, UnsupportedModelError, load
from .recording import Recording, RecordingFormatError, SpikeTrain
from .simulator import Simulator
from .efficiency import CostTable, EfficiencyReport, efficiency_report
from ._version import __version__
from snncore.threads import get_num_threads, set_num_threads, threads, threads_info

#: submodules imported on first attribute access (``eventsim.plot``, ``eventsim.cli``, ...)
_LAZY_SUBMODULES = ("cli", "fileio", "kernels", "nir", "plot")

__all__ = ["inputs", "modelfile", "recording", "plot", "Model", "ModelFormatError", "read_model",
           "write_model", "load", "CompiledNetwork", "UnsupportedModelError", "Simulator", "Recording",
           "RecordingFormatError", "SpikeTrain", "EventBatch", "efficiency_report", "CostTable",
           "EfficiencyReport", "set_num_threads", "get_num_threads", "threads", "threads_info"]


def __getattr__(name: str):
    """Import the submodule ``eventsim.<name>`` the first time it is reached as an attribute."""
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBMODULES))
