"""Issue 13 item 3: --out problems end in one line and exit 2; outputs are written atomically,
symlinks are refused, and a failed write leaves the previous outputs as they were."""
import errno
import os

import pytest

from core.cli import main
from core.quotes import export
from core.settings import SAMPLES_DIR

SAMPLE = str(SAMPLES_DIR / "quotes_iv.csv")


def _run(capsys, out, *extra):
    code = main(["repair", SAMPLE, "--method", "interp", "--no-stale", "--format", "csv", "--out", out, *extra])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def _one_line(err, pattern):
    assert len(err) == 1 and err[0].startswith("error: ") and "unexpected" not in err[0], err
    assert pattern in err[0], err[0]


def test_empty_out_is_refused(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = _run(capsys, "")
    assert code == 2
    _one_line(err, "output directory is empty")
    assert list(tmp_path.iterdir()) == []


def test_long_name_is_refused(capsys, tmp_path):
    code, err = _run(capsys, str(tmp_path / ("x" * 300)))
    assert code == 2
    _one_line(err, "too long")


def test_unwritable_directory_is_refused(capsys, tmp_path, monkeypatch):
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(tmp_path) else real_access(p, mode))
    code, err = _run(capsys, str(tmp_path / "out"))
    assert code == 2
    _one_line(err, "not writable")


def test_out_naming_a_file_is_refused(capsys, tmp_path):
    (tmp_path / "f").write_text("x")
    code, err = _run(capsys, str(tmp_path / "f"))
    assert code == 2
    _one_line(err, "not a directory")


def test_symlinked_output_is_refused_and_target_untouched(capsys, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (out / "grid.csv").symlink_to(victim)
    code, err = _run(capsys, str(out))
    assert code == 2
    _one_line(err, "symlink")
    assert victim.read_text() == "precious"


def test_full_disk_leaves_previous_outputs_and_no_temp_files(capsys, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert _run(capsys, str(out))[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert "quotes.csv" in before
    real = export._write_temp
    calls = []

    def fail_third(directory, name, data):
        calls.append(name)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(directory, name, data + b"\n# changed")

    monkeypatch.setattr(export, "_write_temp", fail_third)
    code, err = _run(capsys, str(out))
    assert code == 2
    _one_line(err, "No space left on device")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_writes_go_through_a_temporary_name_and_rename(tmp_path, monkeypatch):
    renames = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (renames.append((str(a), str(b))), real(a, b))[1])
    written = export.write_files(tmp_path / "o", {"a.csv": b"1", "b.json": b"{}"})
    assert [p.name for p in written] == ["a.csv", "b.json"]
    assert [os.path.basename(b) for _, b in renames] == ["a.csv", "b.json"]
    assert all(os.path.basename(a).startswith(".") and a.endswith(".tmp") for a, _ in renames)
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a.csv", "b.json"]


def test_a_terminate_signal_unwinds_and_leaves_no_temporary_files(capsys, tmp_path, monkeypatch):
    """SIGTERM (a scheduler's stop, ``timeout``) arriving during the writes: the CLI turns it into
    an interrupt, so the writers' clean-up runs (killed outright, 8 MB temporary files stayed)."""
    import signal

    previous = signal.getsignal(signal.SIGTERM)
    real = export._write_temp
    calls = []

    def terminated_on_second(directory, name, data):
        calls.append(name)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)       # delivered here, in the main thread
        return real(directory, name, data)

    monkeypatch.setattr(export, "_write_temp", terminated_on_second)
    try:
        code, err = _run(capsys, str(tmp_path / "out"))
        restored = signal.getsignal(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert restored is previous
    assert code == 130 and err == ["error: interrupted"]
    assert len(calls) == 2 and list((tmp_path / "out").iterdir()) == []
    # (above) main put back the handler it found: an in-process caller keeps its own


def test_outputs_of_an_earlier_run_in_the_other_format_are_named(capsys, tmp_path):
    out = tmp_path / "out"
    code = main(["repair", SAMPLE, "--method", "interp", "--no-stale", "--format", "both", "--out", str(out)])
    assert code == 0 and (out / "quotes.parquet").exists()
    capsys.readouterr()
    code, err = _run(capsys, str(out))                  # --format csv into the same folder
    assert code == 0
    assert f"warning: {out / 'quotes.parquet'} is from an earlier run (this one wrote --format csv)" in err
    code, err = _run(capsys, str(out))
    assert code == 0 and all("earlier run" not in line or "parquet" in line for line in err)
    assert not any(".csv is from an earlier run" in line for line in err)


def test_debug_shows_where_a_bad_input_error_came_from(capsys, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("T,k,iv\n0.5,0.0,0.2\n")
    assert main(["repair", str(bad), "--chain", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    with pytest.raises(ValueError, match="usable quote"):
        main(["repair", str(bad), "--chain", "--debug", "--out", str(tmp_path / "o")])
