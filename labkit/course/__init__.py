"""The course around the exercises: the student release of the notebooks and the gradebook."""
