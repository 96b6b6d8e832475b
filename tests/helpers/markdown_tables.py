"""Reads the tables of a Markdown report, checking that GitHub would render them."""

from __future__ import annotations

import re

# GitHub's delimiter row: a cell of dashes per column, optionally with alignment colons.
_DELIMITER_ROW = re.compile(r"^\|(?:\s*:?-+:?\s*\|)+$")


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def markdown_tables(report: str) -> list[list[list[str]]]:
    """The report's tables, each as rows of stripped cells, the header row first.

    Raises:
        AssertionError: If a table lacks its delimiter row or a row has another number
            of cells than the header.
    """
    blocks: list[list[str]] = []
    previous_was_table = False
    for line in report.splitlines():
        is_table = line.startswith("|")
        if is_table and not previous_was_table:
            blocks.append([])
        if is_table:
            blocks[-1].append(line)
        previous_was_table = is_table
    tables = []
    for block in blocks:
        assert len(block) >= 2 and _DELIMITER_ROW.match(block[1]), f"no delimiter row: {block}"
        rows = [_cells(block[0]), *(_cells(line) for line in block[2:])]
        width = len(rows[0])
        assert len(_cells(block[1])) == width, f"delimiter row width: {block[1]}"
        assert all(len(row) == width for row in rows), f"ragged table: {block}"
        tables.append(rows)
    return tables
