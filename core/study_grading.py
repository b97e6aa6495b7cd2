"""Moved to core.studies.grading; this module keeps `from core.study_grading import ...` working."""

from core.studies.grading import (
    FAILED,
    UNGRADED,
    ItemError,
    ProgressCallback,
    StudyGrading,
    Which,
    grade_study,
    select_items,
    summary_line,
)

__all__ = ["FAILED", "UNGRADED", "ItemError", "ProgressCallback", "StudyGrading", "Which", "grade_study",
           "select_items", "summary_line"]
