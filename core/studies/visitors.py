"""What a visitor who is not signed in may not see of the judge's verdicts (the Grade tab of a public Space).

With sign-in through Hugging Face, anyone may try the Grade tab as a demo. A visitor has labelled nothing,
so every item of every blind study stays hidden from them: they may not ask the judge about one (pasting its
texts), exactly as an annotator who has not labelled it may not (core.studies.service.Studies.blind_guard).
"""

from __future__ import annotations

from sqlalchemy import select

from core.store import Store
from core.studies.rows import ItemRow, StudyRow
from core.studies.types import BlindGuard, fingerprint

VISITOR = "a visitor who is not signed in"


def visitor_guard(store: Store) -> BlindGuard:
    """The BlindGuard of a visitor: the items of every blind study, and the verdicts attached to them."""
    with store.session("read") as session:
        rows = session.execute(select(ItemRow.id, ItemRow.fields, ItemRow.judgment_id)
                               .join(StudyRow, StudyRow.id == ItemRow.study_id)
                               .where(StudyRow.blind.is_(True))).all()
    hidden = frozenset(row.judgment_id for row in rows if row.judgment_id is not None)
    return BlindGuard(VISITOR, hidden, tuple((row.id, fingerprint(text for _, text in row.fields)) for row in rows))
