"""The lean floor: what a scoring host runs (errors, config, the feature contract, the run
folder's artifacts, encoding, the scorer, drift, atomic outputs). Imports nothing above it."""
