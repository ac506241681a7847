"""Alias of :mod:`snncore.datasets`, where this module lives since the contract layer moved below
both engines (docs/architecture.md).  Kept so that ``import training.datasets`` in existing code
keeps working: the name is bound to the very same module object (one set of functions, so a
patch or an isinstance check applies to both names)."""
import sys

import snncore.datasets

sys.modules[__name__] = snncore.datasets
