"""Benchmarks (scripts that print JSON); bench.guard compares their figures with baseline.json."""
