"""Operator tooling: the embedded runner, the simulator and the benchmark."""
