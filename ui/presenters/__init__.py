"""Presenters: Streamlit-free view-models the pages draw (testable without a browser)."""
