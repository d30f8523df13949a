"""The results table and charts, built from the per-benchmark summaries."""
