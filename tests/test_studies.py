"""Studies, items, users and annotations, tested on real databases (no mocks): every test that opens one runs on a
SQLite file and on PostgreSQL (conftest.db_url)."""

from __future__ import annotations

import hmac
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import krippendorff
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import cohen_kappa_score
from sqlalchemy import event, inspect, text
from sqlalchemy.exc import IntegrityError

from core.agreement import agreement_report, load_ratings
from core.errors import InputError, ValueTooLongError
from core.parse import parse_output
from core.prompt import build_prompt
from core.store import MIGRATIONS, Store
from core.studies import (
    ADMIN,
    ANNOTATOR,
    AnnotationEditRow,
    AnnotationRow,
    DuplicateItemError,
    ItemRow,
    PermissionDenied,
    RowError,
    Studies,
    StudyInputError,
    StudyRow,
    StudySpec,
    User,
    UserRow,
    write_exports,
)
from tests.databases import column_names, raw
from tests.fakes import WELL_FORMED as ANSWER_1
from tests.test_store import make_result

PASSWORD = "correct horse battery"
RUBRIC_0_1 = "0: The MODEL OUTPUT is not faithful to the CONTEXT.\n1: The MODEL OUTPUT is faithful to the CONTEXT."
RUBRIC_1_5 = "\n".join(f"{n}: level {n} of helpfulness." for n in range(1, 6))
TAGS = ("CONTEXT", "USER INPUT", "MODEL OUTPUT")


# scrypt's cost for the many users the tests create; the default cost is tested in the hashing tests.
FAST = 2**10


@pytest.fixture
def studies(store: Store) -> Studies:
    return Studies(store, password_cost=FAST)


@pytest.fixture
def admin(studies: Studies) -> User:
    return studies.create_user("boss", PASSWORD, role=ADMIN)


@pytest.fixture
def ann(studies: Studies) -> list[User]:
    """Four annotators."""
    return [studies.create_user(f"ann{i}", PASSWORD) for i in range(4)]


def spec(**changes: Any) -> StudySpec:
    values: dict[str, Any] = {"name": "Faithfulness", "pass_criteria": "Is the MODEL OUTPUT faithful?",
                              "rubric": RUBRIC_0_1, "tags": TAGS, "overlap_target": 3}
    values.update(changes)
    return StudySpec(**values)


def fields(n: int) -> dict[str, str]:
    return {"CONTEXT": f"Context number {n}.", "MODEL OUTPUT": f"Output number {n}."}


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


# ---- users and passwords


def test_password_is_stored_as_salted_scrypt(store: Store, db_url: str) -> None:
    studies = Studies(store)  # the default cost
    studies.create_user("ann", PASSWORD)
    studies.create_user("bob", PASSWORD)
    with raw(db_url) as sql:
        hashes = {name: encoded for name, encoded in sql.execute(text("SELECT username, password_hash FROM users"))}
    for encoded in hashes.values():
        assert encoded.startswith("scrypt$16384$8$1$")
        assert len(encoded.split("$")) == 6
        assert PASSWORD not in encoded and PASSWORD.encode().hex() not in encoded
    assert hashes["ann"] != hashes["bob"]  # salted: the same password hashes differently
    assert studies.authenticate("ann", PASSWORD) is not None
    # A hash made with another cost still verifies: the parameters are read from the hash.
    cheap = Studies(store, password_cost=FAST)
    cheap.create_user("cat", PASSWORD)
    assert studies.authenticate("cat", PASSWORD) is not None
    with pytest.raises(ValueError, match="power of two"):
        Studies(store, password_cost=1000)


def test_authenticate(studies: Studies) -> None:
    created = studies.create_user("ann", PASSWORD)
    assert studies.authenticate("ann", PASSWORD) == created
    assert studies.authenticate(" ann ", PASSWORD) == created
    assert studies.authenticate("ann", PASSWORD + "!") is None
    assert studies.authenticate("ann", "") is None
    assert studies.authenticate("nobody", PASSWORD) is None
    assert studies.get_user("ann") == created
    assert studies.get_user("nobody") is None
    assert created.role == ANNOTATOR and not created.is_admin
    assert created.created_at.tzinfo is not None


def test_password_check_is_constant_time_even_for_unknown_names(
    studies: Studies, monkeypatch: pytest.MonkeyPatch
) -> None:
    studies.create_user("ann", PASSWORD)
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert studies.authenticate("ann", PASSWORD) is not None
    assert studies.authenticate("ann", "wrong password") is None
    assert studies.authenticate("nobody", PASSWORD) is None  # still hashes and compares (same timing)
    assert len(calls) == 3
    assert all(len(a) == len(b) == 32 for a, b in calls)


@pytest.mark.parametrize(
    ("username", "password", "role", "message"),
    [
        ("", PASSWORD, ANNOTATOR, "empty"),
        ("has space", PASSWORD, ANNOTATOR, "not allowed"),
        ("x" * 65, PASSWORD, ANNOTATOR, "not allowed"),
        ("ann", "short", ANNOTATOR, "at least 8"),
        ("ann", PASSWORD, "superuser", "not one of"),
    ],
)
def test_bad_users_are_refused(studies: Studies, username: str, password: str, role: str, message: str) -> None:
    with pytest.raises(StudyInputError, match=message):
        studies.create_user(username, password, role=role)


def test_username_is_unique(studies: Studies) -> None:
    studies.create_user("ann", PASSWORD)
    with pytest.raises(StudyInputError, match="taken"):
        studies.create_user("ann", PASSWORD + "2")


def test_damaged_hash_never_matches(studies: Studies, db_url: str) -> None:
    studies.create_user("ann", PASSWORD)
    with raw(db_url) as sql:
        sql.execute(text("UPDATE users SET password_hash = 'scrypt$99999999999$8$1$AAAA$AAAA'"))
    assert studies.authenticate("ann", PASSWORD) is None


def test_list_users_is_for_admins(studies: Studies, admin: User, ann: list[User]) -> None:
    assert [u.username for u in studies.list_users(admin)] == ["ann0", "ann1", "ann2", "ann3", "boss"]
    with pytest.raises(PermissionDenied, match="Only an admin"):
        studies.list_users(ann[0])


# ---- studies and items


def test_create_study_infers_the_scale(studies: Studies, admin: User, ann: list[User]) -> None:
    study = studies.create_study(admin, spec(rubric=RUBRIC_1_5, description="d", judge_settings={"temp": 0},
                                             blind=False, overlap_target=2))
    assert study.scale == (1, 5)
    assert study.tags == TAGS
    assert (study.description, study.overlap_target, study.blind) == ("d", 2, False)
    assert study.judge_settings == {"temp": 0}
    assert study.created_by == "boss"
    assert studies.get_study(ann[0], study.id) == study  # annotators can read the study they label
    assert studies.list_studies(ann[0]) == [study]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"rubric": "Be nice."}, "names no scores"),
        ({"rubric": "1: only one"}, "only the score"),
        ({"name": "  "}, "needs a name"),
        ({"pass_criteria": ""}, "pass criteria"),
        ({"overlap_target": 0}, "at least 1"),
        ({"tags": ("A", "A")}, "twice"),
        ({"tags": ("<A>",)}, "may not contain"),
        ({"tags": ()}, "at least one"),
        ({"judge_settings": {"x": object()}}, "JSON"),
    ],
)
def test_bad_study_specs_are_refused(studies: Studies, admin: User, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(StudyInputError, match=message):
        studies.create_study(admin, spec(**changes))


def test_study_errors_are_input_errors() -> None:
    assert issubclass(StudyInputError, InputError) and issubclass(StudyInputError, ValueError)


def test_add_item_keeps_tag_order_and_drops_blank_fields(studies: Studies, admin: User) -> None:
    study = studies.create_study(admin, spec())
    item = studies.add_item(admin, study.id, {"MODEL OUTPUT": "out", "CONTEXT": "ctx", "USER INPUT": "  "},
                            external_id="q1")
    assert list(item.fields.items()) == [("CONTEXT", "ctx"), ("MODEL OUTPUT", "out")]
    assert item.external_id == "q1" and item.judgment_id is None
    assert studies.list_items(admin, study.id) == [item]
    with pytest.raises(StudyInputError, match="Unknown field tag"):
        studies.add_item(admin, study.id, {"GOLD": "x"})
    with pytest.raises(StudyInputError, match="empty"):
        studies.add_item(admin, study.id, {"CONTEXT": " "})
    with pytest.raises(StudyInputError, match="no stored judgment"):
        studies.add_item(admin, study.id, {"CONTEXT": "c"}, judgment_id=999)
    with pytest.raises(StudyInputError, match="no study"):
        studies.add_item(admin, 999, {"CONTEXT": "c"})


def test_add_item_refuses_an_item_whose_fields_equal_one_already_in_the_study(studies: Studies,
                                                                              admin: User) -> None:
    study = studies.create_study(admin, spec())
    first = studies.add_item(admin, study.id, {"CONTEXT": "Paris is in France.", "MODEL OUTPUT": "Paris."},
                             external_id="cap-1")
    # The same texts, copied with a trailing newline, spaces around them and CRLF line endings: the same item.
    for copy in ({"CONTEXT": "Paris is in France.", "MODEL OUTPUT": "Paris."},
                 {"MODEL OUTPUT": "  Paris.\n", "CONTEXT": "Paris is in France.\r\n", "USER INPUT": " "}):
        with pytest.raises(DuplicateItemError, match=r"already has an item with these fields: item #\d+ \(id 'cap-1'\)"
                           ) as refused:
            studies.add_item(admin, study.id, copy, external_id="cap-2")
        assert (refused.value.item_id, refused.value.external_id) == (first.id, "cap-1")
        assert isinstance(refused.value, StudyInputError)
    # Whitespace inside a text counts (an indent or a line break can change what it says); so does every field.
    kept = [studies.add_item(admin, study.id, fields) for fields in (
        {"CONTEXT": "Paris is in\nFrance.", "MODEL OUTPUT": "Paris."},
        {"CONTEXT": "Paris is  in France.", "MODEL OUTPUT": "Paris."},
        {"CONTEXT": "Paris is in France.", "MODEL OUTPUT": "Paris.", "USER INPUT": "Capital?"},
        {"MODEL OUTPUT": "Paris."},
    )]
    assert len(kept) == 4
    # An item without an external id is named by its id alone; the same fields in another study are fine.
    with pytest.raises(DuplicateItemError, match=rf"item #{kept[3].id}\. A copy would be labelled"):
        studies.add_item(admin, study.id, {"MODEL OUTPUT": "Paris."})
    other = studies.create_study(admin, spec(name="Other"))
    studies.add_item(admin, other.id, {"MODEL OUTPUT": "Paris."})
    assert len(studies.list_items(admin, study.id)) == 5


def test_import_refuses_rows_whose_fields_repeat_an_item_or_an_earlier_row(studies: Studies, admin: User,
                                                                           tmp_path: Path) -> None:
    study = studies.create_study(admin, spec())
    known = studies.add_item(admin, study.id, {"CONTEXT": "c0", "MODEL OUTPUT": "o0"}, external_id="k0")
    path = write(tmp_path / "items.csv", (
        "id,context,output\n"
        "r1,c1,o1\n"
        "r2,c0,o0 \n"   # row 2: the item k0 already in the study (up to a trailing space)
        "r3,c1,o1\n"    # row 3: row 1 again under another id
        "r4,c1,o2\n"    # row 4: a different item
    ))
    report = studies.import_items(admin, study.id, path, {"CONTEXT": "context", "MODEL OUTPUT": "output"},
                                  id_column="id")
    assert report.added == 2
    assert [(e.row, e.message) for e in report.errors] == [
        (2, f"Has the same fields as item #{known.id} (id 'k0'), already in the study."),
        (3, "Repeats the fields of row 1."),
    ]
    assert [i.external_id for i in studies.list_items(admin, study.id)] == ["k0", "r1", "r4"]


def test_attach_judgment_and_deleting_it_later(studies: Studies, store: Store, admin: User) -> None:
    study = studies.create_study(admin, spec())
    item = studies.add_item(admin, study.id, fields(1))
    judgment_id = store.save_grade(make_result())
    studies.attach_judgment(admin, item.id, judgment_id)
    assert studies.get_item(admin, item.id).judgment_id == judgment_id
    # Deleting the judgment from History still works; the item stays, unlinked.
    assert store.delete_judgment(judgment_id)
    assert studies.get_item(admin, item.id).judgment_id is None


# ---- files


def test_import_csv_with_mapping_keeps_good_rows(studies: Studies, admin: User, tmp_path: Path) -> None:
    study = studies.create_study(admin, spec())
    path = write(tmp_path / "items.csv", (
        "id,question,context,answer\n"
        "a1,What?,Some context,An answer\n"          # row 1: good
        "a2,,,\n"                                    # row 2: every mapped field empty
        'a3,"Multi\nline?",ctx,"ans, with comma"\n'  # row 3: good, quoted
        "a4,q,c,a,EXTRA\n"                           # row 4: too many values
        "a5,q\n"                                     # row 5: short: context/answer missing
        "a6,NA,null,None\n"                          # row 6: good: these are texts, not missing values
    ))
    mapping = {"USER INPUT": "question", "CONTEXT": "context", "MODEL OUTPUT": "answer"}
    report = studies.import_items(admin, study.id, path, mapping, id_column="id")
    assert report.added == 3
    assert [e.row for e in report.errors] == [2, 4, 5]
    assert "empty" in report.errors[0].message
    assert "5 values" in report.errors[1].message and "4 columns" in report.errors[1].message
    assert "'context'" in report.errors[2].message
    items = studies.list_items(admin, study.id)
    assert [i.id for i in items] == report.item_ids
    assert [i.external_id for i in items] == ["a1", "a3", "a6"]
    assert items[0].fields == {"CONTEXT": "Some context", "USER INPUT": "What?", "MODEL OUTPUT": "An answer"}
    assert list(items[0].fields) == ["CONTEXT", "USER INPUT", "MODEL OUTPUT"]  # the study's tag order
    assert items[1].fields["USER INPUT"] == "Multi\nline?"
    assert items[2].fields == {"CONTEXT": "null", "USER INPUT": "NA", "MODEL OUTPUT": "None"}


def test_texts_longer_than_their_column_are_refused_the_same_way_on_every_database(studies: Studies, admin: User,
                                                                                   tmp_path: Path) -> None:
    """PostgreSQL enforces VARCHAR(n), SQLite keeps any length: core checks first, so both refuse alike."""
    study = studies.create_study(admin, spec())
    with pytest.raises(ValueTooLongError, match="The item's id is 513 characters long; at most 512 can be stored"):
        studies.add_item(admin, study.id, fields(1), external_id="x" * 513)
    path = write(tmp_path / "ids.csv", f"id,context,answer\n{'y' * 600},c,a\nok,c2,a2\n")
    report = studies.import_items(admin, study.id, path, {"CONTEXT": "context", "MODEL OUTPUT": "answer"},
                                  id_column="id")
    assert report.added == 1 and [e.row for e in report.errors] == [1] and "600 characters" in report.errors[0].message
    assert studies.add_item(admin, study.id, fields(2), external_id="x" * 512).external_id == "x" * 512
    with pytest.raises(StudyInputError, match="longer than 200"):
        studies.create_study(admin, spec(name="n" * 201))


def test_import_jsonl_reports_broken_lines_by_number(studies: Studies, admin: User, tmp_path: Path) -> None:
    study = studies.create_study(admin, spec())
    lines = [
        json.dumps({"id": 1, "ctx": "c1", "out": "o1"}),
        '{"id": 2, "ctx": "c2", "out": ',                         # line 2: broken JSON
        "",                                                       # line 3: blank, skipped
        json.dumps([1, 2]),                                       # line 4: not an object
        json.dumps({"id": 5, "ctx": "c5", "out": 42}),            # line 5: not text
        json.dumps({"id": 6, "ctx": "c6"}),                       # line 6: missing key
        json.dumps({"id": 7, "ctx": "line\u2028sep", "out": None}),  # line 7: good; null is blank
        json.dumps({"id": 8, "ctx": "é ü 中", "out": "o8"}, ensure_ascii=False),
    ]
    path = write(tmp_path / "items.jsonl", "\n".join(lines) + "\n")
    report = studies.import_items(admin, study.id, path, {"CONTEXT": "ctx", "MODEL OUTPUT": "out"}, id_column="id")
    assert report.added == 3
    assert [e.row for e in report.errors] == [2, 4, 5, 6]
    assert "Not valid JSON" in report.errors[0].message
    assert "JSON object" in report.errors[1].message
    assert "not text" in report.errors[2].message
    assert "'out'" in report.errors[3].message
    items = studies.list_items(admin, study.id)
    assert [i.external_id for i in items] == ["1", "7", "8"]
    assert items[1].fields == {"CONTEXT": "line\u2028sep"}
    assert items[2].fields["CONTEXT"] == "é ü 中"


def test_import_latin1_csv_with_a_note(studies: Studies, admin: User, tmp_path: Path) -> None:
    study = studies.create_study(admin, spec())
    path = write(tmp_path / "latin.csv", "context,output\nCafé crème,Très bien\n", encoding="latin-1")
    report = studies.import_items(admin, study.id, path, {"CONTEXT": "context", "MODEL OUTPUT": "output"})
    assert report.added == 1
    assert report.errors == [RowError(0, report.errors[0].message)]
    assert "not UTF-8" in report.errors[0].message
    assert studies.list_items(admin, study.id)[0].fields == {"CONTEXT": "Café crème", "MODEL OUTPUT": "Très bien"}


def test_utf8_bom_semicolons_and_tsv(studies: Studies, tmp_path: Path) -> None:
    bom = write(tmp_path / "bom.csv", "context,output\nc,o\n", encoding="utf-8-sig")
    assert studies.preview_file(bom) == (["context", "output"], [{"context": "c", "output": "o"}])
    semi = write(tmp_path / "semi.csv", "context;output\nc, with comma;o\n")
    assert studies.preview_file(semi) == (["context", "output"], [{"context": "c, with comma", "output": "o"}])
    tsv = write(tmp_path / "t.tsv", "context\toutput\nc\to\n")
    assert studies.preview_file(tsv)[0] == ["context", "output"]


def test_preview_file(studies: Studies, tmp_path: Path) -> None:
    path = write(tmp_path / "p.jsonl", "\n".join(json.dumps({"a": i, "b": f"t{i}"}) for i in range(10)))
    columns, rows = studies.preview_file(path, rows=3)
    assert columns == ["a", "b"]
    assert rows == [{"a": 0, "b": "t0"}, {"a": 1, "b": "t1"}, {"a": 2, "b": "t2"}]


def test_json_array_files(studies: Studies, admin: User, tmp_path: Path) -> None:
    study = studies.create_study(admin, spec())
    path = write(tmp_path / "items.json", json.dumps([{"out": "o1"}, "not an object", {"out": "o3"}]))
    report = studies.import_items(admin, study.id, path, {"MODEL OUTPUT": "out"})
    assert report.added == 2
    assert [e.row for e in report.errors] == [2]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("broken.jsonl", b"{nope\n[1]\n", "No row of broken.jsonl could be read: row 1: Not valid JSON"),
        ("broken.json", b"[{]", "not valid JSON"),
        ("empty.csv", b"", "empty"),
        ("blank.jsonl", b"\n \n", "empty"),
        ("header.csv", b"context,output\n", "no data rows"),
        ("sheet.csv", b"PK\x03\x04rest", "spreadsheet"),
        ("bin.csv", b"a,b\n\x00\x01,2\n", "binary"),
    ],
)
def test_unreadable_files(studies: Studies, tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(StudyInputError, match=message):
        studies.preview_file(path)


def test_missing_file_and_columns(studies: Studies, admin: User, tmp_path: Path) -> None:
    study = studies.create_study(admin, spec())
    with pytest.raises(StudyInputError, match="no file"):
        studies.preview_file(tmp_path / "missing.csv")
    path = write(tmp_path / "x.csv", "context,output\nc,o\n")
    with pytest.raises(StudyInputError, match="no column 'answer'.*'context', 'output'"):
        studies.import_items(admin, study.id, path, {"MODEL OUTPUT": "answer"})
    with pytest.raises(StudyInputError, match="Unknown field tag"):
        studies.import_items(admin, study.id, path, {"GOLD": "output"})
    with pytest.raises(StudyInputError, match="Map at least one"):
        studies.import_items(admin, study.id, path, {"CONTEXT": ""})
    with pytest.raises(StudyInputError, match="no column 'id'"):
        studies.import_items(admin, study.id, path, {"CONTEXT": "context"}, id_column="id")


def test_reimport_reports_known_and_repeated_ids(studies: Studies, admin: User, tmp_path: Path) -> None:
    study = studies.create_study(admin, spec())
    path = write(tmp_path / "x.csv", "id,output\n1,a\n2,b\n")
    assert studies.import_items(admin, study.id, path, {"MODEL OUTPUT": "output"}, id_column="id").added == 2
    again = write(tmp_path / "y.csv", "id,output\n1,a\n3,c\n3,d\n")
    report = studies.import_items(admin, study.id, again, {"MODEL OUTPUT": "output"}, id_column="id")
    assert report.added == 1
    assert [(e.row, "already in the study" in e.message or "Repeats" in e.message) for e in report.errors] == [
        (1, True), (3, True)]


def test_long_fields_are_imported_whole(studies: Studies, admin: User, tmp_path: Path) -> None:
    study = studies.create_study(admin, spec())
    long_text = "x" * 300_000  # longer than the csv module's default field limit
    path = write(tmp_path / "long.csv", f"context,output\n{long_text},o\n")
    report = studies.import_items(admin, study.id, path, {"CONTEXT": "context", "MODEL OUTPUT": "output"})
    assert report.errors == []
    assert studies.get_item(admin, report.item_ids[0]).fields["CONTEXT"] == long_text


# ---- the queue


def _label_all(studies: Studies, user: User, study_id: int, score: int = 1) -> list[int]:
    """Label the queue to the end; the item ids in the order they were offered."""
    seen: list[int] = []
    while (item := studies.next_item(user, study_id)) is not None:
        assert item.id not in seen
        seen.append(item.id)
        studies.submit(user, item.id, score)
    return seen


def test_queue_order_is_stable_and_randomized(studies: Studies, admin: User, ann: list[User], db_url: str) -> None:
    study = studies.create_study(admin, spec(overlap_target=2))
    inserted = [studies.add_item(admin, study.id, fields(n)).id for n in range(20)]
    with Store(db_url) as other_store:  # a second process, in effect
        other = Studies(other_store)
        assert other.next_item(ann[1], study.id) == studies.next_item(ann[0], study.id)
        first = _label_all(studies, ann[0], study.id)
        second = _label_all(other, ann[1], study.id)
    assert first == second
    assert sorted(first) == inserted
    assert first != inserted  # shuffled, not insertion order
    keys = {i.id: i.order_key for i in studies.list_items(admin, study.id)}
    assert first == sorted(inserted, key=lambda i: (keys[i], i))
    assert studies.next_item(ann[2], study.id) is None  # every item has its 2 labels


def test_skipping_items(studies: Studies, admin: User, ann: list[User]) -> None:
    study = studies.create_study(admin, spec(overlap_target=1))
    queue = sorted((studies.add_item(admin, study.id, fields(n)) for n in range(3)), key=lambda i: i.order_key)
    me = ann[0]
    assert studies.next_item(me, study.id) == queue[0]
    assert studies.next_item(me, study.id, skip=[queue[0].id]) == queue[1]
    # The claim moved with the skip: another annotator now gets the skipped item, not the one I hold.
    assert studies.next_item(ann[1], study.id) == queue[0]
    assert studies.next_item(me, study.id, skip=[q.id for q in queue]) is None
    with pytest.raises(StudyInputError, match="no item"):
        studies.next_item(me, study.id, skip=["x"])  # type: ignore[list-item]


def test_overlap_target_is_respected(studies: Studies, admin: User, ann: list[User]) -> None:
    study = studies.create_study(admin, spec(overlap_target=3))
    item = studies.add_item(admin, study.id, fields(1))
    for user in ann[:3]:
        assert studies.next_item(user, study.id) == studies.get_item(admin, item.id)
        studies.submit(user, item.id, 1)
        assert studies.next_item(user, study.id) is None  # already labelled by this user
    assert studies.next_item(ann[3], study.id) is None  # full: 3 labels
    progress = studies.progress(ann[3], study.id)
    assert (progress.labelled_by_me, progress.total_items, progress.items_complete) == (0, 1, 1)
    assert (progress.overlap_target, progress.annotators) == (3, 3)
    assert studies.progress(ann[0], study.id).labelled_by_me == 1


def test_claims_keep_simultaneous_annotators_apart(studies: Studies, store: Store, admin: User,
                                                   ann: list[User]) -> None:
    study = studies.create_study(admin, spec(overlap_target=1))
    first, second = sorted((studies.add_item(admin, study.id, fields(n)) for n in range(2)),
                           key=lambda item: item.order_key)
    assert studies.next_item(ann[0], study.id) == first
    assert studies.next_item(ann[0], study.id) == first  # asking again: the same item
    assert studies.next_item(ann[1], study.id) == second  # first's only place is taken by ann0's claim
    # Every open place is claimed now: ann2 still gets an item (a claim may be abandoned), never "done".
    assert studies.next_item(ann[2], study.id) == first
    studies.submit(ann[0], first.id, 1)
    assert studies.next_item(ann[2], study.id) == second  # first is full now
    # Claims expire: with a zero claim time nobody's claim counts.
    assert Studies(store, claim_seconds=0).next_item(ann[3], study.id) == second
    studies.submit(ann[1], second.id, 0)
    assert studies.next_item(ann[2], study.id) is None


# ---- labelling


@pytest.fixture
def blind_item(studies: Studies, store: Store, admin: User) -> tuple[int, int, int]:
    """(study id, item id, judgment id) of a graded item in a blind 1-5 study."""
    study = studies.create_study(admin, spec(rubric=RUBRIC_1_5))
    judgment_id = store.save_grade(make_result())
    item = studies.add_item(admin, study.id, {"CONTEXT": "France's capital is Paris.", "MODEL OUTPUT": "Paris."},
                            judgment_id=judgment_id)
    return study.id, item.id, judgment_id


def test_blind_flow(studies: Studies, ann: list[User], blind_item: tuple[int, int, int]) -> None:
    study_id, item_id, judgment_id = blind_item
    me = ann[0]
    offered = studies.next_item(me, study_id)
    assert offered is not None and offered.judgment_id is None  # the verdict stays hidden
    assert studies.get_item(me, item_id).judgment_id is None
    label = studies.submit(me, item_id, 2, spans=[{"field": "MODEL OUTPUT", "start": 0, "end": 5}],
                           comment="too short", seconds=12.5)
    assert (label.score, label.score_before_reveal, label.score_after_reveal) == (2, 2, None)
    assert label.spans == [{"field": "MODEL OUTPUT", "start": 0, "end": 5}]
    assert (label.annotator, label.comment, label.seconds, label.study_id) == ("ann0", "too short", 12.5, study_id)
    assert studies.get_item(me, item_id).judgment_id == judgment_id  # now it may be revealed
    confirmed = studies.confirm_after_reveal(me, label.id, 4)
    assert (confirmed.score, confirmed.score_before_reveal, confirmed.score_after_reveal) == (4, 2, 4)
    with pytest.raises(StudyInputError, match="already confirmed"):
        studies.confirm_after_reveal(me, label.id, 3)
    assert studies.get_annotation(me, label.id) == confirmed
    assert studies.my_annotations(me, study_id) == [confirmed]
    assert studies.my_annotations(ann[1], study_id) == []


def test_one_label_per_item_and_annotator(studies: Studies, ann: list[User], blind_item: tuple[int, int, int],
                                          db_url: str) -> None:
    _, item_id, _ = blind_item
    first = studies.submit(ann[0], item_id, 3, comment="ok")
    assert studies.submit(ann[0], item_id, 3, comment="ok", seconds=99) == first  # a repeat is idempotent
    with pytest.raises(StudyInputError, match="already labelled.*edit"):
        studies.submit(ann[0], item_id, 4)
    with raw(db_url) as sql:
        assert sql.execute(text("SELECT count(*) FROM annotations")).scalar_one() == 1


@pytest.mark.parametrize(
    ("score", "spans", "message"),
    [
        (0, (), "outside this study's scale 1-5"),
        (6, (), "outside"),
        (2.5, (), "whole number"),
        (True, (), "whole number"),
        (3, [{"field": "GOLD ANSWER", "start": 0, "end": 1}], "does not have"),
        (3, [{"field": "MODEL OUTPUT", "start": 0, "end": 7}], "outside the MODEL OUTPUT text, which has 6"),
        (3, [{"field": "MODEL OUTPUT", "start": 3, "end": 3}], "start < end"),
        (3, [{"field": "MODEL OUTPUT", "start": -1, "end": 2}], "outside"),
        (3, [{"field": "MODEL OUTPUT"}], "must have"),
    ],
)
def test_bad_labels_are_refused(studies: Studies, ann: list[User], blind_item: tuple[int, int, int],
                                score: Any, spans: Any, message: str) -> None:
    with pytest.raises(StudyInputError, match=message):
        studies.submit(ann[0], blind_item[1], score, spans=spans)
    assert studies.progress(ann[0], blind_item[0]).labelled_by_me == 0


def test_edit_history(studies: Studies, ann: list[User], admin: User, blind_item: tuple[int, int, int]) -> None:
    _, item_id, _ = blind_item
    me = ann[0]
    label = studies.submit(me, item_id, 2, comment="first")
    studies.confirm_after_reveal(me, label.id, 3)
    assert studies.history(me, label.id) == []
    edited = studies.edit(me, label.id, score=5, comment="second")
    assert (edited.score, edited.score_before_reveal, edited.score_after_reveal, edited.comment) == (5, 2, 3, "second")
    assert studies.edit(me, label.id, score=5, comment="second") == edited  # no change, no history entry
    span = [{"field": "CONTEXT", "start": 0, "end": 6}]
    studies.edit(me, label.id, spans=span)
    edits = studies.history(me, label.id)
    assert [e.changes for e in edits] == [
        {"score": (3, 5), "comment": ("first", "second")},
        {"spans": ([], span)},
    ]
    assert all(e.editor == "ann0" and e.annotation_id == label.id for e in edits)
    assert edits[0].at <= edits[1].at
    assert studies.history(admin, label.id) == edits  # admins may read any history
    with pytest.raises(StudyInputError, match="outside"):
        studies.edit(me, label.id, score=9)


# ---- authorization


def test_annotators_only_reach_their_own_labels(studies: Studies, admin: User, ann: list[User],
                                                blind_item: tuple[int, int, int]) -> None:
    _, item_id, _ = blind_item
    a, b = ann[0], ann[1]
    label = studies.submit(a, item_id, 3)
    for attempt in (
        lambda: studies.get_annotation(b, label.id),
        lambda: studies.history(b, label.id),
        lambda: studies.edit(b, label.id, score=1),
        lambda: studies.confirm_after_reveal(b, label.id, 1),
        lambda: studies.edit(admin, label.id, comment="admins see labels, they do not change them"),
    ):
        with pytest.raises(PermissionDenied, match="another annotator's label"):
            attempt()
    assert studies.get_annotation(admin, label.id) == studies.get_annotation(a, label.id)
    assert studies.get_annotation(a, label.id).score == 3  # untouched


ADMIN_ONLY = {
    "list_users": lambda s, u, ids: s.list_users(u),
    "create_study": lambda s, u, ids: s.create_study(u, spec()),
    "add_item": lambda s, u, ids: s.add_item(u, ids[0], fields(9)),
    "import_items": lambda s, u, ids: s.import_items(u, ids[0], ids[3], {"CONTEXT": "context"}),
    "attach_judgment": lambda s, u, ids: s.attach_judgment(u, ids[1], ids[2]),
    "list_items": lambda s, u, ids: s.list_items(u, ids[0]),
    "ratings": lambda s, u, ids: s.ratings(u, ids[0]),
    "export_rows": lambda s, u, ids: s.export_rows(u, ids[0]),
}


@pytest.mark.parametrize("method", sorted(ADMIN_ONLY))
def test_admin_only_methods(studies: Studies, admin: User, ann: list[User], blind_item: tuple[int, int, int],
                            tmp_path: Path, method: str) -> None:
    ids = (*blind_item, write(tmp_path / "f.csv", "context\nc\n"))
    with pytest.raises(PermissionDenied, match="Only an admin"):
        ADMIN_ONLY[method](studies, ann[0], ids)
    ADMIN_ONLY[method](studies, admin, ids)  # allowed for an admin


def test_unknown_or_forged_actors_are_refused(studies: Studies, admin: User, db_url: str) -> None:
    forged = User(id=admin.id, username="mallory", role=ADMIN, created_at=admin.created_at)
    with pytest.raises(PermissionDenied, match="sign in again"):
        studies.list_users(forged)
    with pytest.raises(PermissionDenied, match="Sign in"):
        studies.list_studies(None)  # type: ignore[arg-type]
    # A demoted admin loses admin rights at once: the role is read from the database, not the object.
    with raw(db_url) as sql:
        sql.execute(text("UPDATE users SET role = 'annotator' WHERE username = 'boss'"))
    with pytest.raises(PermissionDenied, match="Only an admin"):
        studies.create_study(admin, spec())


# ---- reporting


@pytest.fixture
def reported_study(studies: Studies, store: Store, admin: User, ann: list[User]) -> int:
    """Item 1: graded ok (score 1), labelled by ann0 and ann1; item 2: judgment failed, labelled by ann2;
    item 3: not graded, not labelled."""
    study = studies.create_study(admin, spec(name="Report"))
    ok = store.save_grade(make_result())
    failed = store.save_grade(make_result(raw="no tags at all"))
    one = studies.add_item(admin, study.id, {"CONTEXT": "France's capital is Paris.",
                                             "MODEL OUTPUT": "Paris is the capital of France."},
                           external_id="e1", judgment_id=ok)
    two = studies.add_item(admin, study.id, fields(2), judgment_id=failed)
    studies.add_item(admin, study.id, fields(3))
    label = studies.submit(ann[0], one.id, 0, spans=[{"field": "MODEL OUTPUT", "start": 0, "end": 5}],
                           comment="tab\t\"quote\"", seconds=3)
    studies.confirm_after_reveal(ann[0], label.id, 1)
    studies.submit(ann[1], one.id, 1)
    studies.submit(ann[2], two.id, 0)
    return study.id


def test_ratings_rows(studies: Studies, store: Store, admin: User, reported_study: int) -> None:
    rows = studies.ratings(admin, reported_study)
    required = {"item_id", "annotator", "human_score", "model_score", "model_status", "human_score_before_reveal",
                "human_score_after_reveal", "human_spans", "model_spans", "fields"}
    assert all(required <= set(row) for row in rows)
    assert [(r["annotator"], r["human_score"], r["model_score"], r["model_status"]) for r in rows] == [
        ("ann0", 1, 1, "ok"),
        ("ann1", 1, 1, "ok"),
        ("ann2", 0, None, "failed"),  # a failed parse is never a model score
        (None, None, None, None),  # the unlabelled, ungraded item still has its row
    ]
    first = rows[0]
    assert (first["human_score_before_reveal"], first["human_score_after_reveal"]) == (0, 1)
    assert first["human_spans"] == [{"field": "MODEL OUTPUT", "start": 0, "end": 5}]
    judgment = store.get_judgment(store.list_judgments()[-1].id)
    assert judgment is not None and first["model_spans"] == judgment.spans
    assert first["fields"] == {"CONTEXT": "France's capital is Paris.",
                               "MODEL OUTPUT": "Paris is the capital of France."}
    assert rows[3]["human_spans"] == [] and rows[3]["model_spans"] == []


def test_a_study_with_unlabelled_items_gets_its_report(studies: Studies, store: Store, admin: User,
                                                        reported_study: int) -> None:
    """The rows ratings() adds for unlabelled items are counted, never read as ratings (they once made the
    report fail with "annotator is empty" for any study not fully labelled)."""
    graded_only = studies.add_item(admin, reported_study, fields(4), judgment_id=store.save_grade(make_result()))
    report = agreement_report(studies.ratings(admin, reported_study), studies.get_study(admin, reported_study).scale)
    assert report["n_items_total"] == 4 and report["n_annotators"] == 3 and report["n_ratings"] == 3
    assert report["n_items"] == 1  # item 1: graded and labelled
    assert report["excluded"] == {"missing_human_score": 0, "parse_failed": 1, "not_graded": 1,
                                  "no_human_label": 1}
    assert graded_only.id not in {row["item_id"] for row in report["disagreements"]}
    with pytest.raises(InputError, match="annotator is empty"):  # a score still needs its annotator
        agreement_report([{"item_id": 1, "annotator": None, "human_score": 1, "model_score": 1}])


def test_export_rows(studies: Studies, admin: User, reported_study: int) -> None:
    rows = studies.export_rows(admin, reported_study)
    assert len(rows) == 3  # one per annotation
    assert len({tuple(row) for row in rows}) == 1  # every row has the same columns, in the same order
    first = rows[0]
    assert first["study"] == "Report" and first["external_id"] == "e1"
    assert (first["CONTEXT"], first["USER INPUT"], first["MODEL OUTPUT"]) == (
        "France's capital is Paris.", "", "Paris is the capital of France.")
    assert (first["annotator"], first["score"], first["score_before_reveal"], first["score_after_reveal"]) == (
        "ann0", 1, 0, 1)
    assert (first["comment"], first["seconds"]) == ('tab\t"quote"', 3.0)
    assert first["blind"] is True  # says that score_before_reveal was given without the verdict
    assert json.loads(first["spans"]) == [{"field": "MODEL OUTPUT", "start": 0, "end": 5}]
    assert (first["model_score"], first["model_status"]) == (1, "ok")
    assert "Paris is the capital of France" in first["model_reasoning"]
    assert json.loads(first["model_highlights"]) == ["Paris is the capital of France", "capital"]
    assert json.loads(first["model_distribution"]) == {"0": 0.125, "1": 0.875}
    assert first["judgment_id"] is not None
    assert (rows[2]["model_status"], rows[2]["model_score"]) == ("failed", None)


def test_reports_read_every_label_and_judgment_in_one_query(studies: Studies, store: Store, admin: User,
                                                             ann: list[User], reported_study: int) -> None:
    """ratings() and export_rows() join items, labels, annotators and judgments: the number of statements does
    not grow with the study (they once read each item's judgment on its own)."""
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    def reads(report: Any) -> int:
        statements.clear()
        event.listen(store.engine, "before_cursor_execute", count)
        try:
            report(admin, reported_study)
        finally:
            event.remove(store.engine, "before_cursor_execute", count)
        return len(statements)

    before = {report: reads(report) for report in (studies.ratings, studies.export_rows)}
    for n in range(10, 16):  # six more graded items, each labelled twice
        item = studies.add_item(admin, reported_study, fields(n), judgment_id=store.save_grade(make_result()))
        studies.submit(ann[0], item.id, 1)
        studies.submit(ann[3], item.id, 0)
    assert {report: reads(report) for report in before} == before
    assert len(studies.export_rows(admin, reported_study)) == 3 + 12
    judged = [row for row in studies.ratings(admin, reported_study) if row["model_status"] == "ok"]
    assert len(judged) == 2 + 12 and {row["model_score"] for row in judged} == {1}


def test_write_exports_writes_what_the_agreement_tab_offers(studies: Studies, admin: User, ann: list[User],
                                                            reported_study: int, tmp_path: Path) -> None:
    report = agreement_report(studies.ratings(admin, reported_study), (0, 1), n_resamples=0)
    paths = write_exports(studies, admin, reported_study, report, tmp_path)
    assert [path.name for path in paths] == [f"study-{reported_study}-annotations.csv",
                                             f"study-{reported_study}-annotations.jsonl",
                                             f"study-{reported_study}-report.json"]
    rows = studies.export_rows(admin, reported_study)
    csv = pd.read_csv(paths[0], keep_default_na=False)
    assert list(csv.columns) == list(rows[0]) and list(csv["annotator"]) == ["ann0", "ann1", "ann2"]
    assert csv["comment"][0] == 'tab\t"quote"' and json.loads(csv["spans"][0]) == json.loads(rows[0]["spans"])
    lines = [json.loads(line) for line in paths[1].read_text(encoding="utf-8").splitlines()]
    assert lines == rows
    written = json.loads(paths[2].read_text(encoding="utf-8"))
    assert written["n_ratings"] == report["n_ratings"] and written["excluded"] == report["excluded"]
    # The files go back into the agreement statistics as they are.
    for path in paths[:2]:
        again = agreement_report(load_ratings(path), (0, 1), n_resamples=0)
        assert again["n_ratings"] == report["n_ratings"] and again["exact"] == report["exact"]
    with pytest.raises(PermissionDenied, match="Only an admin may export"):
        write_exports(studies, ann[0], reported_study, report, tmp_path)


@pytest.mark.parametrize("tag", ["", "   ", "A<B", "B>", "two\nlines", "c\rr"])
def test_studies_and_prompts_refuse_the_same_tags_with_the_same_words(studies: Studies, admin: User,
                                                                      tag: str) -> None:
    """One tag rule (core.prompt.check_tag): a study cannot be created with tags its prompts would refuse."""
    with pytest.raises(InputError) as from_prompt:
        build_prompt({tag: "text"}, "criteria", RUBRIC_0_1)
    with pytest.raises(StudyInputError) as from_study:
        studies.create_study(admin, spec(tags=("CONTEXT", tag)))
    assert str(from_study.value) == str(from_prompt.value)


# ---- schema


def test_migration_2_upgrades_a_version_1_database(db_url: str) -> None:
    with Store(db_url, migrations=MIGRATIONS[:1]) as old:
        judgment_id = old.save_grade(make_result())
        assert old.schema_version() == 1
    with Store(db_url) as new:
        assert new.schema_version() == len(MIGRATIONS)
        stored = new.get_judgment(judgment_id)
        assert stored is not None and stored.score == 1
        upgraded = Studies(new)
        boss = upgraded.create_user("boss", PASSWORD, role=ADMIN)
        study = upgraded.create_study(boss, spec())
        item = upgraded.add_item(boss, study.id, fields(1), judgment_id=judgment_id)
        assert upgraded.get_item(boss, item.id).judgment_id == judgment_id
    with raw(db_url) as sql:
        tables = set(inspect(sql).get_table_names())
        assert {"judgments", "users", "studies", "items", "annotations", "annotation_edits"} <= tables
        applied = sql.execute(text("SELECT version, name FROM schema_migrations ORDER BY version")).fetchall()
        assert applied[:2] == [(1, "create_judgments"), (2, "create_studies")]
        assert [version for version, _ in applied] == list(range(1, len(MIGRATIONS) + 1))


@pytest.mark.parametrize("model", [UserRow, StudyRow, ItemRow, AnnotationRow, AnnotationEditRow])
def test_orm_models_match_the_migrated_schema(store: Store, db_url: str, model: Any) -> None:
    columns = column_names(db_url, model.__tablename__)
    assert columns == [column.name for column in model.__table__.columns]


def test_the_database_itself_keeps_one_label_per_item_and_annotator(
    studies: Studies, ann: list[User], blind_item: tuple[int, int, int], db_url: str
) -> None:
    studies.submit(ann[0], blind_item[1], 3)
    with pytest.raises(IntegrityError, match="(?i)unique"), raw(db_url) as sql:
        sql.execute(text("INSERT INTO annotations (study_id, item_id, annotator_id, score, score_before_reveal, "
                         "spans, comment, seconds, created_at, updated_at) SELECT study_id, item_id, annotator_id, 1, "
                         "1, '[]', '', 0, created_at, updated_at FROM annotations"))


def strict_json(report: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(report, allow_nan=False))


# ---- the blind headline: scores from before the reveal, held against a hand computation

RUBRIC_1_3 = "1: Wrong.\n2: Partly right.\n3: Right."
# Eight items of a blind 1-3 study, labelled by two annotators. Scores given BEFORE the model's verdict:
MODEL = [1, 2, 3, 3, 2, 1, 2, 3]
BLIND_A = [1, 2, 2, 3, 1, 1, 3, 3]
BLIND_B = [2, 2, 3, 2, 2, 1, 2, 1]
# After the reveal, four labels moved towards the model: A changed items 2 and 4 and B item 3 when confirming;
# B kept item 7 at the reveal and edited it later (← Previous). A never confirmed item 5 (a reload).
AFTER_A = [1, 2, 3, 3, 2, 1, 3, 3]
AFTER_B = [2, 2, 3, 3, 2, 1, 2, 3]


def scored_result(score: int) -> Any:
    """A stored judgment whose parsed score on the 1-3 scale is `score`."""
    raw = ANSWER_1.replace("<score>\n1\n</score>", f"<score>\n{score}\n</score>")
    return replace(make_result(raw=raw), judgment=parse_output(raw, (1, 3)), scale=(1, 3))


@pytest.fixture
def anchored_study(studies: Studies, store: Store, admin: User, ann: list[User]) -> int:
    study = studies.create_study(admin, spec(name="Anchored", rubric=RUBRIC_1_3, overlap_target=2))
    items = [studies.add_item(admin, study.id, fields(n), external_id=f"q-{n}",
                              judgment_id=store.save_grade(scored_result(m))).id
             for n, m in enumerate(MODEL)]
    a, b = ann[0], ann[1]
    for item_id, (blind_a, after_a, blind_b, after_b) in zip(
            items, zip(BLIND_A, AFTER_A, BLIND_B, AFTER_B, strict=True), strict=True):
        label = studies.submit(a, item_id, blind_a)
        if item_id != items[5]:
            studies.confirm_after_reveal(a, label.id, after_a)
        label = studies.submit(b, item_id, blind_b)
        studies.confirm_after_reveal(b, label.id, blind_b if item_id == items[7] else after_b)
    later = next(x for x in studies.my_annotations(b, study.id) if x.item_id == items[7])
    edited = studies.edit(b, later.id, score=AFTER_B[7], comment="changed my mind")
    assert (edited.score, edited.score_before_reveal, edited.score_after_reveal) == (3, 1, 1)
    return study.id


def hand_numbers(a: list[int], b: list[int]) -> dict[str, float]:
    """The pooled headline by hand: item means, rounded half up, vs the model; alpha on the two lists."""
    means = [(x + y) / 2 for x, y in zip(a, b, strict=True)]
    rounded = [math.floor(m + 0.5) for m in means]
    return {
        "pearson": stats.pearsonr(means, MODEL).statistic,
        "exact": sum(r == m for r, m in zip(rounded, MODEL, strict=True)) / len(MODEL),
        "weighted_kappa": cohen_kappa_score(rounded, MODEL, labels=[1, 2, 3], weights="quadratic"),
        "krippendorff_alpha_ordinal": krippendorff.alpha(reliability_data=[a, b], value_domain=[1, 2, 3],
                                                         level_of_measurement="ordinal"),
    }


def test_a_later_edit_never_changes_the_score_given_before_the_reveal(
        studies: Studies, admin: User, ann: list[User], anchored_study: int) -> None:
    b = ann[1]
    for label in studies.my_annotations(b, anchored_study):
        studies.edit(b, label.id, score=1 if label.score != 1 else 2)
    assert [x.score_before_reveal for x in studies.my_annotations(b, anchored_study)] == BLIND_B
    rows = [r for r in studies.ratings(admin, anchored_study) if r["annotator"] == "ann1"]
    assert [r["human_score_before_reveal"] for r in rows] == BLIND_B
    assert all("score_before_reveal" not in e.changes for x in studies.my_annotations(b, anchored_study)
               for e in studies.history(b, x.id))


def test_a_blind_study_reports_the_scores_from_before_the_reveal(
        studies: Studies, admin: User, anchored_study: int) -> None:
    assert (BLIND_A[2], AFTER_A[2]) == (2, 3)  # the fixture's story, spelled out
    rows = studies.ratings(admin, anchored_study)
    assert {r["blind"] for r in rows} == {True}
    report = strict_json(agreement_report(rows, (1, 3), n_resamples=200))
    assert report["headline_score"]["score"] == "human_score_before_reveal" and report["headline_score"]["blind"]
    blind, after = hand_numbers(BLIND_A, BLIND_B), hand_numbers(AFTER_A, AFTER_B)
    assert blind["exact"] == 5 / 8 and after["exact"] == 6 / 8  # the anchored view looks better
    post = report["post_reveal"]
    for name, value in blind.items():
        assert report[name]["value"] == pytest.approx(value), name
        assert post[name]["value"] == pytest.approx(after[name]), name
    assert report["pearson"]["ci_low"] <= report["pearson"]["value"] <= report["pearson"]["ci_high"]
    assert post["pearson"]["ci_low"] is not None
    # Everything score-based follows the headline: per annotator, confusion, disagreements.
    per_a = next(e for e in report["per_annotator"] if e["annotator"] == "ann0")
    assert per_a["exact"]["value"] == pytest.approx(sum(x == m for x, m in zip(BLIND_A, MODEL, strict=True)) / 8)
    assert sum(map(sum, report["confusion"]["matrix"])) == 8
    assert report["confusion"]["matrix"] != post["confusion"]["matrix"]
    assert report["human_human"]["krippendorff_alpha_ordinal"] == report["krippendorff_alpha_ordinal"]
    assert {d["external_id"] for d in report["disagreements"]} == {f"q-{n}" for n in range(8)}
    anchoring = report["anchoring"]
    assert (anchoring["n"], anchoring["revised"], anchoring["towards_model"], anchoring["away_from_model"]) == (
        16, 4, 4, 0)
    assert (anchoring["confirmed_at_reveal"], anchoring["changed_at_reveal"], anchoring["changed_by_later_edit"]) == (
        15, 3, 1)


def test_a_non_blind_study_reports_its_scores_as_given(studies: Studies, store: Store, admin: User,
                                                       ann: list[User]) -> None:
    study = studies.create_study(admin, spec(name="Open", rubric=RUBRIC_1_3, blind=False))
    for n, (m, h) in enumerate(zip(MODEL[:4], BLIND_A[:4], strict=True)):
        item = studies.add_item(admin, study.id, fields(n), judgment_id=store.save_grade(scored_result(m)))
        studies.submit(ann[0], item.id, h)
    report = agreement_report(studies.ratings(admin, study.id), (1, 3), n_resamples=0)
    assert report["headline_score"]["blind"] is False and report["headline_score"]["score"] == "human_score"
    assert "verdict visible" in report["headline_score"]["note"]
    assert report["post_reveal"]["available"] is False and "verdict visible" in report["anchoring"]["reason"]
    assert report["exact"]["value"] == 3 / 4


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_the_annotation_export_is_read_as_it_is(studies: Studies, admin: User, anchored_study: int,
                                                tmp_path: Path, suffix: str) -> None:
    """What the Agreement tab writes (the same flattening) gives the same headline through load_ratings."""
    rows = studies.export_rows(admin, anchored_study)
    path = tmp_path / f"export.{suffix}"
    if suffix == "csv":
        pd.DataFrame(rows).to_csv(path, index=False)
    else:
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    from_file = agreement_report(load_ratings(path), (1, 3), n_resamples=0)
    from_store = agreement_report(studies.ratings(admin, anchored_study), (1, 3), n_resamples=0)
    assert from_file["headline_score"]["score"] == "human_score_before_reveal"
    for name in ("pearson", "exact", "weighted_kappa", "krippendorff_alpha_ordinal"):
        assert from_file[name] == from_store[name], name
        assert from_file["post_reveal"][name] == from_store["post_reveal"][name], name
    assert from_file["anchoring"] == from_store["anchoring"]
    assert {str(d["external_id"]) for d in from_file["disagreements"]} == {f"q-{n}" for n in range(8)}
