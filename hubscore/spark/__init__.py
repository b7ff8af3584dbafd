"""The Spark engine: build-features and score on a Spark cluster with the same SQL and scorer.

pyspark (the `spark` extra) is imported only here; the lean core never sees it.
"""
