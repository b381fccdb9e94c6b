"""Batch repair on Dask (core.batch): batch equals single, faults, resume, weights once per worker.

One local cluster of 2 worker processes serves the module (started once: each worker imports
torch); the resume tests run on threads in this process, which keeps the same code path. Every run,
batch and single alike, skips the stale-quote scores (``--no-stale``, ``stale=False``): they are a
leave-out repair per quote, the bulk of a chain's time, and the option only passes through.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
from pathlib import Path

import pandas as pd
import pytest

from core.batch import repair_dataset
from core.batch.cluster import open_client, weight_loads_by_model
from core.batch.layout import DONE_DIR, MARKER, TABLES, TMP_DIR, completed_row, partition_path
from core.cli import main as cli_main
from core.synth.chains import ChainSpec, make_chain, surface_function

N_GOOD, FAMILIES = 36, ("ssvi", "shifted_ssvi", "sabr_event")
# Small chains: a handful of expiries and strikes, so 40 of them repair in seconds.
SPEC = ChainSpec(weeklies=1, monthlies=3, horizon_years=1.3, put_sd=1.8, call_sd=1.4)


def _good_chain(i: int) -> pd.DataFrame:
    return make_chain(surface_function(FAMILIES[i % 3], seed=i), SPEC, seed=i, as_prices=i % 4 == 3)


def _write_malformed(folder: Path) -> dict:
    """Four chains `repair` rejects, each for its own reason."""
    few = _good_chain(0).head(3)
    files = {"bad_columns.csv": b"a,b\n1,2\n", "bad_empty.csv": b"",
             "bad_corrupt.parquet": b"PAR1" + b"\x00garbage" * 40, "bad_few.csv": few.to_csv(index=False).encode()}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


@pytest.fixture(scope="module")
def chains(tmp_path_factory) -> Path:
    """40 chain files: 36 good (iv CSV and price Parquet, three families) and 4 malformed."""
    folder = tmp_path_factory.mktemp("chains")
    for i in range(N_GOOD):
        frame = _good_chain(i)
        if i % 4 == 3:
            frame.to_parquet(folder / f"c{i:02d}.parquet", index=False)
        else:
            frame.to_csv(folder / f"c{i:02d}.csv", index=False)
    _write_malformed(folder)
    return folder


def _cli_repair(path: Path, out: Path) -> tuple:
    """(exit code, stderr) of `python -m core.cli repair` on one file, in this process."""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = cli_main(["repair", str(path), "--out", str(out), "--format", "parquet", "--quiet", "--no-stale"])
    return code, err.getvalue().strip()


@pytest.fixture(scope="module")
def reference(chains, tmp_path_factory) -> dict:
    """Per chain file name: ("ok", output folder) or ("failed", the error line) from `core.cli repair`."""
    root = tmp_path_factory.mktemp("single")
    out = {}
    for path in sorted(chains.iterdir()):
        code, err = _cli_repair(path, root / path.name)
        out[path.name] = ("ok", root / path.name) if code == 0 else ("failed", err.removeprefix("error: "))
        assert code in (0, 2), err
    return out


@pytest.fixture(scope="module")
def process_client():
    with open_client(workers=2, memory_limit="1GiB") as client:
        yield client


@pytest.fixture(scope="module")
def thread_client():
    with open_client(workers=2, processes=False) as client:
        yield client


@pytest.fixture(scope="module")
def first_run(chains, process_client, tmp_path_factory) -> tuple:
    out = tmp_path_factory.mktemp("batch") / "out"
    return repair_dataset(chains, out, client=process_client, progress=False, stale=False), out


def _assert_same_as_single(out: Path, keys: dict, single: Path) -> None:
    rel = partition_path(keys)
    for staged, (table, name) in TABLES.items():
        if name.endswith(".json"):
            assert json.loads((out / table / rel / name).read_text()) == json.loads((single / staged).read_text())
        else:
            pd.testing.assert_frame_equal(pd.read_parquet(out / table / rel / name), pd.read_parquet(single / staged))


def _assert_all_match(summary: pd.DataFrame, out: Path, reference: dict) -> None:
    assert len(summary) == len(reference) and summary["chain"].is_unique
    for _, row in summary.iterrows():
        status, detail = reference[row["chain"]]
        assert row["status"] == status, (row["chain"], row["reason"])
        if status == "ok":
            _assert_same_as_single(out, {"chain": row["chain"]}, detail)
        else:
            assert row["reason"] == detail


def test_batch_equals_single_and_malformed_chains_carry_their_reason(first_run, reference):
    summary, out = first_run
    assert sorted(summary["status"].value_counts().items()) == [("failed", 4), ("ok", N_GOOD)]
    _assert_all_match(summary, out, reference)
    ok = summary[summary["status"] == "ok"]
    assert (ok["fit_rmse_iv"] > 0).all() and ok["arbitrage_ok"].notna().all() and (ok["seconds"] > 0).all()
    assert pd.read_parquet(out / "summary.parquet").shape == summary.shape
    import pyarrow.dataset as ds     # each table reads back as one partitioned dataset

    quotes = ds.dataset(out / "quotes", partitioning="hive").to_table(columns=["chain"]).to_pandas()
    assert quotes["chain"].nunique() == N_GOOD
    assert len(ds.dataset(out / "summary", partitioning="hive").to_table()) == len(summary)


def test_weights_load_once_per_worker(first_run, process_client):
    summary, _ = first_run
    loads = process_client.run(weight_loads_by_model)
    # each worker read best's weights file exactly once, however many chains it ran, and no file twice
    assert len(loads) == 2 and all(n["best"] == 1 and max(n.values()) == 1 for n in loads.values()), loads
    assert (summary.groupby("worker").size() > 1).all()    # each worker ran many chains on one load


def test_dataset_input_with_partition_keys(tmp_path, thread_client):
    """A Parquet dataset: `underlying` in Hive folders, `quote_date` as a column; one chain per pair."""
    source = tmp_path / "history"
    frames = {}
    for u, name in enumerate(("AAA", "BBB")):
        parts = []
        for d, date in enumerate(("2025-03-14", "2025-03-21")):
            frames[(name, date)] = _good_chain(4 * u + d)       # iv chains only: a file holds one kind
            parts.append(frames[(name, date)].assign(quote_date=date))
        (source / f"underlying={name}").mkdir(parents=True)
        pd.concat(parts).to_parquet(source / f"underlying={name}" / "part-0.parquet", index=False)
    out = tmp_path / "out"
    summary = repair_dataset(source, out, partition_keys=["underlying", "quote_date"], client=thread_client,
                             progress=False, stale=False)
    assert list(summary[["underlying", "quote_date"]].itertuples(index=False, name=None)) == sorted(frames)
    assert (summary["status"] == "ok").all(), summary["reason"].tolist()
    for (name, date), frame in frames.items():
        single = tmp_path / f"{name}_{date}.parquet"
        frame.to_parquet(single, index=False)
        assert _cli_repair(single, tmp_path / f"single_{name}_{date}")[0] == 0
        rel = partition_path({"underlying": name, "quote_date": date})
        for staged, (table, file) in TABLES.items():
            if file.endswith(".parquet"):
                pd.testing.assert_frame_equal(pd.read_parquet(out / table / rel / file),
                                              pd.read_parquet(tmp_path / f"single_{name}_{date}" / staged))


class _Stop(Exception):
    pass


def _file_times(out: Path, keys: dict) -> dict:
    rel = partition_path(keys)
    return {p: p.stat().st_mtime_ns for p in out.glob(f"*/{rel}/*") if p.is_file()}


def test_rerun_after_interrupt_does_only_the_missing_chains(chains, reference, thread_client, tmp_path):
    out = tmp_path / "out"

    def stop_after_8(done, total, row):
        if done == 8:
            raise _Stop

    with pytest.raises(_Stop):
        repair_dataset(chains, out, client=thread_client, progress=False, stale=False, on_result=stop_after_8)
    names = sorted(reference)
    before = {n: _file_times(out, {"chain": n}) for n in names if completed_row(out, {"chain": n})}
    assert 8 <= len(before) < len(names)
    ran = []
    summary = repair_dataset(chains, out, client=thread_client, progress=False, stale=False,
                             on_result=lambda done, total, row: ran.append(row["source"]))
    resumed = set(summary.loc[summary["resumed"], "chain"])
    assert set(before) <= resumed and len(ran) == len(names) - len(resumed)
    assert not resumed & set(ran)
    for name, times in before.items():    # done chains were not rewritten
        assert _file_times(out, {"chain": name}) == times
    _assert_all_match(summary, out, reference)


def test_half_written_outputs_are_redone(first_run, chains, reference, thread_client, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(first_run[1], out)
    a, b = {"chain": "c00.csv"}, {"chain": "c03.parquet"}
    # a: crashed mid-write without a marker; b: marker present but a listed file cut short
    (out / DONE_DIR / partition_path(a) / MARKER).unlink()
    quotes_a = out / "quotes" / partition_path(a) / "part-0.parquet"
    quotes_a.write_bytes(quotes_a.read_bytes()[: quotes_a.stat().st_size // 2])
    surface_b = out / "surface" / partition_path(b) / "part-0.parquet"
    surface_b.write_bytes(surface_b.read_bytes()[:100])
    (out / TMP_DIR / "crashed").mkdir(parents=True)
    (out / TMP_DIR / "crashed" / "quotes.parquet").write_bytes(b"PAR1")
    assert completed_row(out, a) is None and completed_row(out, b) is None
    summary = repair_dataset(chains, out, client=thread_client, progress=False, stale=False)
    assert sorted(summary.loc[~summary["resumed"], "chain"]) == ["c00.csv", "c03.parquet"]
    _assert_all_match(summary, out, reference)
    assert not (out / TMP_DIR).exists()


def test_other_options_redo_every_chain(first_run, chains, thread_client, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(first_run[1], out)
    summary = repair_dataset(chains, out, "interp", client=thread_client, progress=False, stale=False)
    assert not summary["resumed"].any() and set(summary["method"]) == {"interp"}
    again = repair_dataset(chains, out, "interp", client=thread_client, progress=False, stale=False)
    assert again["resumed"].all()


def test_killed_worker_chains_are_retried(chains, reference, process_client, tmp_path):
    out = tmp_path / "out"
    killed = {}

    def kill_a_busy_worker(done, total, row):
        if done == 4:
            busy = {w: keys for w, keys in process_client.processing().items() if keys}
            worker = next(iter(busy))
            pid = process_client.run(os.getpid, workers=[worker])[worker]
            os.kill(pid, signal.SIGKILL)
            killed.update(worker=worker, running=len(busy[worker]))

    summary = repair_dataset(chains, out, client=process_client, progress=False, stale=False, on_result=kill_a_busy_worker)
    assert killed["running"] >= 1
    assert killed["worker"] not in process_client.scheduler_info()["workers"]
    assert "error" not in set(summary["status"])
    _assert_all_match(summary, out, reference)       # every chain once, each equal to the single run
    assert not (out / TMP_DIR).exists()


def test_cli_batch_resumes_a_done_dataset_and_rejects_bad_options(first_run, chains, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(first_run[1], out)
    # the first run skipped the stale scores: the same options resume; other options would redo every chain
    assert cli_main(["batch", str(chains), "--out", str(out), "--no-stale"]) == 3       # 3: completed, some failed
    printed = capsys.readouterr().out
    assert f"40 chains: {N_GOOD} ok, 4 failed, 40 already done" in printed and "failed: bad_" in printed
    assert cli_main(["batch", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert cli_main(["batch", str(chains), "--out", str(tmp_path / "o2"), "--memory-limit", "lots"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error: batch input not found") and err[1].startswith("error: --memory-limit")


def test_chain_mode_equals_repair_chain(tmp_path, thread_client):
    """--chain: each chain's tables equal `repair --chain` on the same file (stale scores included),
    a bad chain carries repair's reason, and the summary's arbitrage figures come from the dense check."""
    from core.batch.layout import CHAIN_TABLES

    folder = tmp_path / "chains"
    folder.mkdir()
    for i in range(3):
        _good_chain(i).to_csv(folder / f"c{i}.csv", index=False)
    (folder / "bad_columns.csv").write_bytes(b"a,b\n1,2\n")
    out = tmp_path / "out"
    summary = repair_dataset(folder, out, chain=True, client=thread_client, progress=False)
    assert list(summary["status"]) == ["failed", "ok", "ok", "ok"] and (summary["method"] == "svi_gp").all()
    ok = summary[summary["status"] == "ok"]
    assert ok["arbitrage_ok"].all() and (ok["calendar_rate"] == 0).all() and (ok["fit_rmse_iv"] > 0).all()
    for name in ("c0", "c1", "c2"):
        single = tmp_path / f"single_{name}"
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli_main(["repair", str(folder / f"{name}.csv"), "--chain", "--out", str(single),
                             "--format", "parquet", "--quiet"]) == 0
        rel = partition_path({"chain": f"{name}.csv"})
        for staged, (table, file) in CHAIN_TABLES.items():
            if file.endswith(".json"):
                assert json.loads((out / table / rel / file).read_text()) == json.loads((single / staged).read_text())
            else:
                pd.testing.assert_frame_equal(pd.read_parquet(out / table / rel / file), pd.read_parquet(single / staged))
    assert (out / "quotes" / partition_path({"chain": "c0.csv"}) / "part-0.parquet").exists()
    # the grid mode's options are refused with --chain, and a chain method without it
    with pytest.raises(ValueError, match="does not apply with --chain"):
        repair_dataset(folder, tmp_path / "o2", chain=True, arbitrage="full", client=thread_client, progress=False)
    with pytest.raises(ValueError, match="add --chain"):
        repair_dataset(folder, tmp_path / "o3", "svi_fit", client=thread_client, progress=False)


@pytest.mark.parametrize("when", ["before-read", "mid-write", "after-write"])
def test_a_chain_whose_staging_a_newer_run_cleared_is_an_error_not_a_recorded_result(
        chains, reference, tmp_path, monkeypatch, when):
    """An interrupted run's orphaned task (threads keep running after a cancel) loses its staging
    folder when the next run clears root/_tmp and makes its own there; it must not commit a marker
    the rerun would trust, whether the clear lands before a bad input fails, in the middle of the
    tables' write, or after them."""
    import core.batch.chain as batch_chain
    import core.quotes.export as export
    from core.batch.chain import Options, run_chain
    from core.batch.inputs import Chain
    from core.batch.layout import clear_staging, staging_dir
    from core.quotes.workflow import DEFAULT_METHOD

    name = "bad_few.csv" if when == "before-read" else "c00.csv"
    chain, options, out = Chain({"chain": name}, str(chains / name)), Options(DEFAULT_METHOD, stale=False), tmp_path / "out"

    def newer_run():
        clear_staging(out)
        staging_dir(out)                # the newer run's own task recreates root/_tmp at once

    real_repair, real_temp = batch_chain.repair_chain, export._write_temp
    written = []

    def write_temp(directory, name, data):
        if written:                     # after the first table is on disk
            newer_run()
        written.append(name)
        return real_temp(directory, name, data)

    def repair(chain, options, staging):
        if when == "before-read":
            newer_run()
        row = real_repair(chain, options, staging)
        if when == "after-write":
            newer_run()
        return row

    monkeypatch.setattr(batch_chain, "repair_chain", repair)
    if when == "mid-write":
        monkeypatch.setattr(export, "_write_temp", write_temp)
    row = run_chain(chain, options, str(out))
    assert row["status"] == "error", row["reason"]
    assert completed_row(out, chain.keys, options.as_dict()) is None
    monkeypatch.undo()
    row = run_chain(chain, options, str(out))
    assert row["status"] == reference[name][0] and completed_row(out, chain.keys, options.as_dict()) == row


def test_a_chain_failing_the_dense_check_is_not_ok(tmp_path, monkeypatch, capsys, thread_client):
    """--chain: a chain whose repaired surface fails the dense check (never seen; forced here) is
    written but reported as status "arbitrage" with the counts, not "ok", and the batch command
    says so and exits 3, as `repair --chain` does."""
    import dataclasses

    import core.batch.run as batch_run
    import core.chain.workflow as workflow

    real = workflow.repair_chain

    def failing(*args, **kwargs):
        result = real(*args, **kwargs)
        return dataclasses.replace(result, dense=dataclasses.replace(result.dense, n_butterfly=2))

    monkeypatch.setattr(workflow, "repair_chain", failing)
    folder = tmp_path / "chains"
    folder.mkdir()
    _good_chain(0).to_csv(folder / "c0.csv", index=False)
    summary = repair_dataset(folder, tmp_path / "out", chain=True, client=thread_client, progress=False)
    row = summary.iloc[0]
    assert row["status"] == "arbitrage" and not row["arbitrage_ok"] and "2 butterfly" in row["reason"]
    assert (tmp_path / "out" / "summary.parquet").exists()
    # recorded as done: a rerun skips it and keeps its status
    again = repair_dataset(folder, tmp_path / "out", chain=True, client=thread_client, progress=False)
    assert again.iloc[0]["resumed"] and again.iloc[0]["status"] == "arbitrage"
    # the command's report of that summary
    monkeypatch.setattr(batch_run, "repair_dataset", lambda *a, **k: summary)
    assert cli_main(["batch", str(folder), "--out", str(tmp_path / "out2"), "--chain"]) == 3
    out = capsys.readouterr().out
    assert "0 ok, 0 failed, 1 written but failing the dense arbitrage check" in out
    assert "arbitrage: c0.csv: the repaired surface fails the dense arbitrage check (2 butterfly" in out
