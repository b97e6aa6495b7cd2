"""The command line's door into a pairwise study: `python -m core import-hub` maps a data file's columns to
RESPONSE A and RESPONSE B (the Studies tab's import path, core.studies.imports), and a row missing a response is
reported by its number with core's message, the rest imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.store import Store
from core.studies import ADMIN, Studies
from core.studies.pairs import RESPONSE_A, RESPONSE_B
from tests.fake_hub import FakeHub, Repo
from tests.pair_study_helpers import pair_study

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery"


def test_import_hub_fills_a_pairwise_study_and_reports_a_missing_response(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    store = Store(f"sqlite:///{tmp_path / 'pairs.db'}")
    studies = Studies(store, password_cost=2**10)
    admin = studies.create_user("chief", PASSWORD, role=ADMIN)
    study_id = pair_study(studies, admin, items=0)
    hub = FakeHub().start()
    hub.repos["org/pairs"] = Repo("dataset", "public", files={
        "pairs.csv": b"question,left,right,id\nTea?,Yes please.,No.,t-1\nCoffee?,Sure.,,t-2\n"},
        commits=[{"oid": "2" * 40, "summary": "pairs", "paths": []}])
    try:
        done = subprocess.run(
            [sys.executable, "-m", "core", "import-hub", str(study_id), "org/pairs", "--file", "pairs.csv",
             "--map", "USER INPUT=question", "--map", f"{RESPONSE_A}=left", "--map", f"{RESPONSE_B}=right",
             "--id-column", "id", "--as", "chief", "--db", str(store.url)],
            cwd=ROOT, env={**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0"}, capture_output=True,
            text=True, timeout=180)
    finally:
        hub.stop()
    assert done.returncode == 0, done.stderr
    assert "Imported 1 item(s)" in done.stdout
    assert "row 2: A pairwise item needs both responses: RESPONSE B is empty." in done.stderr
    [item] = studies.list_items(admin, study_id)
    assert (item.external_id, item.fields) == ("t-1", {"USER INPUT": "Tea?", RESPONSE_A: "Yes please.",
                                                       RESPONSE_B: "No."})
    store.close()
