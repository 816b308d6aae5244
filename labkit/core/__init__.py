"""The core: daemon connection, errors, running commands, interactive sessions, waits, paths, processes, state.

Imports nothing from the rest of labkit."""

#: labkit's version (pyproject.toml has the same; tests/unit/test_packaging.py checks).
__version__ = "0.1.0"
