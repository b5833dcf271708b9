"""Benchmarks of sdd-opt's training path; run them with ``python -m benchmarks.<name>`` (see README.md)."""
