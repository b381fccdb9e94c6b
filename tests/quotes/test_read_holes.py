"""The importer holes of the adversarial issue, through read_quotes (the CLI's and the page's reader).

Each case failed on main before the layouts work: a crash, a silent misread or a misleading message.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from core.quotes.read import QuoteError, read_quotes

_ROWS = [(e, k) for e in ("2025-06-20", "2025-09-19") for k in (-0.1, 0.0, 0.1)]


def _dated(expiries, valuation="2025-03-14", ivs=None) -> bytes:
    ivs = ivs if ivs is not None else [0.2] * len(expiries)
    lines = ["expiry,valuation_date,k,iv"] + [f"{e},{valuation},{k},{v}" for e, (_, k), v in zip(expiries, _ROWS, ivs)]
    return ("\n".join(lines) + "\n").encode()


def test_timezone_suffix_beside_a_plain_date_reads():
    aware = [f"{e}T00:00:00+00:00" for e, _ in _ROWS]
    a = read_quotes(_dated(aware), name="tz.csv")
    b = read_quotes(_dated([e for e, _ in _ROWS], valuation="2025-03-14T00:00:00+00:00"), name="tz.csv")
    for qs in (a, b):
        np.testing.assert_allclose(qs.used["T"], [98 / 365] * 3 + [189 / 365] * 3)


def test_mixed_timezone_offsets_read_in_utc():
    mixed = ["2025-06-20T02:00:00+02:00", "2025-06-19T19:00:00-05:00", "2025-06-20T00:00:00Z"] + \
            ["2025-09-19T00:00:00Z"] * 3
    qs = read_quotes(_dated(mixed), name="tz.csv")
    np.testing.assert_allclose(qs.used["T"][:3], 98 / 365)


def test_valuation_date_reads_the_same_in_a_file_and_as_an_option():
    plain = "expiry,k,iv\n" + "".join(f"{e},{k},0.2\n" for e, k in _ROWS)
    with pytest.raises(QuoteError, match="ambiguous"):
        read_quotes(plain.encode(), name="q.csv", valuation_date="04/03/2025")
    with pytest.raises(QuoteError, match="ambiguous"):
        read_quotes(_dated([e for e, _ in _ROWS], valuation="04/03/2025"), name="q.csv")
    day_first = read_quotes(plain.encode(), name="q.csv", valuation_date="14/03/2025")
    in_file = read_quotes(_dated([e for e, _ in _ROWS], valuation="14/03/2025"), name="q.csv")
    np.testing.assert_allclose(day_first.used["T"], in_file.used["T"])


def test_low_vol_chain_in_percent_is_not_read_as_hundreds_of_percent():
    qs = read_quotes(_dated([e for e, _ in _ROWS], ivs=[1.5, 2.0, 2.5, 3.0, 4.0, 5.0]), name="pct.csv")
    assert qs.used["iv"].max() <= 0.05
    assert any("percent" in note for note in qs.report.notes)


def test_one_wide_line_is_refused_within_two_seconds():
    data = ("T,k,iv," + ",".join(f"c{i}" for i in range(1_000_000)) + "\n0.5,0,0.2\n").encode()
    start = time.perf_counter()
    with pytest.raises(QuoteError, match="columns on its header line|a line of"):
        read_quotes(data, name="wide.csv")
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize("data,pattern", [
    (b'[{"T": 0.5, "k": 0, "iv": 0.2}]', "holds JSON, not CSV"),
    (b"<!DOCTYPE html><html><body>quotes</body></html>", "HTML or XML, not CSV"),
    (b"T,k,iv\n" + b"0.5,0,\"0,25\"\n" * 4, "decimal comma"),
    (b"T,k,iv\n" + b"0.5,0,25%\n" * 4 + b"1,0,0.25\n", "percent sign"),   # mixed; all-% reads as percent
    (b"T,k,iv\n0.5,-0.1,1e-300\n0.5,0,1e-300\n1,-0.1,1e-300\n1,0,1e-300\n", r"iv below 0\.001"),
])
def test_messages_name_the_real_problem(data, pattern):
    with pytest.raises(QuoteError, match=pattern) as info:
        read_quotes(data, name="bad.csv")
    assert "\n" not in str(info.value)


def test_utf16_file_is_read_not_called_binary():
    text = "T,k,iv\n" + "".join(f"{T},{k},0.2\n" for T in (0.5, 1.0) for k in (-0.1, 0.0, 0.1))
    qs = read_quotes(text.encode("utf-16"), name="excel.csv")
    assert qs.report.n_used == 6
    with pytest.raises(QuoteError, match="UTF-16 without a byte-order mark"):
        read_quotes(text.encode("utf-16-le"), name="excel.csv")


def test_far_expiry_is_named_not_blamed_on_days():
    for far in ("9999-12-31", "2200-12-31"):
        with pytest.raises(QuoteError, match="after 2262|far beyond the valuation date") as info:
            read_quotes(_dated([far] * 6), name="far.csv")
        assert "days" not in str(info.value)
