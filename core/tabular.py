"""Read a table of rows from CSV, TSV, JSON Lines or a JSON array, keeping every good row.

Used by study imports and batch grading. Files come from users' spreadsheets and scripts, so the
reader is forgiving where it can be (encodings, BOMs, ';' separators, ragged lines) and reports what
it could not read per row, by 1-based row number, instead of failing the whole file.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import InputError

# Marks a CSV line with the wrong number of values (replaced by a RowError); text with NUL is refused.
_BAD_LINE = "\x00glider-bad-line\x00"


class TableError(InputError):
    """The file as a whole cannot be read (missing, empty, binary, not CSV/JSON)."""


@dataclass(frozen=True)
class RowError:
    row: int  # 1-based data row number in the file (header not counted)
    message: str


@dataclass
class Table:
    """The columns seen (in first-seen order), the rows read, the rows that could not be, and notes."""

    columns: list[str]
    rows: list[tuple[int, dict[str, Any]]]  # (1-based row number, values); a missing key = a missing value
    errors: list[RowError]  # rows that could not be parsed at all
    notes: list[str]  # remarks about the whole file (e.g. the encoding used)
    kind: str = "csv"  # the format read: csv, tsv, jsonl (one object per line) or json (an array)

    @property
    def row_word(self) -> str:
        """What a row number counts in this format: a data row (header not counted), a line, an element."""
        return {"jsonl": "line", "json": "element"}.get(self.kind, "row")


def _decode(path: Path) -> tuple[str, list[str]]:
    """The file's text and notes: UTF-8 (with or without BOM), UTF-16 with BOM, else Windows-1252/Latin-1."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as error:
        raise TableError(f"There is no file at {path}.") from error
    except IsADirectoryError as error:
        raise TableError(f"{path} is a folder, not a file.") from error
    except OSError as error:
        raise TableError(f"Could not read {path}: {error.strerror or error}.") from error
    if not data.strip():
        raise TableError(f"{path.name} is empty.")
    if data.startswith(b"PK\x03\x04"):
        raise TableError(f"{path.name} looks like a spreadsheet or zip file; save it as CSV (UTF-8) or JSONL.")
    notes: list[str] = []
    if data.startswith(b"\xef\xbb\xbf"):
        text = data.decode("utf-8-sig", errors="strict") if _decodes(data, "utf-8-sig") else None
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16") if _decodes(data, "utf-16") else None
    elif _decodes(data, "utf-8"):
        text = data.decode("utf-8")
    else:
        bad = _first_bad_utf8_byte(data)
        encoding = "Windows-1252" if _decodes(data, "cp1252") else "Latin-1"
        text = data.decode("cp1252" if encoding == "Windows-1252" else "latin-1")
        notes.append(
            f"{path.name} is not UTF-8 (first invalid byte at offset {bad}); it was read as {encoding}. "
            "Check accented characters, or save the file as UTF-8 and import it again."
        )
    if text is None:
        raise TableError(f"{path.name} starts with a byte-order mark but is not valid Unicode; save it as UTF-8.")
    if "\x00" in text:
        raise TableError(f"{path.name} looks like a binary file; save it as CSV (UTF-8) or JSONL.")
    if not text.strip():
        raise TableError(f"{path.name} is empty.")
    return text, notes


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def _first_bad_utf8_byte(data: bytes) -> int:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start
    return -1


def _file_format(path: Path, text: str) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".json":
        return "json"
    if suffix == ".tsv":
        return "tsv"
    if suffix in (".csv", ".txt"):
        return "csv"
    first = text.lstrip()[:1]
    return "jsonl" if first == "{" else "json" if first == "[" else "csv"


def read_table(path: str | Path) -> Table:
    """Read `path` by its extension (or, failing that, its first character); TableError when nothing is usable."""
    path = Path(path)
    text, notes = _decode(path)
    kind = _file_format(path, text)
    if kind == "json":
        stripped = text.lstrip()
        if stripped.startswith("["):
            table = _read_json_array(path, stripped)
        else:  # a .json file holding one object per line
            table, kind = _read_jsonl(text), "jsonl"
    elif kind == "jsonl":
        table = _read_jsonl(text)
    else:
        table = _read_csv(path, text, "\t" if kind == "tsv" else None)
    table.notes[:0] = notes
    table.kind = kind
    if not table.rows and not table.errors:
        raise TableError(f"{path.name} has no data rows.")
    if not table.rows:
        shown = "; ".join(f"row {error.row}: {error.message}" for error in table.errors[:3])
        more = f" (and {len(table.errors) - 3} more)" if len(table.errors) > 3 else ""
        raise TableError(f"No row of {path.name} could be read: {shown}{more}")
    return table


def _read_jsonl(text: str) -> Table:
    """One JSON object per line; a broken line becomes a RowError and the other lines are kept."""
    columns: dict[str, None] = {}
    rows: list[tuple[int, dict[str, Any]]] = []
    errors: list[RowError] = []
    # split("\n"), not splitlines(): U+2028 and friends may appear unescaped inside JSON strings.
    for number, line in enumerate(text.split("\n"), 1):
        line = line.strip()
        if not line:
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            errors.append(RowError(number, f"Not valid JSON: {error.msg} (column {error.colno})."))
            continue
        if not isinstance(value, dict):
            errors.append(RowError(number, f"Expected a JSON object {{...}}; got a {type(value).__name__}."))
            continue
        columns.update(dict.fromkeys(value))
        rows.append((number, value))
    return Table(list(columns), rows, errors, [])


def _read_json_array(path: Path, text: str) -> Table:
    try:
        values = json.loads(text)
    except json.JSONDecodeError as error:
        raise TableError(
            f"{path.name} is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno}). "
            "JSON Lines (one object per line, .jsonl) lets the other rows be imported when one is broken."
        ) from error
    columns: dict[str, None] = {}
    rows: list[tuple[int, dict[str, Any]]] = []
    errors: list[RowError] = []
    for number, value in enumerate(values, 1):
        if isinstance(value, dict):
            columns.update(dict.fromkeys(value))
            rows.append((number, value))
        else:
            errors.append(RowError(number, f"Expected a JSON object {{...}}; got a {type(value).__name__}."))
    return Table(list(columns), rows, errors, [])


def _read_csv(path: Path, text: str, sep: str | None) -> Table:
    import pandas as pd  # heavy; only needed here

    if sep is None:
        header = text.lstrip("\n").split("\n", 1)[0]
        # Spreadsheets in many European locales write ';' between values.
        sep = ";" if header.count(";") > header.count(",") else ","
    # The python engine reads through the csv module, whose default field limit (128 KiB) would
    # otherwise turn a long context into a "bad line".
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    try:
        frame = pd.read_csv(
            io.StringIO(text), sep=sep, dtype=object, keep_default_na=False, na_filter=False, engine="python",
            # A line with too many values keeps its place (so row numbers stay right) as a marked row.
            on_bad_lines=lambda line: [f"{_BAD_LINE}{len(line)}"], skip_blank_lines=True,
        )
    except pd.errors.EmptyDataError as error:
        raise TableError(f"{path.name} is empty.") from error
    except (pd.errors.ParserError, csv.Error, ValueError) as error:
        raise TableError(f"{path.name} is not a readable CSV file: {error}".rstrip(".") + ".") from error
    columns = [str(column) for column in frame.columns]
    rows: list[tuple[int, dict[str, Any]]] = []
    errors: list[RowError] = []
    for index, record in enumerate(frame.itertuples(index=False, name=None)):
        number = index + 1
        first = record[0] if record else None
        if isinstance(first, str) and first.startswith(_BAD_LINE):
            errors.append(RowError(number, f"Has {first[len(_BAD_LINE):]} values but the header has "
                                           f"{len(columns)} columns (an unquoted separator or quote?)."))
            continue
        # A short line leaves the missing trailing values as None: those columns are "missing".
        rows.append((number, {column: value for column, value in zip(columns, record, strict=True)
                              if value is not None}))
    swallowed = _unclosed_quote_row(text, sep)
    if swallowed is not None and swallowed not in {number for number, _ in rows}:
        errors.append(RowError(swallowed, "A quote opened in this row is never closed, so the rest of the file "
                                          "was read into it; close the quote."))
    return Table(columns, rows, errors, [])


def _unclosed_quote_row(text: str, sep: str) -> int | None:
    """The data row whose quote runs to the end of the file, which pandas drops without a word; else None."""
    reader = csv.reader(io.StringIO(text), delimiter=sep, strict=True)
    records = 0  # non-blank records so far, the header included: the failing row's data row number
    try:
        for record in reader:
            records += bool(record)
    except csv.Error as error:
        return records if "unexpected end of data" in str(error) else None
    return None


def is_blank(value: Any) -> bool:
    """A missing value: None or a NaN that pandas put there."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def preview_value(value: Any) -> Any:
    """The value as shown in a preview (blank → None)."""
    return None if is_blank(value) else value
