"""Training: one trainer per learned model, shared progress and manifest helpers."""
