"""Measurement and refresh tools (run as python -m tools.NAME); not tests."""
