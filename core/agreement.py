"""Agreement statistics: human vs model and human vs human, from long-format ratings.

CONTRACT STUB — `agreement_report`'s signature, its input rows and the report's top-level keys are
fixed (the UI, the CLI and the export use them); the body is to be written.

Input rows (one per annotation; a pandas DataFrame or an iterable of mappings):
- required: `item_id`, `annotator`, `human_score` (int/float or None = missing), `model_score`
  (None = not graded or the model's answer failed to parse; repeated on every row of the item);
- optional: `model_status` ("ok" | "repaired" | "failed" | None = not graded),
  `human_score_before_reveal`, `human_score_after_reveal` (blind studies),
  `human_spans` (list of {"field", "start", "end"}), `model_spans` (list of {"field", "start", "end", ...}),
  `fields` (dict tag -> text, needed for token-level span agreement).

Report (JSON-ready dict) top-level keys, at least: `n_items`, `n_annotators`, `pearson`, `spearman`,
`kendall`, `exact`, `within_1`, `weighted_kappa`, `krippendorff_alpha_ordinal`,
`krippendorff_alpha_interval` — each an object with `value` and, where defined, `ci_low`, `ci_high`,
`p_value`; `value` is None with a `reason` when undefined — and `excluded` (counts by reason).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def agreement_report(
    rows: Iterable[Mapping[str, Any]] | Any,
    scale: tuple[int, int] | None = None,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    raise NotImplementedError
