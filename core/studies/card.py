"""The dataset card (README.md) of a published study: what was labelled, how, by whom, how well they agree.

Markdown with the Hub's YAML front matter (license, tags, one config per Parquet table so the dataset
viewer and `datasets.load_dataset(repo, "labels")` find them). Pure: built from study.json's values, the
tables' row counts, the agreement report and the newest robustness audit's summary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.agreement_labels import METRIC_LABELS

HEADLINE = ("weighted_kappa", "exact", "within_1", "spearman", "pearson", "kendall")
HUMAN = ("krippendorff_alpha_ordinal", "mean_pairwise_weighted_kappa", "pairwise_exact")
BLIND = "Blind study: each label was given before the judge's verdict was shown."
NOT_BLIND = "Not blind: annotators could see the judge's verdict."
GLIDER_NOTE = (
    "The judgments in this dataset were produced by GLIDER (`PatronusAI/glider`), whose weights are licensed "
    "CC-BY-NC-4.0 (non-commercial use). This card declares the same licence for the dataset; the items' own "
    "texts remain under the terms of their source, which the study's owner should state here."
)


def _metric(metric: Mapping[str, Any] | None) -> str:
    if not metric or metric.get("value") is None:
        reason = (metric or {}).get("reason") or "not computed"
        return f"undefined ({reason})"
    text = f"{metric['value']:.3f}"
    if metric.get("ci_low") is not None and metric.get("ci_high") is not None:
        text += f" (95% CI {metric['ci_low']:.3f} to {metric['ci_high']:.3f})"
    return text


def _pairwise_section(report: Mapping[str, Any], files: Sequence[str]) -> list[str]:
    """A pairwise study's agreement (core.agreement.pairwise_report) as card lines."""
    people = report.get("human_human") or {}
    kappa = people.get(people.get("statistic") == "fleiss_kappa" and "fleiss_kappa" or "mean_pairwise_cohen_kappa")
    return [
        f"A pairwise study: annotators chose the better of two responses"
        f"{' or a tie' if report.get('allow_tie') else ''}; the judge compared them in both orders. "
        f"Items compared with the human majority: {report.get('n_items_compared')} of {report.get('n_items')} "
        f"({report.get('n_items_no_majority')} without a majority); human labels: {report.get('n_labels')}; "
        f"choices {report.get('choices_headline')}. {report.get('ties_rule')} "
        "Confidence intervals: 95% bootstrap over items.", "",
        "| pairwise | value |", "| --- | --- |",
        f"| Judge accuracy vs the human majority | {_metric(report.get('accuracy'))} |",
        f"| Judge vs majority, Cohen's kappa | {_metric(report.get('judge_vs_majority_kappa'))} |",
        f"| Judge position consistency (both orders agree) | {_metric(report.get('position_consistency'))} |",
        f"| Judge position bias (slot 1 when inconsistent) | {_metric(report.get('position_bias'))} |",
        f"| Humans among themselves, {'Fleiss' if people.get('statistic') == 'fleiss_kappa' else 'mean Cohen'}'s "
        f"kappa | {_metric(kappa)} |", "",
        "The full report is `report.json`" + (" (and `report.html`, with charts)." if "report.html" in files
                                             else "."), "",
    ]


def _quote(text: str) -> str:
    """A block of user text as a Markdown blockquote (kept as written, one '> ' per line)."""
    return "\n".join(f"> {line}" if line else ">" for line in (text or "").strip().splitlines()) or "> (none)"


def _yaml_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def _interval(metric: Mapping[str, Any] | None, percent: bool = False) -> str:
    if not metric or metric.get("value") is None:
        return "—"
    shown = (lambda number: f"{number:.1%}") if percent else (lambda number: f"{number:.3f}")
    if metric.get("ci_low") is None or metric.get("ci_high") is None:
        return shown(metric["value"])
    return f"{shown(metric['value'])} [{shown(metric['ci_low'])}, {shown(metric['ci_high'])}]"


def _cell(text: object) -> str:
    """User text (a perturbation's reason) inside a Markdown table cell: one line, no column breaks."""
    return " ".join(str(text).split()).replace("|", "\\|")


def audit_section(audit: Mapping[str, Any]) -> list[str]:
    """The card's "Robustness audit" section: which audit, then one row per perturbation (the audit.json summary)."""
    from core.studies.audits import which_audit

    lines = ["## Robustness audit", "", which_audit(audit), "",
             f"Unperturbed judge: {_cell(audit.get('baseline_judge') or 'unknown')}.", "",
             "| perturbation | items | flips | flip rate [95% CI] | κ vs unperturbed [95% CI] | Δ exact with people "
             "| Δ κ with people | note |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in audit.get("rows") or []:
        difference = (row.get("humans") or {}).get("difference") or {}
        changes = [(difference.get(key) or {}).get("value") for key in ("exact", "weighted_kappa")]
        note = row.get("not_applicable") or (f"{row['n_unscored']} without a score" if row.get("n_unscored") else "")
        lines.append(f"| {_cell(row.get('perturbation'))} | {row.get('n_items', 0)} | {row.get('flips', 0)} | "
                     f"{_interval(row.get('flip_rate'), percent=True)} | {_interval(row.get('weighted_kappa'))} | "
                     + " | ".join("—" if change is None else f"{change:+.3f}" for change in changes)
                     + f" | {_cell(note)} |")
    lines += ["", "Flip rate: items whose score under the perturbation differs from the unperturbed one (exact "
              "Clopper-Pearson interval); κ: quadratic-weighted, percentile bootstrap over items. The whole summary "
              "is `audit.json`.", ""]
    return lines


def dataset_card(study: Mapping[str, Any], counts: Mapping[str, int], report: Mapping[str, Any] | None,
                 *, repo_id: str | None = None, files: Sequence[str] = (),
                 audit: Mapping[str, Any] | None = None) -> str:
    """README.md for the dataset folder: front matter, task, rubric, scale, annotators, agreement, licence, reload."""
    tables = [name.removesuffix(".parquet") for name in files if name.endswith(".parquet")]
    front = ["---", "license: cc-by-nc-4.0", f"pretty_name: {_yaml_text(str(study['name']))}",
             "tags:", "- glider", "- llm-as-a-judge", "- human-evaluation", "- annotation", "configs:"]
    for name in tables:
        front += [f"- config_name: {name}", f"  data_files: {name}.parquet"]
        if name == "labels":
            front.append("  default: true")
    front.append("---")
    low, high = study["scale"]
    who = ("by their usernames (the admin chose real names)" if study.get("real_names")
           else "pseudonymised as annotator-1, annotator-2, ... (in order of their first label)")
    annotators = ", ".join(study.get("annotators") or []) or "none yet"
    lines = [
        *front, "",
        f"# {study['name']}", "",
        "An annotation study made with GLIDER Studio: people scored texts against a rubric, and the GLIDER judge "
        "scored the same texts, so the judge's agreement with humans can be measured.", "",
    ]
    if study.get("description"):
        lines += [_quote(str(study["description"])), ""]
    lines += [
        "## Task", "",
        "Pass criteria:", "", _quote(str(study["pass_criteria"])), "",
        f"Rubric (scale {low} to {high}):", "", _quote(str(study["rubric"])), "",
        f"Fields shown to annotators: {', '.join(study['tags'])}. "
        f"{BLIND if study['blind'] else NOT_BLIND} "
        f"Target: {study['overlap_target']} annotator(s) per item.", "",
        "## Contents", "",
        "| table | rows |", "| --- | --- |",
        *(f"| {name} | {counts.get(name, 0)} |" for name in tables), "",
        f"Annotators ({len(study.get('annotators') or [])}), {who}: {annotators}.", "",
        "## Agreement", "",
    ]
    if report is None:
        lines += ["No labels yet: no agreement report.", ""]
    elif report.get("mode") == "pairwise":
        lines += _pairwise_section(report, files)
    else:
        headline = report.get("headline_score") or {}
        basis = ("scores given before the reveal (blind headline)" if headline.get("blind")
                 else "scores as given")
        lines += [
            f"Items compared: {report.get('n_items')} of {report.get('n_items_total')}; human ratings: "
            f"{report.get('n_ratings')}; {basis}. Confidence intervals: 95% bootstrap over items.", "",
            "| human vs judge (pooled) | value |", "| --- | --- |",
            *(f"| {METRIC_LABELS[key]} | {_metric(report.get(key))} |" for key in HEADLINE), "",
            "| human vs human | value |", "| --- | --- |",
            *(f"| {METRIC_LABELS[key]} | {_metric((report.get('human_human') or {}).get(key))} |" for key in HUMAN),
            "",
            "The full report is `report.json`" + (" (and `report.html`, with charts)." if "report.html" in files
                                                 else "."), "",
        ]
    if audit is not None and audit.get("available"):
        lines += audit_section(audit)
    repo = repo_id or "USER/DATASET"
    lines += [
        "## Licence", "", GLIDER_NOTE, "",
        "## How to reload", "",
        "```python",
        "import pandas as pd",
        f'labels = pd.read_parquet("hf://datasets/{repo}/labels.parquet")',
        f'items = pd.read_parquet("hf://datasets/{repo}/items.parquet")',
        "",
        "from datasets import load_dataset",
        f'judgments = load_dataset("{repo}", "judgments", split="train")',
        "```", "",
        "Reopen it as a study in GLIDER Studio (labels included):", "",
        "```bash",
        f"python -m core reopen-study {repo} --as ADMIN",
        "```", "",
        "Columns holding lists or objects (spans, highlights, distribution, repro, ...) are JSON text: "
        "`json.loads` them.", "",
    ]
    return "\n".join(lines)
