"""Reads each CSV named on the command line with pandas' and polars' default options and checks
the shape each gets against the one emobench's test counted ("path<TAB>rows<TAB>columns").

The test suite calls this with EMOBENCH_PYTHON (set by .ci/run to a venv with pandas and polars).
"""

import sys

import pandas as pd
import polars as pl

failures = []
for arg in sys.argv[1:]:
    path, rows, cols = arg.split("\t")
    expected = (int(rows), int(cols))
    try:
        got = pd.read_csv(path).shape
        if got != expected:
            failures.append(f"{path}: pandas read {got}, expected {expected}")
        # polars infers types from the first 100 rows and fails on a later row of another type:
        # floats are always written with a decimal point or exponent, so a column keeps one type.
        got = pl.read_csv(path).shape
        if got != expected:
            failures.append(f"{path}: polars read {got}, expected {expected}")
    except Exception as e:  # report every file, not only the first failure
        failures.append(f"{path}: {type(e).__name__}: {e}")
print("\n".join(failures))
sys.exit(1 if failures else 0)
