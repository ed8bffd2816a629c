"""fleetsim benchmarks: `python -m bench [NAME ...]` (see bench/README.md)."""
