"""Event-driven simulator: runs exported spiking networks spike by spike.

    net = eventsim.load("model.h5")                 # validate + compile (no Numba yet)
    rec = eventsim.Simulator(net).run(x)            # x: [T, B, *input_shape] or EventBatch
    rec.readout, rec.predictions, rec.spikes[layer], rec.membrane[layer], rec.synaptic_events
"""
from snncore import modelfile
from .inputs import EventBatch
from snncore.modelfile import Model, ModelFormatError, read_model, write_model
from .network import CompiledNetwork, UnsupportedModelError, load
from .recording import Recording, RecordingFormatError, SpikeTrain
from .simulator import Simulator

__all__ = ["modelfile", "Model", "ModelFormatError", "read_model", "write_model", "load",
           "CompiledNetwork", "UnsupportedModelError", "Simulator", "Recording",
           "RecordingFormatError", "SpikeTrain", "EventBatch"]
