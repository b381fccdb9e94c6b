"""Synthetic data: surface families, missingness and noise, synthetic listed chains."""
