"""Dense, vectorised NumPy/Numba training engine for spiking neural networks.

Arrays are time-major ``[T, B, *features]``; every backward pass is derived by hand.
"""
from .config import (default_dtype, get_default_dtype, is_smooth_mode, set_default_dtype,
                     set_smooth_mode, smooth_mode)
from .conv import Conv2d
from .dropout import Dropout
from .layers import Flatten, Linear, Sequential
from .norm import BatchNorm1d, BatchNorm2d
from .pooling import AvgPool2d, MaxPool2d
from .module import Module, Parameter
from .neurons import IF, LIF, NeuronParams, canonical_step
from .klif import KLIF
from .recurrent import CubaLIF, RecurrentLIF
from .ws import Scale, WSConv2d, WSLinear
from snncore import datasets, encoding
from snncore.threads import get_num_threads, set_num_threads, threads, threads_info
from . import losses, msg, optim, surrogates
from .msg import MSGSchedule
from .export import export, feedback_from_model, to_model, to_network
from .nir_import import from_nir
from .trainer import History, TrainingDiverged, TrainingInterrupted, evaluate, fit
from . import online
from .feedback import FeedbackConv, FeedbackMLP
from . import ide
from .ide import IDEConvergenceError

__all__ = [
    "Module", "Parameter", "Sequential", "Linear", "Flatten", "Conv2d", "AvgPool2d", "MaxPool2d",
    "BatchNorm1d", "BatchNorm2d", "Dropout", "LIF", "IF", "KLIF", "RecurrentLIF", "CubaLIF", "NeuronParams",
    "canonical_step", "FeedbackMLP", "FeedbackConv", "ide", "IDEConvergenceError", "WSLinear", "WSConv2d", "Scale", "MSGSchedule", "msg", "datasets", "encoding", "optim", "fit", "evaluate", "History", "TrainingDiverged", "TrainingInterrupted", "export", "to_model", "to_network", "from_nir", "feedback_from_model", "losses", "surrogates", "online", "set_default_dtype", "get_default_dtype",
    "default_dtype", "set_smooth_mode", "is_smooth_mode", "smooth_mode",
    "set_num_threads", "get_num_threads", "threads", "threads_info",
]
