"""The package version, used when the installed distribution's metadata is unavailable
(a source checkout run without ``pip install``); keep it equal to ``pyproject.toml``."""
__version__ = "0.1.0"
