"""Batch repair of many chains on Dask: ``repair_dataset(source, out, method)`` -> summary DataFrame.

One machine by default (a LocalCluster of one worker process per core), an existing cluster with
``scheduler="tcp://host:8786"`` or ``client=``. Each chain goes through the same steps as
``python -m core.cli repair``; see docs/batch.md for the output layout, faults and resuming.
Modules: inputs (find chains), chain (one chain on a worker), layout (atomic output, completion
markers), cluster (Dask client, weights once per worker), progress (the bar), run (the driver),
cli (the ``batch`` subcommand).
"""
__all__ = ["repair_dataset"]


def __getattr__(name):
    # lazy: `python -m core.cli repair` builds the batch parser without importing dask
    if name == "repair_dataset":
        from core.batch.run import repair_dataset

        return repair_dataset
    raise AttributeError(f"module 'core.batch' has no attribute {name!r}")
