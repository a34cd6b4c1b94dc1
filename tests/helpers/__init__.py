"""Helpers shared by the tests (and by bench/): real processes, free ports, the fake LLM."""
