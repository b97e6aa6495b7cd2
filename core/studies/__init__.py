"""Human-agreement studies: studies, items, blind annotations with edit history, reports.

The package's parts: types (the frozen value objects), rows (ORM rows), checks (validation), queue
(the labelling queue and its claims), service (Studies), imports (items from files), reports (ratings,
exports), runs (judge runs: several judge configurations grading the same items, Studies.runs) and grading
(grade a study's items with the judge; import it as core.studies.grading).
Users and sign-in are core.accounts; their names are re-exported here so `from core.studies import ...`
keeps working.
"""

from core.accounts import (
    ADMIN,
    ANNOTATOR,
    MAX_USERNAME_LENGTH,
    MIN_PASSWORD_LENGTH,
    REVIEWER,
    ROLES,
    Accounts,
    User,
    UserRow,
    hash_password,
    verify_password,
)
from core.errors import PermissionDenied, StudyInputError
from core.studies.checks import DuplicateItemError, ItemKey
from core.studies.queue import CLAIM_SECONDS
from core.studies.reports import write_exports
from core.studies.rows import (
    AdjudicationRow,
    AnnotationEditRow,
    AnnotationRow,
    ClaimRow,
    ItemRow,
    StudyAnnotatorRow,
    StudyRow,
)
from core.studies.service import Studies
from core.studies.types import (
    Annotation,
    AnnotationEdit,
    BlindGuard,
    ImportReport,
    Item,
    Progress,
    Study,
    StudySpec,
)
from core.tabular import RowError

__all__ = [
    "ADMIN", "ANNOTATOR", "CLAIM_SECONDS", "MAX_USERNAME_LENGTH", "MIN_PASSWORD_LENGTH", "REVIEWER", "ROLES",
    "Accounts", "AdjudicationRow", "Annotation", "AnnotationEdit", "AnnotationEditRow", "AnnotationRow",
    "BlindGuard", "ClaimRow", "DuplicateItemError", "ImportReport", "Item", "ItemKey", "ItemRow",
    "PermissionDenied", "Progress", "RowError", "Studies", "Study", "StudyAnnotatorRow", "StudyInputError",
    "StudyRow", "StudySpec", "User", "UserRow", "hash_password", "verify_password", "write_exports",
]
