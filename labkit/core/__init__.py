"""The core: daemon connection, errors, running commands, interactive sessions, waits, paths, processes, state.

Imports nothing from the rest of labkit."""
