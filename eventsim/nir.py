"""NIR export and import for the simulator: :mod:`snncore.nir` under the name the simulator's
users reach first (``eventsim.nir.export``, ``eventsim.nir.load``).  The code lives in
``snncore`` because ``training.from_nir`` needs it too and the engines never import each
other (docs/architecture.md); this name is bound to the very same module object."""
import sys

import snncore.nir

sys.modules[__name__] = snncore.nir
