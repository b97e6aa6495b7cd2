"""A pairwise study's agreement report: its labels' choices and a judge run's verdicts, through
core.agreement.pairwise_report.

The people's choices are read with the study's other report data (core.studies.reports.report_lines, one joined
query); removed items are left out, as in the numeric report. In a blind study the headline uses each label's
choice from before the model's verdict was shown (its score_before_reveal), as the numeric report does; otherwise
the current choice. The judge is a run's verdicts (core.studies.pair_runs.pair_verdicts; default: the first run).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from core.accounts import require_admin
from core.errors import StudyInputError
from core.studies import pairs
from core.studies.pair_runs import pair_verdicts
from core.studies.reports import report_lines
from core.studies.rows import study_row
from core.studies.runs import Runs

if TYPE_CHECKING:
    from core.accounts import User
    from core.studies.service import Studies


def pair_choices(studies: Studies, actor: User, study_id: int) -> list[dict[str, Any]]:
    """One row per label of the pairwise study's items that are not removed: item_id, external_id, annotator,
    choice (the headline's: before the reveal in a blind study), choice_now, shown_order. Admins only."""
    with studies._store.session("read") as session:
        require_admin(session, actor, "see a study's ratings")
        study = study_row(session, study_id)
        if study.mode != pairs.PAIRWISE:
            raise StudyInputError(f"Study {study.id} is not a pairwise study: its labels are scores, not choices.")
        rows = []
        for line in report_lines(session, study):
            label = line.label
            if label is None or line.item.removed_at is not None:
                continue
            before = pairs.choice_of_score(label.score_before_reveal)
            rows.append({"item_id": line.item.id, "external_id": line.item.external_id, "annotator": line.annotator,
                         "choice": before if study.blind else (label.choice or before),
                         "choice_now": label.choice or pairs.choice_of_score(label.score),
                         "shown_order": label.shown_order})
        return rows


def pair_report(studies: Studies, actor: User, study_id: int, run: int | str | None = None, *,
                n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """core.agreement.pairwise_report of the study's choices and run `run`'s verdicts (None: the first run), with
    the study and the run described. Admins only; StudyInputError for a study that is not pairwise or an unknown
    run."""
    from core.agreement.pairwise_report import pairwise_report  # numpy/sklearn: only here

    choices = pair_choices(studies, actor, study_id)
    verdicts = pair_verdicts(studies, actor, study_id, run)
    study = studies.get_study(actor, study_id)
    runs = Runs(studies._store).list_runs(actor, study_id)
    chosen = (next((r for r in runs if r.is_default), None) if run is None
              else Runs(studies._store).get(actor, study_id, run))
    report = pairwise_report(choices, {item: v.verdict for item, v in verdicts.items()},
                             {item: v.slot for item, v in verdicts.items()}, allow_tie=bool(study.allow_tie),
                             n_resamples=n_resamples, seed=seed)
    report["study"] = {"id": study.id, "name": study.name, "blind": bool(study.blind)}
    report["run"] = None if chosen is None else {"id": chosen.id, "name": chosen.name, "label": chosen.label}
    report["choices_headline"] = ("before the reveal (blind study)" if study.blind
                                  else "as given (not a blind study)")
    return report


def pair_dataset_report(store: object, actor: User, study: Mapping[str, Any],
                        tables: Mapping[str, list[dict[str, Any]]],
                        *, n_resamples: int = 1000, seed: int = 0) -> dict[str, Any] | None:
    """The pairwise report of a study's dataset folder (core.studies.dataset.read_tables: study.json's fields and
    the tables, people named as the dataset names them) and its first run's verdicts; None without labels.
    Admins only (pair_verdicts checks)."""
    from core.agreement.pairwise_report import pairwise_report  # numpy/sklearn: only here

    removed = {row["item_id"] for row in tables["items"] if row.get("removed_at") is not None}
    blind = bool(study["blind"])
    choices = [{"item_id": row["item_id"], "annotator": row["annotator"], "shown_order": row.get("shown_order"),
                "choice": (pairs.choice_of_score(row["score_before_reveal"]) if blind
                           else row.get("choice") or pairs.choice_of_score(row["score"]))}
               for row in tables["labels"] if row["item_id"] not in removed]
    if not choices:
        return None
    verdicts = pair_verdicts(store, actor, int(study["study_id"]))
    report = pairwise_report(choices, {item: v.verdict for item, v in verdicts.items()},
                             {item: v.slot for item, v in verdicts.items()}, allow_tie=bool(study.get("allow_tie")),
                             n_resamples=n_resamples, seed=seed)
    report["study"] = {"id": study["study_id"], "name": study["name"], "blind": blind}
    report["choices_headline"] = "before the reveal (blind study)" if blind else "as given (not a blind study)"
    return report
