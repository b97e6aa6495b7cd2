"""One batch runner as its own OS process, for tests/test_batch_processes.py:

    python -m tests.batch_runner DB_URL JOB_ID GRADED_LOG READY_FILE GO_FILE HOLD_SECONDS

It opens the database, writes READY_FILE, waits for GO_FILE (so two runners start the same job at once), then
runs the job with the scripted judge, which appends the row it grades ("Claim number N") to GRADED_LOG. The
first read of the job row by its id (the runner taking the lease) is held HOLD_SECONDS before the transaction
goes on: that widens the window in which a second process could take the same lease. It prints one JSON line
and exits 0 when it finished the job, 3 when the job was busy (JobBusyError).
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event

from core.batch import BatchJobs, JobBusyError
from core.store import Store
from tests.fakes import ScriptedJudge

CLAIM = re.compile(r"Claim number (\d+)\.")
BUSY = 3


class RecordingJudge(ScriptedJudge):
    """The scripted judge, writing down each row it grades (and taking a little time over it)."""

    def __init__(self, log: Path) -> None:
        super().__init__()
        self.log = log

    def generate(self, prompt: str, **kwargs: Any) -> Any:
        found = CLAIM.search(prompt)
        with self.log.open("a", encoding="utf-8") as out:
            out.write(f"{found.group(1) if found else '?'}\n")
        time.sleep(0.02)
        return super().generate(prompt, **kwargs)


def hold_the_lease_read(store: Store, seconds: float) -> None:
    """Sleep once, right after the first SELECT of a batch_jobs row by id (BatchJobs taking the lease)."""
    held = [False]

    def after(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not held[0] and statement.lstrip().upper().startswith("SELECT") and "FROM batch_jobs" in statement \
                and "batch_jobs.id =" in statement:
            held[0] = True
            time.sleep(seconds)

    event.listen(store.engine, "after_cursor_execute", after)


def main(argv: list[str]) -> int:
    url, job_id, graded, ready, go, hold = argv
    store = Store(url)
    jobs = BatchJobs(store)
    jobs.progress(int(job_id))  # connected and migrated before the start signal
    hold_the_lease_read(store, float(hold))
    Path(ready).write_text("ready", encoding="utf-8")
    deadline = time.monotonic() + 120
    while not Path(go).exists():
        if time.monotonic() > deadline:
            print(json.dumps({"outcome": "no start signal"}))
            return 2
        time.sleep(0.005)
    try:
        progress = jobs.run(int(job_id), RecordingJudge(Path(graded)), batch_size=4)
    except JobBusyError as error:
        print(json.dumps({"outcome": "busy", "message": str(error)}))
        return BUSY
    finally:
        store.close()
    print(json.dumps({"outcome": progress.status, "done": progress.done}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
