"""How exercises work: the model, the table of exercises, the runner (setup, check, hint, solve), reset, and the learner's record."""
