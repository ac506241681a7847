"""The contract layer: what the training engine and the simulator share, and nothing else.

Both ``training`` and ``eventsim`` import this package; it imports neither of them (a test
asserts it).  It holds

- :mod:`snncore.modelfile`  the model-file records, their validation, HDF5 writer and reader;
- :mod:`snncore.fileio`     atomic file output and the checked HDF5 open every reader uses;
- :mod:`snncore.datasets`   Fashion-MNIST / MNIST loaders and the committed subset;
- :mod:`snncore.encoding`   the input encoders (direct, rate, Poisson) and their validators;
- :mod:`snncore.neuron`     the canonical neuron parameters and update both engines run;
- :mod:`snncore.checks`     the argument validators every public function uses;
- :mod:`snncore.dtypes`     the default float dtype;
- :mod:`snncore.nir`        NIR graphs <-> model records (``eventsim.nir``, ``training.from_nir``).

Submodules are imported on use (``import snncore.modelfile``) so that importing one does not
pull in h5py or the dataset code.
"""
