"""Study items from CSV / JSONL files: the preview for the column-mapping step, and reading rows into fields.

Files are read by core.tabular (the reader batch grading uses too: same encodings, delimiters and row
numbers). Studies.import_items checks the actor, reads the rows here, then adds the good ones in one
transaction (where rows repeating an id or an item already in the study are reported).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import StudyInputError
from core.studies.checks import MAX_EXTERNAL_ID
from core.tabular import RowError, Table, TableError, is_blank, preview_value, read_table


@dataclass(frozen=True)
class ImportRows:
    """A file's rows as item fields: the good ones, the refused ones, and notes about the whole file."""

    good: list[tuple[int, list[list[str]], str | None]]  # (row number, [[tag, text], ...], external id)
    errors: list[RowError]  # rows that cannot become items, by row number
    notes: list[str]  # about the whole file (e.g. "read as Windows-1252")


def _read_study_table(path: str | Path) -> Table:
    """read_table, with its errors as StudyInputError (what the study UI and CLI catch)."""
    try:
        return read_table(path)
    except TableError as error:
        raise StudyInputError(str(error)) from error


def preview_file(path: str | Path, rows: int = 5) -> tuple[list[str], list[dict[str, Any]]]:
    """(column names, first rows) of a CSV or JSONL file, for the column-mapping step."""
    table = _read_study_table(path)
    first = [{column: preview_value(values.get(column)) for column in table.columns}
             for _, values in table.rows[: max(rows, 0)]]
    return table.columns, first


def read_rows(path: str | Path, tags: Sequence[str], mapping: Mapping[str, str],
              id_column: str | None = None) -> ImportRows:
    """The file's rows as fields in tag order; `mapping` is field tag -> column (blank columns are left out).

    StudyInputError when nothing is mapped, a tag is not the study's, or a named column is not in the file.
    """
    mapping = {tag: column for tag, column in dict(mapping).items() if column}
    if not mapping:
        raise StudyInputError("Map at least one field tag to a column of the file.")
    unknown = [tag for tag in mapping if tag not in tags]
    if unknown:
        raise StudyInputError(f"Unknown field tag(s) {', '.join(map(repr, unknown))}; this study's tags are "
                              f"{', '.join(map(repr, tags))}.")
    table = _read_study_table(path)
    wanted = [*mapping.values(), *([id_column] if id_column else [])]
    absent = [column for column in dict.fromkeys(wanted) if column not in table.columns]
    if absent:
        raise StudyInputError(f"The file has no column {', '.join(map(repr, absent))}; its columns are "
                              f"{', '.join(map(repr, table.columns))}.")
    errors = list(table.errors)
    good: list[tuple[int, list[list[str]], str | None]] = []
    for number, values in table.rows:
        pairs, external_id, problem = _row_fields(values, tags, mapping, id_column)
        if problem:
            errors.append(RowError(number, problem))
        else:
            good.append((number, pairs, external_id))
    return ImportRows(good=good, errors=errors, notes=list(table.notes))


def _row_fields(values: Mapping[str, Any], tags: Sequence[str], mapping: Mapping[str, str],
                id_column: str | None) -> tuple[list[list[str]], str | None, str | None]:
    """(fields in tag order, external id, problem) for one file row."""
    problems: list[str] = []
    texts: dict[str, str] = {}
    for tag, column in mapping.items():
        if column not in values:
            problems.append(f"no value in column {column!r} ({tag})")
            continue
        value = values[column]
        if is_blank(value):
            continue  # JSON null: a blank field
        if not isinstance(value, str):
            problems.append(f"column {column!r} ({tag}) holds {type(value).__name__} {value!r}, not text")
            continue
        if value.strip():
            texts[tag] = value
    external_id: str | None = None
    if id_column:
        raw = values.get(id_column)
        if isinstance(raw, bool) or not isinstance(raw, (str, int)) or not str(raw).strip():
            problems.append(f"no usable id in column {id_column!r}")
        else:
            external_id = str(raw).strip()
            if len(external_id) > MAX_EXTERNAL_ID:
                problems.append(f"the id in column {id_column!r} is {len(external_id):,} characters long "
                                f"(at most {MAX_EXTERNAL_ID})")
    if not problems and not texts:
        problems.append("every mapped field is empty")
    if problems:
        message = "; ".join(problems)
        return [], None, f"{message[0].upper()}{message[1:]}."
    return [[tag, texts[tag]] for tag in tags if tag in texts], external_id, None
