"""How exercises work: the model, the table of exercises, and the runner (setup, check, hint, solve, reset)."""
