"""The human-agreement tabs moved to the webapp.studies package (one module per tab); this name stays importable."""

from webapp.access import NEEDS_SIGN_IN, NO_STUDIES
from webapp.components import JUDGE_CONCURRENCY_ID, MAX_MAPPED_TAGS, NO_COLUMN, PRIVATE, Unavailable
from webapp.studies import StudyHandlers
from webapp.studies.agreement_tab import DISAGREEMENT_HEADERS, AgreementTab
from webapp.studies.label_tab import (
    LABEL_CONCURRENCY_ID,
    LABEL_CONCURRENCY_LIMIT,
    LABEL_KEYS_JS,
    LEVEL_SEPARATOR,
    MARK_SELECTION_JS,
    MY_LABEL_HEADERS,
    SCORE_LABEL,
    Cursor,
    LabelTab,
)
from webapp.studies.layout import StudyWidgets
from webapp.studies.studies_tab import STUDY_HEADERS, AddToStudy, StudiesTab

__all__ = [
    "DISAGREEMENT_HEADERS", "JUDGE_CONCURRENCY_ID", "LABEL_CONCURRENCY_ID", "LABEL_CONCURRENCY_LIMIT", "LABEL_KEYS_JS",
    "LEVEL_SEPARATOR", "MARK_SELECTION_JS", "MAX_MAPPED_TAGS", "MY_LABEL_HEADERS", "NEEDS_SIGN_IN", "NO_COLUMN",
    "NO_STUDIES", "PRIVATE", "SCORE_LABEL", "STUDY_HEADERS", "AddToStudy", "AgreementTab", "Cursor", "LabelTab",
    "StudiesTab", "StudyHandlers", "StudyWidgets", "Unavailable",
]
