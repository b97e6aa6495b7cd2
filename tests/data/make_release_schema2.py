"""Makes tests/data/release-schema2.db with the code of commit 57b3c9c (schema version 2).

    git worktree add /tmp/release-2 57b3c9c
    cd /tmp/release-2 && PYTHONPATH=. python /path/to/make_release_schema2.py /path/to/release-schema2.db

Kept for the record: it imports that release's modules, not this one's.
"""

import sqlite3
import sys
from pathlib import Path

from core.grading import GradeRequest, grade
from core.store import Store
from core.studies import ADMIN, ANNOTATOR, Studies, StudySpec
from tests.fakes import ScriptedJudge

out = Path(sys.argv[1])
out.unlink(missing_ok=True)
store = Store(f"sqlite:///{out}")
judge = ScriptedJudge()
judgment_ids = []
for text in ["Paris is the capital of France.", "Lyon is the capital of France.", "Ünïcödé ✓ <b>bold</b>"]:
    request = GradeRequest({"CONTEXT": "Paris is the capital of France.", "MODEL OUTPUT": text},
                           "Is the MODEL OUTPUT faithful to the CONTEXT?", "0: Unfaithful.\n1: Faithful.")
    judgment_ids.append(grade(judge, request, store).judgment_id)
studies = Studies(store)
ada = studies.create_user("ada", "release-2-admin-pw", ADMIN)
ann = studies.create_user("ann", "release-2-ann-pw", ANNOTATOR)
bob = studies.create_user("bob", "release-2-bob-pw", ANNOTATOR)
study = studies.create_study(ada, StudySpec(name="Release 2 study", pass_criteria="Is it faithful?",
                                            rubric="1: bad\n2: meh\n3: ok\n4: good\n5: great", overlap_target=2))
items = [studies.add_item(ada, study.id, {"CONTEXT": f"Context {i}", "MODEL OUTPUT": f"Output {i} é"},
                          external_id=f"ext-{i}") for i in range(4)]
studies.attach_judgment(ada, items[0].id, judgment_ids[0])
first = studies.submit(ann, items[0].id, 4, comment="ann: looks right",
                       spans=[{"field": "MODEL OUTPUT", "start": 0, "end": 6}], seconds=12.5)
studies.submit(bob, items[0].id, 2, comment="bob: unsure")
studies.submit(ann, items[1].id, 5)
studies.edit(ann, first.id, score=3, comment="ann: changed my mind")
store.close()
# Journal mode DELETE: reading the committed file then leaves no -wal/-shm files beside it.
with sqlite3.connect(out) as connection:
    connection.execute("PRAGMA journal_mode=DELETE")
