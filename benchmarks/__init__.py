"""Switchyard's benchmarks: ``python -m benchmarks.run`` (see the README's Benchmarks section)."""
