"""Throughput benchmarks of pipeline stages, run by hand as `python -m read_clip.perf.<name>`."""
