"""Panel grids on a phone (issue 12). The server does not know the window's width, so a page sends a
grid of heatmaps twice, side by side (key ``key``) and stacked one panel a row (``key``_narrow), and
a CSS media query shows one: at 400 px three to six panels side by side were 58-94 px slivers;
stacked, each spans the column. The hidden figure costs its packed spec (a few ms, a few kB)."""
from __future__ import annotations

import streamlit as st

NARROW_PX = 700   # window width at and below which the stacked figure shows (side by side, a panel of
                  # a three-wide grid is ~150 px at 640 px)


def css(key: str) -> str:
    return (f"<style>@media (max-width: {NARROW_PX}px) {{ .st-key-{key} {{ display: none; }} }}"
            f"@media (min-width: {NARROW_PX + 1}px) {{ .st-key-{key}_narrow {{ display: none; }} }}</style>")


def plot(wide, narrow, key: str, where=st) -> None:
    """Draw ``wide`` (key ``key``) on a wide window and ``narrow`` (key ``key``_narrow) on a phone."""
    where.html(css(key))
    where.plotly_chart(wide, key=key)
    where.plotly_chart(narrow, key=f"{key}_narrow")
