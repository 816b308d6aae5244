"""The course around the exercises: student release, the learner's record, the gradebook."""
