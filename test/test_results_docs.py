"""The published result tables: a set whose name ends in a number holds that many cases."""

import csv
import re

from conftest import REPO


def test_result_sets_named_with_a_number_hold_that_many_cases():
    tables = sorted((REPO / "docs" / "results").glob("*.csv"))
    assert tables
    for table in tables:
        counted = re.search(r"(\d+)$", table.stem)
        if counted is None:
            continue
        with table.open(newline="") as handle:
            cases = {row["case"] for row in csv.DictReader(handle)}
        assert len(cases) == int(counted.group(1)), table.name
