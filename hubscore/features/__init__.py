"""build-features: validate, quarantine, dedupe, profile and build point-in-time features
(DuckDB SQL; DuckDB runs here only)."""
