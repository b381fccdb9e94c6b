"""Evaluation: the seed registry, metrics, the 2 x 2 benchmark and its tables, speed."""
