"""Publish a study to the Hub as a dataset (core.studies.publish), and reopen it.

What is real here: the dataset folder is written with pyarrow and read back with pandas and pyarrow, and
compared with the database's rows; the card is rendered as Markdown; a published study is reopened into a
new study. The Hub itself is NOT reached (no test may need the internet): the upload runs huggingface_hub's
real HfApi.create_repo + upload_folder against tests.fake_hub, a stand-in HTTP server on 127.0.0.1 that
plays only the endpoints those calls use, and the test checks the exact calls made.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from markdown_it import MarkdownIt
from sqlalchemy import select

from core.cli import main
from core.errors import PermissionDenied
from core.judgments import JudgmentRow
from core.store import Store
from core.studies import ADMIN, REVIEWER, AnnotationEditRow, AnnotationRow, ItemRow, Studies
from core.studies.dataset import read_folder
from core.studies.publish import export_study, publish_study, reopen_study
from core.studies.review import Reviews
from tests.fake_hub import FakeHub
from tests.review_data import ADJUDICATED, make_review_study

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery"
TABLES = ["items.parquet", "labels.parquet", "label_edits.parquet", "judgments.parquet", "adjudications.parquet",
          "judge_runs.parquet", "run_judgments.parquet"]


@pytest.fixture
def study(tmp_path: Path) -> Iterator[tuple[Store, Studies, int, dict[str, object]]]:
    """The review study (7 items graded by a scripted judge, labelled by two annotators), one label edited
    and items 1-6 adjudicated; people: admin 'chief', annotators 'alice_real' and 'bob_real', reviewer 'rev_real'."""
    store = Store(f"sqlite:///{tmp_path / 'publish.db'}")
    studies = Studies(store, password_cost=2**10)
    admin = studies.create_user("chief", PASSWORD, role=ADMIN)
    alice = studies.create_user("alice_real", PASSWORD)
    bob = studies.create_user("bob_real", PASSWORD)
    reviewer = studies.create_user("rev_real", PASSWORD, role=REVIEWER)
    made = make_review_study(studies, store, admin, alice, bob)
    first = studies.my_annotations(alice, made.study_id)[0]
    studies.edit(alice, first.id, comment="second thoughts")
    for item_id, score in zip(made.item_ids, ADJUDICATED, strict=False):
        Reviews(store).adjudicate(reviewer, item_id, score, note=f"settled {score}")
    yield store, studies, made.study_id, {"admin": admin, "alice": alice, "bob": bob, "reviewer": reviewer}
    store.close()


def test_the_exported_folder_reads_back_equal_to_the_database(study, tmp_path: Path) -> None:  # noqa: ANN001
    store, studies, study_id, people = study
    done = export_study(store, people["admin"], study_id, tmp_path / "out", n_resamples=50)
    names = sorted(path.name for path in done.files)
    assert names == sorted([*TABLES, "report.json", "study.json", "README.md"])
    assert done.counts == {"items": 7, "labels": 14, "label_edits": 1, "judgments": 7, "adjudications": 6,
                           "judge_runs": 1, "run_judgments": 7}

    labels = pd.read_parquet(tmp_path / "out" / "labels.parquet")
    items = pd.read_parquet(tmp_path / "out" / "items.parquet")
    judgments = pd.read_parquet(tmp_path / "out" / "judgments.parquet")
    edits = pd.read_parquet(tmp_path / "out" / "label_edits.parquet")
    with store.session() as session:
        stored = list(session.scalars(select(AnnotationRow).where(AnnotationRow.study_id == study_id)
                                      .order_by(AnnotationRow.id)))
        assert labels["annotation_id"].tolist() == [row.id for row in stored]
        assert labels["score"].tolist() == [row.score for row in stored]
        assert labels["comment"].tolist() == [row.comment for row in stored]
        assert [json.loads(s) for s in labels["spans"]] == [row.spans for row in stored]
        # Pseudonyms, in order of the first label: alice labelled first.
        who = {"alice_real": "annotator-1", "bob_real": "annotator-2"}
        ids = {people[key].id: who[people[key].username] for key in ("alice", "bob")}
        assert labels["annotator"].tolist() == [ids[row.annotator_id] for row in stored]
        rows = list(session.scalars(select(ItemRow).where(ItemRow.study_id == study_id).order_by(ItemRow.id)))
        assert items["item_id"].tolist() == [row.id for row in rows]
        assert items["external_id"].tolist() == [row.external_id for row in rows]
        assert items["MODEL OUTPUT"].tolist() == [dict(row.fields)["MODEL OUTPUT"] for row in rows]
        assert [json.loads(f) for f in items["fields"]] == [row.fields for row in rows]
        graded = {row.judgment_id: row.id for row in rows}
        stored_judgments = list(session.scalars(select(JudgmentRow).where(JudgmentRow.id.in_(graded))
                                                .order_by(JudgmentRow.id)))
        assert judgments["raw_output"].tolist() == [row.raw_output for row in stored_judgments]
        assert [json.loads(r) for r in judgments["repro"]] == [row.repro for row in stored_judgments]
        assert [json.loads(d) for d in judgments["distribution"]] == [row.distribution for row in stored_judgments]
        assert judgments["item_id"].tolist() == [graded[row.id] for row in stored_judgments]
        edit = session.scalars(select(AnnotationEditRow)).one()
        assert edits["annotation_id"].tolist() == [edit.annotation_id]
        assert [json.loads(c) for c in edits["changes"]] == [edit.changes]
    adjudications = pd.read_parquet(tmp_path / "out" / "adjudications.parquet")
    assert adjudications["score"].tolist() == ADJUDICATED
    assert set(adjudications["reviewer"]) == {"reviewer-1"}
    # No real name anywhere in the folder, in any file.
    for path in done.files:
        data = path.read_bytes()
        for name in (b"alice_real", b"bob_real", b"rev_real", b"chief"):
            assert name not in data, (path.name, name)
    report = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert report["n_ratings"] == 14 and {row["annotator"] for row in report["per_annotator"]} == set(who.values())


def test_real_names_when_the_admin_chooses_them(study, tmp_path: Path) -> None:  # noqa: ANN001
    store, _, study_id, people = study
    export_study(store, people["admin"], study_id, tmp_path / "out", real_names=True, n_resamples=20)
    meta, tables = read_folder(tmp_path / "out")
    assert meta["annotators"] == ["alice_real", "bob_real"]
    assert {row["reviewer"] for row in tables["adjudications"]} == {"rev_real"}


def test_the_card_renders_with_the_headline_numbers(study, tmp_path: Path) -> None:  # noqa: ANN001
    store, _, study_id, people = study
    done = export_study(store, people["admin"], study_id, tmp_path / "out", repo_id="team/helpfulness",
                        n_resamples=50)
    card = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    front, body = card.split("---\n", 2)[1:]
    assert "license: cc-by-nc-4.0" in front and "config_name: labels" in front
    html = MarkdownIt("commonmark").enable("table").render(body)
    assert "<h1>Helpfulness</h1>" in html
    assert "level 3 of helpfulness." in html  # the rubric
    kappa = done.report["weighted_kappa"] if done.report else {}
    assert f"{kappa['value']:.3f} (95% CI {kappa['ci_low']:.3f} to {kappa['ci_high']:.3f})" in html
    assert "<td>labels</td>\n<td>14</td>" in html
    assert "annotator-1, annotator-2" in html and "CC-BY-NC-4.0" in html
    assert 'load_dataset("team/helpfulness", "judgments"' in card and "<pre><code class=\"language-python\">" in html


def test_reopen_a_published_study_from_its_folder(study, tmp_path: Path) -> None:  # noqa: ANN001
    store, studies, study_id, people = study
    export_study(store, people["admin"], study_id, tmp_path / "first", n_resamples=20)
    reopened = reopen_study(store, people["admin"], tmp_path / "first")
    assert reopened.id != study_id and reopened.name == "Helpfulness (reopened)"
    export_study(store, people["admin"], reopened.id, tmp_path / "second", n_resamples=20)
    (meta1, tables1), (meta2, tables2) = read_folder(tmp_path / "first"), read_folder(tmp_path / "second")
    ids = {"item_id", "annotation_id", "judgment_id", "edit_id", "adjudication_id", "run_id"}
    for name in tables1:
        assert [{k: v for k, v in row.items() if k not in ids} for row in tables1[name]] == \
               [{k: v for k, v in row.items() if k not in ids} for row in tables2[name]], name
    assert meta2["annotators"] == meta1["annotators"]
    # The pseudonymous annotators exist now, deactivated: nobody can sign in as them.
    user = studies.get_user("annotator-1")
    assert user is not None and not user.active


def test_publish_makes_the_expected_hub_calls_and_republishing_never_duplicates_rows(
        study, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # only 127.0.0.1 is reached
    store, studies, study_id, people = study
    hub = FakeHub().start()
    try:
        published, _ = publish_study(store, people["admin"], study_id, "team/helpfulness", private=True,
                                     token="hf_user_oauth_token", endpoint=hub.url)
        assert [(method, path) for method, path, _ in hub.requests] == [
            ("POST", "/api/repos/create"), ("POST", "/api/validate-yaml"),
            ("POST", "/api/datasets/team/helpfulness/preupload/main"),
            ("POST", "/api/datasets/team/helpfulness/commit/main")]
        assert {auth for _, _, auth in hub.requests} == {"Bearer hf_user_oauth_token"}
        repo = hub.repos["team/helpfulness"]
        assert repo.repo_type == "dataset" and repo.visibility == "private"
        assert published.url == f"{hub.url}/datasets/team/helpfulness"
        assert published.commit_oid == repo.commits[0]["oid"]
        assert sorted(repo.files) == sorted([*TABLES, "report.json", "study.json", "README.md"])
        assert len(pd.read_parquet(io.BytesIO(repo.files["labels.parquet"]))) == 14

        # A new item and label, then publish again: a second commit, the files replaced, no row twice.
        carol = studies.create_user("carol_real", PASSWORD)
        item = studies.add_item(people["admin"], study_id, {"USER INPUT": "Question 8?", "MODEL OUTPUT": "A 8."})
        studies.submit(carol, item.id, 4)
        hub.requests.clear()
        publish_study(store, people["admin"], study_id, "team/helpfulness", token="hf_user_oauth_token",
                      endpoint=hub.url)
        assert [path for _, path, _ in hub.requests] == [
            "/api/repos/create", "/api/validate-yaml", "/api/datasets/team/helpfulness/preupload/main",
            "/api/datasets/team/helpfulness/commit/main"]
        assert len(repo.commits) == 2 and repo.visibility == "private"
        labels = pd.read_parquet(io.BytesIO(repo.files["labels.parquet"]))
        assert len(labels) == 15 and labels["annotation_id"].is_unique
        assert len(pd.read_parquet(io.BytesIO(repo.files["items.parquet"]))) == 8
        assert "judgments.parquet" not in repo.commits[1]["paths"]  # unchanged: not sent again
    finally:
        hub.stop()


def test_annotators_and_reviewers_may_not_publish_export_or_reopen(study, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    store, _, study_id, people = study
    export_study(store, people["admin"], study_id, tmp_path / "out", n_resamples=20)
    hub = FakeHub().start()
    try:
        for who in ("alice", "reviewer"):
            with pytest.raises(PermissionDenied):
                export_study(store, people[who], study_id, tmp_path / who)
            with pytest.raises(PermissionDenied):
                publish_study(store, people[who], study_id, "team/x", token="t", endpoint=hub.url)
            with pytest.raises(PermissionDenied):
                reopen_study(store, people[who], tmp_path / "out")
            with pytest.raises(PermissionDenied):
                reopen_study(store, people[who], "team/x", endpoint=hub.url)
        assert hub.requests == [] and not (tmp_path / "alice").exists()
    finally:
        hub.stop()


def test_cli_publish_with_hf_token_and_hf_endpoint_in_a_subprocess(study, tmp_path: Path) -> None:  # noqa: ANN001
    """`python -m core publish` as a user runs it: HF_TOKEN and HF_ENDPOINT from the environment."""
    store, _, study_id, _ = study
    url = str(store.url)
    hub = FakeHub().start()
    try:
        env = {**os.environ, "HF_TOKEN": "hf_env_token", "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0"}
        done = subprocess.run([sys.executable, "-m", "core", "publish", str(study_id), "--repo", "team/cli",
                               "--as", "chief", "--db", url], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=180)
        assert done.returncode == 0, done.stderr
        assert f"Published study #{study_id} to {hub.url}/datasets/team/cli" in done.stdout
        # (huggingface_hub may also GET /api/agent-harnesses, unauthenticated, when it runs under a coding agent.)
        posts = [(path, auth) for method, path, auth in hub.requests if method == "POST"]
        assert posts == [(path, "Bearer hf_env_token") for path in (
            "/api/repos/create", "/api/validate-yaml", "/api/datasets/team/cli/preupload/main",
            "/api/datasets/team/cli/commit/main")]
        assert len(hub.repos["team/cli"].commits) == 1
        refused = subprocess.run([sys.executable, "-m", "core", "publish", str(study_id), "--repo", "team/cli",
                                  "--as", "alice_real", "--db", url], cwd=ROOT, env=env, capture_output=True,
                                 text=True, timeout=180)
        assert refused.returncode == 1 and "Only an admin may publish a study" in refused.stderr
        assert len(hub.repos["team/cli"].commits) == 1
    finally:
        hub.stop()


def test_cli_out_writes_the_folder_and_reopen_study_reads_it(study, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    store, studies, study_id, _ = study
    url = str(store.url)
    assert main(["publish", str(study_id), "--out", str(tmp_path / "ds"), "--as", "chief", "--db", url]) == 0
    assert "14 labels" in capsys.readouterr().out
    assert (tmp_path / "ds" / "labels.parquet").exists()
    assert main(["publish", str(study_id), "--out", str(tmp_path / "no"), "--as", "bob_real", "--db", url]) == 1
    assert main(["publish", str(study_id), "--as", "chief", "--db", url]) == 2  # neither --repo nor --out
    assert main(["reopen-study", str(tmp_path / "ds"), "--name", "Again", "--as", "chief", "--db", url]) == 0
    assert "'Again'" in capsys.readouterr().out
    assert main(["reopen-study", str(tmp_path / "ds"), "--as", "alice_real", "--db", url]) == 1
    assert main(["reopen-study", str(tmp_path), "--as", "chief", "--db", url]) == 1  # not a published study
    assert [s.name for s in studies.list_studies(studies.get_user("chief"))].count("Again") == 1


def test_the_scheduled_backup_commits_every_study_and_then_what_changed(study, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """core.studies.backup on huggingface_hub's real CommitScheduler, against the stand-in Hub."""
    import huggingface_hub.constants

    from core.studies.backup import start_backup

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    store, studies, study_id, people = study
    hub = FakeHub().start()
    scheduler = start_backup(store, "space/backup", every=60, token="hf_space_token", folder=tmp_path / "backup",
                             endpoint=hub.url)
    try:
        for _ in range(300):  # its first push starts at once, on its own thread
            if hub.repos.get("space/backup") and hub.repos["space/backup"].commits:
                break
            time.sleep(0.1)
        repo = hub.repos["space/backup"]
        assert repo.visibility == "private" and len(repo.commits) == 1
        labels = pd.read_parquet(io.BytesIO(repo.files[f"study-{study_id}/labels.parquet"]))
        assert set(labels["annotator"]) == {"alice_real", "bob_real"} and len(labels) == 14  # real names: a backup
        item = studies.add_item(people["admin"], study_id, {"USER INPUT": "Question 8?", "MODEL OUTPUT": "A 8."})
        studies.submit(people["bob"], item.id, 4)
        scheduler.trigger().result(timeout=60)
        assert len(repo.commits) == 2
        assert len(pd.read_parquet(io.BytesIO(repo.files[f"study-{study_id}/labels.parquet"]))) == 15
        assert {auth for _, _, auth in hub.requests} == {"Bearer hf_space_token"}
    finally:
        scheduler.stop()
        hub.stop()


def test_import_items_from_a_hub_dataset_file_csv_or_parquet(study, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """hf_hub_download of one data file from the stand-in Hub, then the Studies tab's import path; the CLI in a
    subprocess, with HF_ENDPOINT (huggingface_hub builds download URLs from it at import)."""
    import huggingface_hub.constants
    import pyarrow as pa
    import pyarrow.parquet as pq

    from core.studies.hub_import import import_hub_items
    from tests.fake_hub import Repo

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    store, studies, study_id, people = study
    hub = FakeHub().start()
    parquet = io.BytesIO()
    pq.write_table(pa.table({"q": ["Parquet question?"], "a": ["Parquet answer."], "id": ["p-1"]}), parquet)
    hub.repos["org/data"] = Repo("dataset", "public", files={
        "data/test.csv": b"question,answer,id\nCSV question?,CSV answer.,c-1\nAnother?,,c-2\n",
        "data/test.parquet": parquet.getvalue()}, commits=[{"oid": "1" * 40, "summary": "data", "paths": []}])
    try:
        with pytest.raises(PermissionDenied):
            import_hub_items(studies, store, people["alice"], study_id, "org/data", "data/test.csv",
                             {"USER INPUT": "question"}, endpoint=hub.url)
        assert hub.requests == []  # refused before anything was downloaded
        report = import_hub_items(studies, store, people["admin"], study_id, "org/data", "data/test.parquet",
                                  {"USER INPUT": "q", "MODEL OUTPUT": "a"}, id_column="id", endpoint=hub.url)
        assert report.added == 1
        added = studies.get_item(people["admin"], report.item_ids[0])
        assert added.fields == {"USER INPUT": "Parquet question?", "MODEL OUTPUT": "Parquet answer."}
        assert added.external_id == "p-1"
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0"}

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "core", "import-hub", str(study_id), "org/data", *args,
                                   "--as", "chief", "--db", str(store.url)], cwd=ROOT, env=env, capture_output=True,
                                  text=True, timeout=180)

        done = cli("--file", "data/test.csv", "--map", "USER INPUT=question", "--map", "MODEL OUTPUT=answer",
                   "--id-column", "id")
        assert done.returncode == 0, done.stderr
        assert "Imported 2 item(s)" in done.stdout
        assert cli("--file", "nope.csv", "--map", "USER INPUT=question").returncode == 1
    finally:
        hub.stop()


def test_the_backup_starts_only_when_glider_backup_repo_is_set(study, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    from core.errors import InputError
    from core.studies.backup import backup_from_env

    store = study[0]
    monkeypatch.delenv("GLIDER_BACKUP_REPO", raising=False)
    assert backup_from_env(store) is None
    monkeypatch.setenv("GLIDER_BACKUP_REPO", "not a repo id")
    with pytest.raises(InputError, match="not a dataset repo id"):  # refused before any request
        backup_from_env(store)


def test_a_refused_token_is_a_clear_hub_error(study, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    import huggingface_hub.constants

    from core.hub_dataset import HubError

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    store, _, study_id, people = study
    hub = FakeHub(refused_token="hf_revoked").start()
    try:
        with pytest.raises(HubError, match="token is missing or invalid"):
            publish_study(store, people["admin"], study_id, "team/x", token="hf_revoked", endpoint=hub.url)
        assert hub.repos == {}
    finally:
        hub.stop()
