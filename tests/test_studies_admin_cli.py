"""`python -m core edit-study / duplicate-study / archive-study / unarchive-study / delete-study / items /
remove-item / restore-item / progress`: the Manage tab's actions from the command line, as a named admin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli import main
from core.store import Store
from core.studies import ADMIN, Studies, StudySpec

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery"
RUBRIC_0_1 = "0: The MODEL OUTPUT is not faithful.\n1: The MODEL OUTPUT is faithful."
RUBRIC_1_5 = "\n".join(f"{n}: level {n}." for n in range(1, 6))


@pytest.fixture
def db(tmp_path: Path) -> tuple[str, int, list[int]]:
    """A database with admin boss, annotators ann and bob, and a three-item study that ann labelled once."""
    url = f"sqlite:///{tmp_path / 'admin-cli.db'}"
    with Store(url) as store:
        studies = Studies(store, password_cost=2**10)
        boss = studies.create_user("boss", PASSWORD, role=ADMIN)
        ann = studies.create_user("ann", PASSWORD)
        studies.create_user("bob", PASSWORD)
        study = studies.create_study(boss, StudySpec(name="Capitals", pass_criteria="Faithful?", rubric=RUBRIC_0_1,
                                                     tags=("CONTEXT", "MODEL OUTPUT"), overlap_target=2))
        ids = [studies.add_item(boss, study.id, {"CONTEXT": f"Context {n}.", "MODEL OUTPUT": f"Output {n}."},
                                external_id=f"cap-{n}").id for n in range(3)]
        studies.submit(ann, ids[0], 1, seconds=30)
    return url, study.id, ids


def studies_at(url: str) -> tuple[Store, Studies]:
    store = Store(url)
    return store, Studies(store)


def test_edit_study_sets_guidelines_from_a_file_and_refuses_a_locked_change(
        db: tuple[str, int, list[int]], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url, study_id, _ = db
    guide = tmp_path / "guide.md"
    guide.write_text("# Guide\n\nLabel **carefully**.", encoding="utf-8")
    assert main(["edit-study", str(study_id), "--as", "boss", "--db", url, "--name", "Capitals v2",
                 "--guidelines-file", str(guide), "--overlap", "3"]) == 0
    assert "Study #1 'Capitals v2': saved" in capsys.readouterr().out
    rubric = tmp_path / "rubric.txt"
    rubric.write_text(RUBRIC_1_5, encoding="utf-8")
    assert main(["edit-study", str(study_id), "--as", "boss", "--db", url, "--rubric-file", str(rubric)]) == 1
    assert "Duplicate it as a new study" in capsys.readouterr().err
    assert main(["edit-study", str(study_id), "--as", "ann", "--db", url, "--name", "Mine"]) == 1
    assert "Only an admin" in capsys.readouterr().err
    assert main(["edit-study", str(study_id), "--as", "nobody", "--db", url, "--name", "Mine"]) == 2
    store, studies = studies_at(url)
    with store:
        boss = studies.get_user("boss")
        assert boss is not None
        study = studies.get_study(boss, study_id)
        assert (study.name, study.guidelines, study.overlap_target, study.scale) == (
            "Capitals v2", "# Guide\n\nLabel **carefully**.", 3, (0, 1))


def test_duplicate_archive_unarchive(db: tuple[str, int, list[int]], capsys: pytest.CaptureFixture[str]) -> None:
    url, study_id, _ = db
    assert main(["duplicate-study", str(study_id), "--as", "boss", "--db", url, "--name", "Capitals B"]) == 0
    assert "Created study #2 'Capitals B'" in capsys.readouterr().out
    assert main(["archive-study", str(study_id), "--as", "boss", "--db", url]) == 0
    assert "archived" in capsys.readouterr().out
    store, studies = studies_at(url)
    with store:
        ann = studies.get_user("ann")
        assert ann is not None
        assert [s.name for s in studies.list_studies(ann)] == ["Capitals B"]
    assert main(["unarchive-study", str(study_id), "--as", "boss", "--db", url]) == 0
    with Store(url) as store:
        assert len(Studies(store).list_studies(ann)) == 2


def test_items_lists_states_and_searches(db: tuple[str, int, list[int]], capsys: pytest.CaptureFixture[str]) -> None:
    url, study_id, ids = db
    assert main(["items", str(study_id), "--as", "boss", "--db", url, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["item_id"], r["labels"], r["states"]) for r in rows] == [
        (ids[0], 1, ["partly labelled"]), (ids[1], 0, ["unlabelled"]), (ids[2], 0, ["unlabelled"])]
    assert main(["items", str(study_id), "--as", "boss", "--db", url, "--state", "unlabelled", "--search",
                 "cap-2"]) == 0
    out = capsys.readouterr()
    assert out.out.startswith(f"#{ids[2]}\tcap-2\t") and len(out.out.splitlines()) == 1 and "1 item(s)" in out.err
    assert main(["items", str(study_id), "--as", "ann", "--db", url]) == 1


def test_remove_item_and_progress(db: tuple[str, int, list[int]], capsys: pytest.CaptureFixture[str]) -> None:
    url, study_id, ids = db
    assert main(["remove-item", str(ids[2]), "--as", "boss", "--db", url]) == 0
    assert f"Item #{ids[2]} removed" in capsys.readouterr().out
    assert main(["progress", str(study_id), "--as", "boss", "--db", url, "--json"]) == 0
    rows = {row["annotator"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}
    assert set(rows) == {"ann", "bob"}
    assert (rows["ann"]["labelled"], rows["ann"]["assigned"], rows["ann"]["median_seconds"]) == (1, 2, 30.0)
    assert (rows["bob"]["labelled"], rows["bob"]["last_active"]) == (0, None)
    assert main(["items", str(study_id), "--as", "boss", "--db", url, "--state", "removed", "--json"]) == 0
    assert [json.loads(line)["item_id"] for line in capsys.readouterr().out.splitlines()] == [ids[2]]
    assert main(["restore-item", str(ids[2]), "--as", "boss", "--db", url]) == 0
    assert main(["remove-item", str(ids[2]), "--as", "bob", "--db", url]) == 1
    assert main(["progress", str(study_id), "--as", "bob", "--db", url]) == 1


def test_delete_study_in_a_subprocess_needs_the_exact_name(db: tuple[str, int, list[int]]) -> None:
    url, study_id, _ = db
    env = {key: value for key, value in os.environ.items() if not key.startswith("GLIDER_")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "core", *args, "--as", "boss", "--db", url], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)

    refused = run("delete-study", str(study_id), "--confirm", "Capitals")
    assert refused.returncode == 1 and "not archived" in refused.stderr
    assert run("archive-study", str(study_id)).returncode == 0
    wrong = run("delete-study", str(study_id), "--confirm", "capitals")
    assert wrong.returncode == 1 and "type its name exactly" in wrong.stderr
    done = run("delete-study", str(study_id), "--confirm", "Capitals")
    assert done.returncode == 0, done.stderr
    assert "Deleted study #1 'Capitals': 3 item(s) and 1 label(s)." in done.stdout
    with Store(url) as store:
        studies = Studies(store)
        boss = studies.get_user("boss")
        assert boss is not None and studies.list_studies(boss) == []


def test_queue_order_is_set_by_an_admin_and_every_change_is_printed(db: tuple[str, int, list[int]],
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    url, study_id, _ = db
    assert main(["queue-order", str(study_id), "--as", "boss", "--db", url, "--order", "uncertainty",
                 "--random-first", "2"]) == 0
    out = capsys.readouterr().out
    assert "queue order uncertainty, the first 2 item(s) at random" in out
    assert "boss: queue_order random -> uncertainty, random_first 0 -> 2" in out
    assert main(["queue-order", str(study_id), "--as", "ann", "--db", url, "--order", "random"]) == 1
    assert "admin" in capsys.readouterr().err
    assert main(["queue-order", str(study_id), "--as", "boss", "--db", url, "--order", "uncertainty",
                 "--random-first", "-1"]) == 1
    assert "between 0 and" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: only the two orders
        main(["queue-order", str(study_id), "--as", "boss", "--db", url, "--order", "confident"])
    store, studies = studies_at(url)
    with store:
        boss = studies.get_user("boss")
        assert boss is not None
        study = studies.get_study(boss, study_id)
        assert (study.queue_order, study.random_first) == ("uncertainty", 2)
        assert len(studies.admin.queue_order_history(boss, study_id)) == 1
