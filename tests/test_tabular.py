"""core.tabular.read_table: the one reader of CSV/TSV/JSONL/JSON files (batch grading, study imports, agreement)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.tabular import TableError, read_table


def test_a_quote_never_closed_is_a_row_error_not_a_silently_lost_row(tmp_path: Path) -> None:
    path = tmp_path / "open-quote.csv"
    path.write_text('id,text\n1,fine\n\n2,"never closed\n3,swallowed by row 2\n', encoding="utf-8")
    table = read_table(path)
    assert table.rows == [(1, {"id": "1", "text": "fine"})]
    assert [error.row for error in table.errors] == [2] and "never closed" in table.errors[0].message
    only = tmp_path / "only.csv"
    only.write_text('id,text\n1,"x\n', encoding="utf-8")
    with pytest.raises(TableError, match="row 1: A quote opened in this row is never closed"):
        read_table(only)


def test_a_closed_quote_across_lines_is_one_value(tmp_path: Path) -> None:
    path = tmp_path / "multiline.csv"
    path.write_text('id,text\n1,"two\nlines"\n2,"a ""quoted"" word"\n', encoding="utf-8")
    table = read_table(path)
    assert table.errors == [] and [values["text"] for _, values in table.rows] == ["two\nlines", 'a "quoted" word']


@pytest.mark.parametrize(
    ("name", "content", "kind", "word"),
    [
        ("r.csv", "a;b\n1;2\n", "csv", "row"),
        ("r.tsv", "a\tb\n1\t2\n", "tsv", "row"),
        ("r.jsonl", '{"a": 1}\n', "jsonl", "line"),
        ("r.json", '[{"a": 1}]', "json", "element"),
        ("lines.json", '{"a": 1}\n{"a": 2}\n', "jsonl", "line"),
    ],
)
def test_the_table_says_what_its_row_numbers_count(tmp_path: Path, name: str, content: str, kind: str,
                                                    word: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    table = read_table(path)
    assert (table.kind, table.row_word) == (kind, word)
    assert table.errors == [] and table.rows[0][1]["a"] in ("1", 1)
