"""Developer tools: the deterministic sample generator."""
