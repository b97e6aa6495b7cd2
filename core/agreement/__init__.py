"""Agreement statistics: human vs model and human vs human, from long-format ratings.

CONTRACT — `agreement_report`'s signature, its input rows and the report's top-level keys are fixed
(the UI, the CLI and the export use them); new keywords and keys may be added.

Input rows (one per annotation; a pandas DataFrame or an iterable of mappings):
- required: `item_id`, `annotator`, `human_score` (int/float or None = missing; the current score),
  `model_score` (None = not graded or the model's answer failed to parse; repeated on every row of the item);
  `annotator` may be None only together with the scores: such a row stands for an item nobody has
  labelled yet (Studies.ratings adds one per such item), counted but never a rating;
- optional: `model_status` ("ok" | "repaired" | "failed" | None = not graded),
  `human_score_before_reveal`, `human_score_after_reveal` (blind studies), `blind` (true/false: were the
  labels given before the model's verdict was shown? one value for the whole input),
  `human_spans` (list of {"field", "start", "end"}), `model_spans` (list of {"field", "start", "end", ...}),
  `fields` (dict tag -> text, needed for token-level span agreement), `external_id` (the user's item id),
  `model_confidence` (float in [0, 1] or None: the probability the judge's score distribution gave its own
  score, the stored judgment's `confidence`; one value per item like model_score; needed for `calibration`).
  `drawn_at_random` (true: the study's queue drew the item at random; false: least-confident judgment first;
  None = unknown = random; see core.agreement.sampling).
  The app's annotation export (Studies.export_rows) is read as it is: its `score`, `score_before_reveal`,
  `score_after_reveal` and `spans` columns stand for the names above when those are absent.

Which score the headline uses: in a blind study (the `blind` keyword; when None, the `blind` column; with
neither, rows that have after-reveal scores), the score given BEFORE the reveal, `human_score_before_reveal`,
for every score-based number (human vs model, human vs human, per annotator, confusion, distributions,
disagreements): the model's verdict cannot have pulled it. `post_reveal` holds the same numbers on
`human_score` (after the reveal, later edits included) and `anchoring` how the scores moved. Otherwise the
headline uses `human_score`, as for any non-blind data; `headline_score` says which and why.

Report (JSON-ready dict) top-level keys, at least: `n_items`, `n_annotators`, `pearson`, `spearman`,
`kendall`, `exact`, `within_1`, `weighted_kappa`, `krippendorff_alpha_ordinal`,
`krippendorff_alpha_interval` — each an object with `value` and, where defined, `ci_low`, `ci_high`,
`p_value`; `value` is None with a `reason` when undefined — and `excluded` (counts by reason).
Also: `n_items_total`, `n_ratings`, `scale`, `pooling`, `headline_score`, `bootstrap`, `per_annotator`,
`human_human`, `spans`, `anchoring`, `post_reveal`, `confusion`, `distributions`, `disagreements`,
`calibration` (the judge's confidence vs agreement with the human consensus in bins, the expected calibration
error, and the auto-accept threshold for the `target` agreement, a share in (0, 1), default 0.9;
`available` False with a `reason` when no item has a confidence), `alt_test` (the alternative-annotator test
of Calderon, Reichart & Dror 2025 with the `epsilon` margin: winning rate, advantage probability, decision,
per-annotator rows), `judge_vs_people` (the judge vs each annotator against the same leave-one-out consensus,
with the human ceiling and a reading) and `sampling` (how the items were drawn: counts and ids of each kind,
`biased`, and the note). The alt-test and the auto-accept threshold use only the items drawn at random.

Every point estimate comes from scipy / scikit-learn / krippendorff. Only the bootstrap uses our own
vectorised formulas (`table_statistics`), which the tests check against those libraries.

The package's parts: inputs (reading and checking rating rows and files), metrics (pure statistics on score
arrays: human vs model, human vs human, anchoring), bootstrap (the vectorised percentile bootstrap), spans
(token-level span agreement), calibration (reliability bins and the auto-accept threshold), report
(agreement_report, which assembles them) and adjudicated
(adjudicated_report: the same statistics with the reviewers' adjudicated labels as the reference). Every name that
code imports from `core.agreement` is re-exported here; private helpers live in their part.
"""

from __future__ import annotations

from core.agreement.adjudicated import adjudicated_report
from core.agreement.alt_test import alt_test
from core.agreement.bootstrap import (
    BOOTSTRAP_NOTE,
    CONFIDENCE,
    bootstrap_statistics,
    table_statistics,
)
from core.agreement.bootstrap import (
    _pooled_table as _pooled_table,  # tests check the bootstrap on it
)
from core.agreement.inputs import (
    ADJUDICATED,
    AFTER,
    BEFORE,
    EXPORT_ALIASES,
    FALSE_TEXTS,
    MISSING_MARKERS,
    MODEL_CONFIDENCE,
    NO_ANNOTATOR,
    REQUIRED_COLUMNS,
    SCORE_COLUMNS,
    SPAN_COLUMNS,
    STATUSES,
    TRUE_TEXTS,
    load_ratings,
)
from core.agreement.metrics import (
    HEADLINE,
    correlation_metrics,
    exact_metrics,
    weighted_kappa,
)
from core.agreement.report import (
    HEADLINE_NOTES,
    POOLING,
    agreement_report,
)

__all__ = [
    "ADJUDICATED", "AFTER", "BEFORE", "BOOTSTRAP_NOTE", "CONFIDENCE", "EXPORT_ALIASES", "FALSE_TEXTS", "HEADLINE",
    "HEADLINE_NOTES", "MISSING_MARKERS", "MODEL_CONFIDENCE", "NO_ANNOTATOR", "POOLING", "REQUIRED_COLUMNS",
    "SCORE_COLUMNS",
    "SPAN_COLUMNS", "STATUSES", "TRUE_TEXTS", "adjudicated_report", "agreement_report", "bootstrap_statistics",
    "alt_test", "correlation_metrics", "exact_metrics", "load_ratings", "table_statistics", "weighted_kappa",
]
