"""What a batch job grades: its spec, the rubric file, the data source and each row's fields.

Reading is kept apart from core.batch (the stored jobs and their runner): files go through core.tabular'
one reader, a Hugging Face dataset 'owner/name[:split]' through the datasets package when installed, and
a job's identity (job_key) is derived from the data's SHA-256, the rubric, the mapping and the judge.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import InputError
from core.judge.base import DEFAULT_MAX_NEW_TOKENS
from core.prompt import DEFAULT_TAGS, MODEL_OUTPUT, infer_scale
from core.tabular import Table, TableError, is_blank, read_table

_HF_DATASET = re.compile(r"\A(?P<name>[\w.-]+/[\w.-]+)(?::(?P<split>[\w.\[\]:%-]+))?\Z")


@dataclass(frozen=True)
class JobSpec:
    """What to grade with: the rubric, the field tags in prompt order, and which column feeds each tag."""

    pass_criteria: str
    rubric: str
    tags: tuple[str, ...] = DEFAULT_TAGS
    mapping: Mapping[str, str] = field(default_factory=dict)  # tag -> column; unmapped tags use snake_case
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    name: str = ""

    def column_for(self, tag: str) -> str:
        """The input column that feeds `tag` ('MODEL OUTPUT' -> 'model_output' unless mapped)."""
        return self.mapping.get(tag) or column_name(tag)


def column_name(tag: str) -> str:
    """'MODEL OUTPUT' -> 'model_output', the column name a tag reads from unless mapped."""
    return re.sub(r"\W+", "_", tag.strip().lower()).strip("_")


def load_rubric_file(path: str | Path) -> dict[str, Any]:
    """Read pass_criteria, rubric and optional tags from a YAML, JSON or TOML file; InputError when unusable."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as error:
        raise InputError(f"There is no rubric file at {path}.") from error
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"Could not read the rubric file {path}: {error}.") from error
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            data = json.loads(text)
        elif suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            raise InputError(f"The rubric file {path.name} must end in .yaml, .yml, .json or .toml.")
    except InputError:
        raise
    except Exception as error:  # json, tomllib and yaml each raise their own parse error type
        raise InputError(f"The rubric file {path.name} is not valid {suffix[1:].upper()}: {error}") from error
    if not isinstance(data, dict):
        raise InputError(f"The rubric file {path.name} must hold a mapping with pass_criteria and rubric.")
    missing = [key for key in ("pass_criteria", "rubric")
               if not isinstance(data.get(key), str) or not data[key].strip()]
    if missing:
        raise InputError(f"The rubric file {path.name} needs text for: {', '.join(missing)}.")
    tags = data.get("tags", list(DEFAULT_TAGS))
    if not isinstance(tags, list) or not tags or not all(isinstance(tag, str) and tag.strip() for tag in tags):
        raise InputError(f"'tags' in {path.name} must be a list of field names such as ['CONTEXT', 'MODEL OUTPUT'].")
    infer_scale(data["rubric"])  # RubricError now, not after the data is loaded
    return {"pass_criteria": data["pass_criteria"], "rubric": data["rubric"], "tags": [tag.strip() for tag in tags]}


def read_source(source: str | Path) -> tuple[Table, str]:
    """(rows, SHA-256 identifying the data) of a file, or of a Hugging Face dataset 'owner/name[:split]'."""
    path = Path(source).expanduser()
    if path.exists() or not _HF_DATASET.match(str(source)):
        table = read_table(path)
        return table, _file_sha256(path)
    return _read_hf_dataset(str(source))


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_hf_dataset(source: str) -> tuple[Table, str]:
    match = _HF_DATASET.match(source)
    assert match is not None
    name, split = match["name"], match["split"] or "train"
    try:
        import datasets
    except ImportError as error:
        raise TableError(
            f"{source!r} is not a file here; to grade a Hugging Face dataset install the datasets package "
            "(pip install datasets), or export the dataset to CSV/JSONL and pass that file."
        ) from error
    try:
        dataset = datasets.load_dataset(name, split=split)
    except Exception as error:  # offline, unknown name, gated: datasets raises many types
        raise TableError(
            f"Could not load the Hugging Face dataset {name!r} (split {split!r}): {type(error).__name__}: {error}. "
            "Offline machines need the data as a CSV or JSONL file."
        ) from error
    records = dataset.to_list()
    columns = list(dataset.column_names)
    table = Table(columns, [(number, dict(record)) for number, record in enumerate(records, 1)], [], [])
    fingerprint = getattr(dataset, "_fingerprint", "") or hashlib.sha256(
        json.dumps(records, default=str, sort_keys=True).encode()).hexdigest()
    return table, hashlib.sha256(f"hf:{name}:{split}:{fingerprint}".encode()).hexdigest()


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def row_fields(values: Mapping[str, Any], spec: JobSpec) -> tuple[list[list[str]], str | None]:
    """([[tag, text], ...] to grade, or an error saying why this row cannot be graded)."""
    fields: list[list[str]] = []
    for tag in spec.tags:
        value = values.get(spec.column_for(tag))
        if not is_blank(value) and _text(value).strip():
            fields.append([tag, _text(value)])
    # The text being graded must be there: MODEL OUTPUT, or the last field when the tags are custom.
    graded = MODEL_OUTPUT if MODEL_OUTPUT in spec.tags else spec.tags[-1]
    column = spec.column_for(graded)
    if column not in values:
        return fields, f"The column {column!r} (for {graded}) is missing from this row."
    if not any(tag == graded for tag, _ in fields):
        return fields, f"The column {column!r} (for {graded}) is empty."
    return fields, None


def check_columns(table: Table, spec: JobSpec) -> None:
    """Refuse a mapping that names a column the data does not have, before creating the job."""
    absent = [f"{tag} -> {column!r}" for tag, column in spec.mapping.items() if column not in table.columns]
    unknown = [tag for tag in spec.mapping if tag not in spec.tags]
    if unknown:
        raise InputError(f"--map names tag(s) {', '.join(map(repr, unknown))}, which the rubric's tags "
                         f"({', '.join(spec.tags)}) do not have.")
    if absent:
        raise InputError(f"The data has no column for {'; '.join(absent)}. Its columns are: "
                         f"{', '.join(map(repr, table.columns))}.")
    if not any(spec.column_for(tag) in table.columns for tag in spec.tags):
        wanted = ", ".join(repr(spec.column_for(tag)) for tag in spec.tags)
        raise InputError(f"None of the columns {wanted} is in the data (its columns are "
                         f"{', '.join(map(repr, table.columns))}); map them with --map TAG=COLUMN.")


def job_key(source_sha256: str, spec: JobSpec, judge: Mapping[str, Any]) -> str:
    """The identity of a job: the same data, rubric, mapping and judge give the same key."""
    identity = {
        "source": source_sha256,
        "pass_criteria": spec.pass_criteria,
        "rubric": spec.rubric,
        "tags": list(spec.tags),
        "columns": {tag: spec.column_for(tag) for tag in spec.tags},
        "max_new_tokens": spec.max_new_tokens,
        "judge": dict(judge),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
