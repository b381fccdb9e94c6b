"""Presentation helpers shared by app.py and pages/: the method palette, plotly figure builders
and cached loaders. No numerics here: every number comes from core."""
