"""Benchmarks: scripts that time parts of the system and print JSON figures."""
