"""Event-driven simulator: runs exported spiking networks spike by spike."""
from . import modelfile
from .modelfile import Model, ModelFormatError, read_model, write_model

__all__ = ["modelfile", "Model", "ModelFormatError", "read_model", "write_model"]
