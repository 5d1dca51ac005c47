"""Benchmark of the rostering pipeline (``make bench``, ``python -m bench``); see bench/README.md."""
