"""Quote files: read and normalise, map to and from the model grid, stale scores, the workflow, export."""
