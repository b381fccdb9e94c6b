"""The CSV writer of every output table (core.quotes.export.csv_bytes): Arrow's speed, pandas' text."""
import io

import numpy as np
import pandas as pd

from core.quotes.export import csv_bytes


def _frame(text):
    return pd.DataFrame({
        "row": np.arange(1, 7),
        "iv_repaired": [0.2, np.nan, 1.2897949055795784e-05, 123456789.123, 1.0, 0.1 + 0.2],
        "extrapolated": [True, False, True, False, True, False],
        "reason": pd.array(text, dtype="string"),
    })


def test_the_values_read_back_exactly_with_pandas_booleans_and_bare_text():
    frame = _frame(["ok", "", None, "T below 0.08 years", "é", "x"])
    text = csv_bytes(frame).decode("utf-8")
    lines = text.splitlines()
    assert lines[0] == "row,iv_repaired,extrapolated,reason"
    assert lines[4] == "4,123456789.123,False,T below 0.08 years"
    back = pd.read_csv(io.StringIO(text), keep_default_na=False, na_values=[""])
    np.testing.assert_array_equal(back["row"], frame["row"])
    # every float bit for bit, the missing one missing
    np.testing.assert_array_equal(back["iv_repaired"].to_numpy(), frame["iv_repaired"].to_numpy())
    np.testing.assert_array_equal(back["extrapolated"], frame["extrapolated"])


def test_text_that_needs_quotes_is_written_by_pandas():
    frame = _frame(["a, b", 'say "x"', "c", "d", "e", "f"])
    assert csv_bytes(frame) == frame.to_csv(index=False).encode("utf-8")
    mixed = pd.DataFrame({"v": [1, "a", 2.5]})
    assert csv_bytes(mixed) == mixed.to_csv(index=False).encode("utf-8")


def test_what_arrow_cannot_write_as_pandas_does_is_written_by_pandas():
    # a one-column table's missing value: pandas writes "" (a blank line would be skipped on reading)
    one = pd.DataFrame({"x": [1.5, np.nan, 2.5]})
    assert len(pd.read_csv(io.BytesIO(csv_bytes(one)))) == 3
    for frame in (pd.DataFrame({"a": [1.0, 2.0], "b": pd.array([True, pd.NA], dtype="boolean")}),
                  pd.DataFrame([[1, 2], [3, 4]], columns=["a", "a"]),
                  pd.DataFrame({"a": [1.0, 2.0], "b": [[1], [2]]}),
                  pd.DataFrame({"a": [1.0, 2.0], "b": [b"ab", b"c"]}),
                  pd.DataFrame({"a": [], "b": []})):
        assert csv_bytes(frame) == frame.to_csv(index=False).encode("utf-8"), frame
