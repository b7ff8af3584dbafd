"""The foundation: errors, config, the feature contract, the run folder's artifacts and
atomic outputs. Imports nothing of hubscore above it, and nothing heavy."""
