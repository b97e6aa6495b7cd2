"""Display names of the agreement report's metrics, written once for the app, the HTML report and the CLI.

Kept apart from core.agreement so that `python -m core` can label its output without importing pandas.
"""

from __future__ import annotations

# Human vs model: keys of the report itself. Human vs human: keys of its "human_human" block.
METRIC_LABELS = {
    "pearson": "Pearson r",
    "spearman": "Spearman \u03c1",
    "kendall": "Kendall \u03c4-b",
    "exact": "Exact agreement",
    "within_1": "Within \u00b11",
    "weighted_kappa": "Weighted \u03ba (quadratic)",
    "krippendorff_alpha_ordinal": "Krippendorff \u03b1 (ordinal)",
    "krippendorff_alpha_interval": "Krippendorff \u03b1 (interval)",
    "mean_pairwise_weighted_kappa": "Mean pairwise weighted \u03ba",
    "pairwise_exact": "Pairwise exact agreement",
}

_ASCII = str.maketrans({"\u03ba": "kappa", "\u03c1": "rho", "\u03c4": "tau", "\u03b1": "alpha", "\u00b1": "+/-"})


def ascii_label(key: str) -> str:
    """The metric's display name with Greek letters spelt out, for terminals that may not show them."""
    return METRIC_LABELS[key].translate(_ASCII)
