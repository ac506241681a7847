"""``training.from_nir``: a NIR graph as a trainable network (docs/nir.md)."""
from __future__ import annotations

import numpy as np

from .export import to_network
from .layers import Sequential


def from_nir(path, *, dt: float | None = None, reset: str = "auto",
             discretisation: str = "auto", dtype=np.float32) -> Sequential:
    """Read a NIR file (:func:`snncore.nir.load`, the same reader as ``eventsim.nir.load``,
    with the same arguments) and rebuild it as a dense-engine network
    (:func:`training.to_network`): Linear, Conv2d, AvgPool2d, Flatten, LIF/IF, CubaLIF and
    one-step self-recurrence (RecurrentLIF, recurrent CubaLIF) are trainable; the output is
    the readout's per-step input ``[T, B, n_out]``.

    Raises what ``load`` raises, and ValueError for graphs the dense engine does not run
    (a leaky readout, i.e. an LI/CubaLI/I output node with a decay > 0; feedback between
    layers or delays > 1; identity projections inserted for scaled inputs are sparse and
    refused by ``to_network``).  Call ``.train()`` on the result before fine-tuning.
    """
    from snncore import nir as snn_nir   # lazily: `import training` does not load nir/h5py

    model = snn_nir.load(path, dt=dt, reset=reset, discretisation=discretisation, dtype=dtype)
    return to_network(model)
