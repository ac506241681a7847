"""Training recipes: a checked TOML configuration -> a trained, exported network.

``eventsim train CONFIG.toml`` (eventsim/cli.py) is the command line over this package::

    from training import recipes
    r = recipes.from_dict({"model": {"preset": "conv"}, "train": {"epochs": 2}})
    prepared = recipes.prepare(r, "runs/conv")     # every check; nothing written on error
    result = recipes.train(prepared)                # config.toml, checkpoint.h5, model.h5, summary.json

Modules: ``schema`` (the tables, checking, ``--print-config``), ``checks`` (combinations
refused), ``build`` (data, presets, optimiser), ``events`` (event files without eventsim),
``run`` (output directory, budget, export, summary).
"""
from .build import build_network, load_data, make_neuron
from .run import FILES, Prepared, Result, prepare, train
from .schema import (Recipe, RecipeError, apply_overrides, from_dict, load, loads,
                     parse_override, to_toml)

__all__ = ["Recipe", "RecipeError", "from_dict", "load", "loads", "to_toml", "parse_override",
           "apply_overrides", "prepare", "train", "Prepared", "Result", "FILES",
           "build_network", "load_data", "make_neuron"]
