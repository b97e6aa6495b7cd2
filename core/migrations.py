"""The schema's history: ordered, named migrations, each with a frozen copy of the DDL it needs.

Appending a column to an ORM model later never changes what an old migration does: every step here
spells out its own tables and columns instead of reading the models. `core.store.Store` applies the
pending steps in version order, one transaction each, and records them in `schema_migrations`.
Append only; never edit or reorder a released step (existing databases have already run it).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection


class Migration(NamedTuple):
    """One schema step: applied once, in version order, inside its own transaction."""

    version: int
    name: str
    apply: Callable[[Connection], None]


def _m001_create_judgments(connection: Connection) -> None:
    """Create `judgments` exactly as version 1 defined it (frozen: later changes are new migrations)."""
    table = Table(
        "judgments",
        MetaData(),
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("created_at", DateTime(timezone=True), nullable=False, index=True),
        Column("model_id", String(512), nullable=False, index=True),
        Column("backend", String(64), nullable=False, index=True),
        Column("prompt_sha256", String(64), nullable=False, index=True),
        Column("fields", JSON, nullable=False),
        Column("preview", Text, nullable=False),
        Column("pass_criteria", Text, nullable=False),
        Column("rubric", Text, nullable=False),
        Column("scale_min", Integer, nullable=False),
        Column("scale_max", Integer, nullable=False),
        Column("raw_output", Text, nullable=False),
        Column("reasoning", Text, nullable=True),
        Column("highlights", JSON, nullable=False),
        Column("score", Integer, nullable=True),
        Column("status", String(16), nullable=False),
        Column("problems", JSON, nullable=False),
        Column("spans", JSON, nullable=False),
        Column("ungrounded", JSON, nullable=False),
        Column("distribution", JSON, nullable=True),
        Column("distribution_mass", Float, nullable=True),
        Column("expected_score", Float, nullable=True),
        Column("confidence", Float, nullable=True),
        Column("prompt_tokens", Integer, nullable=True),
        Column("completion_tokens", Integer, nullable=True),
        Column("timings", JSON, nullable=False),
        Column("warnings", JSON, nullable=False),
        Column("repro", JSON, nullable=False),
    )
    table.create(connection)


def _m002_create_studies(connection: Connection) -> None:
    """Create the human-agreement tables (users, studies, items, annotations, edits, claims), frozen."""
    metadata = MetaData()
    # Only referenced, never created here: migration 1 made it. The foreign key needs it to resolve.
    Table("judgments", metadata, Column("id", Integer, primary_key=True))
    users = Table(
        "users",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("username", String(64), nullable=False, unique=True),
        Column("role", String(16), nullable=False),
        # "scrypt$n$r$p$salt_b64$hash_b64": the parameters travel with the hash, so they can be raised later.
        Column("password_hash", String(256), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )
    studies = Table(
        "studies",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("name", String(200), nullable=False),
        Column("description", Text, nullable=False),
        Column("pass_criteria", Text, nullable=False),
        Column("rubric", Text, nullable=False),
        Column("scale_min", Integer, nullable=False),
        Column("scale_max", Integer, nullable=False),
        Column("tags", JSON, nullable=False),
        Column("overlap_target", Integer, nullable=False),
        Column("blind", Boolean, nullable=False),
        Column("judge_settings", JSON, nullable=False),
        Column("created_by_id", Integer, ForeignKey("users.id"), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    )
    items = Table(
        "items",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("study_id", Integer, ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
        # A JSON list of [tag, text] pairs, like judgments.fields: order matters and jsonb would lose it.
        Column("fields", JSON, nullable=False),
        Column("external_id", String(512), nullable=True),
        # SET NULL: deleting a judgment from History must not fail, nor delete the item.
        Column("judgment_id", Integer, ForeignKey("judgments.id", ondelete="SET NULL"), nullable=True, index=True),
        Column("order_key", BigInteger, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Index("ix_items_study_order", "study_id", "order_key"),
        Index("ix_items_study_external", "study_id", "external_id"),
    )
    annotations = Table(
        "annotations",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        # study_id repeats the item's study: progress and per-study lists then need no join.
        Column("study_id", Integer, ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
        Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), nullable=False),
        Column("annotator_id", Integer, ForeignKey("users.id"), nullable=False),
        Column("score", Integer, nullable=False),
        Column("score_before_reveal", Integer, nullable=False),
        Column("score_after_reveal", Integer, nullable=True),
        Column("spans", JSON, nullable=False),
        Column("comment", Text, nullable=False),
        Column("seconds", Float, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        # One label per annotator and item, enforced by the database even across processes.
        UniqueConstraint("item_id", "annotator_id", name="uq_annotations_item_annotator"),
        Index("ix_annotations_study_annotator", "study_id", "annotator_id"),
    )
    annotation_edits = Table(
        "annotation_edits",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("annotation_id", Integer, ForeignKey("annotations.id", ondelete="CASCADE"), nullable=False,
               index=True),
        Column("editor_id", Integer, ForeignKey("users.id"), nullable=False),
        Column("at", DateTime(timezone=True), nullable=False),
        Column("changes", JSON, nullable=False),  # {attribute: [old, new]}
    )
    # Who is labelling what right now: next_item skips an item whose free places are all taken by other
    # annotators' recent claims, so people working at once do not all label the same item. One claim per
    # annotator and study; an old claim (an abandoned browser tab) simply stops counting.
    item_claims = Table(
        "item_claims",
        metadata,
        Column("study_id", Integer, ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True),
        Column("annotator_id", Integer, ForeignKey("users.id"), primary_key=True),
        Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), nullable=False, index=True),
        Column("claimed_at", DateTime(timezone=True), nullable=False),
    )
    for table in (users, studies, items, annotations, annotation_edits, item_claims):
        table.create(connection)


def _m003_create_batch_jobs(connection: Connection) -> None:
    """Create the batch-grading tables (jobs and their rows), frozen."""
    metadata = MetaData()
    Table("judgments", metadata, Column("id", Integer, primary_key=True))
    jobs = Table(
        "batch_jobs",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        # SHA-256 of the data, rubric, mapping and judge: the same command finds (and resumes) its job.
        Column("key", String(64), nullable=False, unique=True),
        Column("name", String(200), nullable=False),
        Column("source", Text, nullable=False),
        Column("source_sha256", String(64), nullable=False),
        Column("columns", JSON, nullable=False),  # the input's columns, in file order (for export)
        Column("settings", JSON, nullable=False),  # pass_criteria, rubric, tags, mapping, max_new_tokens
        Column("judge", JSON, nullable=False),  # back-end name and options (no secrets)
        Column("status", String(16), nullable=False),
        Column("message", Text, nullable=False),
        Column("total_rows", Integer, nullable=False),
        # Who is grading it now ("host:pid:token") and when they last wrote: a second runner waits.
        Column("runner", String(200), nullable=True),
        Column("heartbeat_at", DateTime(timezone=True), nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    )
    rows = Table(
        "batch_rows",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("job_id", Integer, ForeignKey("batch_jobs.id", ondelete="CASCADE"), nullable=False),
        Column("position", Integer, nullable=False),  # 0-based order of the row in the input
        Column("row_number", Integer, nullable=False),  # 1-based data row number in the file, for messages
        Column("input_values", JSON, nullable=False),  # the row as read, every column
        Column("fields", JSON, nullable=False),  # [[tag, text], ...] to grade
        Column("status", String(16), nullable=False),  # pending | done | error
        Column("error", Text, nullable=True),
        Column("judgment_id", Integer, ForeignKey("judgments.id", ondelete="SET NULL"), nullable=True),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        UniqueConstraint("job_id", "position", name="uq_batch_rows_job_position"),
        Index("ix_batch_rows_job_status", "job_id", "status", "position"),
    )
    jobs.create(connection)
    rows.create(connection)


def _m004_add_users_can_grade(connection: Connection) -> None:
    """Add `users.can_grade`, frozen: an admin's grant of the grade right to an annotator, off for everyone.

    With sign-in on, grading (and reading stored verdicts) needs this right, so that an annotator cannot
    ask the judge for the verdict a blind study hides. Admins have it by their role, whatever the flag says.
    """
    # FALSE (not 0): the same DDL on SQLite >= 3.23 and PostgreSQL.
    connection.execute(text("ALTER TABLE users ADD COLUMN can_grade BOOLEAN NOT NULL DEFAULT FALSE"))


def _m005_study_administration(connection: Connection) -> None:
    """Study administration, frozen: guidelines, archiving, assignment, removed items, inactive users, verdicts
    of reviewers (adjudications).

    Every new column has a default that keeps an existing database meaning what it meant: studies open to all
    annotators, nothing archived or removed, every user active.
    """
    for statement in (
        "ALTER TABLE studies ADD COLUMN guidelines TEXT NOT NULL DEFAULT ''",  # Markdown, shown on the Label tab
        "ALTER TABLE studies ADD COLUMN archived_at TIMESTAMP WITH TIME ZONE NULL",  # hidden from annotators, kept
        # 'open': every annotator may label; 'chosen': only the study's annotators (study_annotators).
        "ALTER TABLE studies ADD COLUMN assignment VARCHAR(16) NOT NULL DEFAULT 'open'",
        # Split the items among the allowed annotators, each item to overlap_target of them.
        "ALTER TABLE studies ADD COLUMN split_items BOOLEAN NOT NULL DEFAULT FALSE",
        # A removed item leaves the queue and the report; its labels stay in the exports.
        "ALTER TABLE items ADD COLUMN removed_at TIMESTAMP WITH TIME ZONE NULL",
        "ALTER TABLE users ADD COLUMN active BOOLEAN NOT NULL DEFAULT TRUE",  # an inactive user cannot sign in
        # Set by an admin's password reset to a one-time password: the user must choose a new one.
        "ALTER TABLE users ADD COLUMN must_change_password BOOLEAN NOT NULL DEFAULT FALSE",
    ):
        connection.execute(text(statement))
    metadata = MetaData()
    for name in ("users", "studies", "items"):  # referenced only; earlier migrations created them
        Table(name, metadata, Column("id", Integer, primary_key=True))
    study_annotators = Table(
        "study_annotators",
        metadata,
        Column("study_id", Integer, ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True),
        Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    )
    # A reviewer's settled label for an item. Rows are only added: the newest one is the item's adjudicated
    # label, the older ones its history (who decided what, and when).
    adjudications = Table(
        "adjudications",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("study_id", Integer, ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
        Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), nullable=False),
        Column("reviewer_id", Integer, ForeignKey("users.id"), nullable=False),
        Column("score", Integer, nullable=False),
        Column("note", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Index("ix_adjudications_study_item", "study_id", "item_id", "id"),
    )
    study_annotators.create(connection)
    adjudications.create(connection)


def _m006_queue_order(connection: Connection) -> None:
    """The labelling queue's order, frozen: random (as before) or least-confident judgment first, and how each
    item was drawn.

    `items.drawn_by` is written once, when the queue first hands the item out, and never changed: the report
    separates items drawn at random (unbiased agreement) from items drawn least-confident first (biased toward
    hard items) by it, whatever the study's setting says later. Items an old queue already handed out (they have
    a label or a claim) were drawn at random, since that was the only order; the rest wait to be drawn.
    """
    for statement in (
        # 'random': the stable pseudo-random order_key order; 'uncertainty': least-confident judgment first.
        "ALTER TABLE studies ADD COLUMN queue_order VARCHAR(16) NOT NULL DEFAULT 'random'",
        # With 'uncertainty': the first N items handed out still come from the random order.
        "ALTER TABLE studies ADD COLUMN random_first INTEGER NOT NULL DEFAULT 0",
        # 'random' / 'uncertainty', set when the item is first handed out; NULL: not handed out yet.
        "ALTER TABLE items ADD COLUMN drawn_by VARCHAR(16) NULL",
        "UPDATE items SET drawn_by = 'random' WHERE id IN (SELECT item_id FROM annotations) "
        "OR id IN (SELECT item_id FROM item_claims)",
    ):
        connection.execute(text(statement))
    metadata = MetaData()
    for name in ("users", "studies"):  # referenced only; earlier migrations created them
        Table(name, metadata, Column("id", Integer, primary_key=True))
    # Who changed a study's queue order, when, from what to what: rows are only added.
    Table(
        "study_setting_changes",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("study_id", Integer, ForeignKey("studies.id", ondelete="CASCADE"), nullable=False, index=True),
        Column("editor_id", Integer, ForeignKey("users.id"), nullable=False),
        Column("at", DateTime(timezone=True), nullable=False),
        Column("changes", JSON, nullable=False),  # {setting: [old, new]}
    ).create(connection)


# The judge configuration a run of migration 7 records, from a judgment's reproducibility record: the keys that
# make two judgments "the same judge", frozen here (core.studies.runs.run_config writes the same shape).
_M007_PROMPT_VARIANT = "published"


def _m007_config(repro: object) -> dict[str, object]:
    """The run configuration of a judgment's reproducibility record (missing keys: None)."""
    record: dict[str, Any] = repro if isinstance(repro, dict) else {}
    found = record.get("decoding")
    decoding: dict[str, Any] = found if isinstance(found, dict) else {}
    return {
        "backend": record.get("backend"),
        "model_id": record.get("model_id"),
        "revision": record.get("revision"),
        "quantization": record.get("quantization"),
        "dtype": record.get("dtype"),
        "prompt_variant": _M007_PROMPT_VARIANT,
        "decoding": {"strategy": decoding.get("strategy", "greedy"), "temperature": decoding.get("temperature", 0.0),
                     "max_new_tokens": record.get("max_new_tokens")},
    }


def _m007_judge_runs(connection: Connection) -> None:
    """Judge runs, frozen: a study can hold several runs, each one judge configuration grading every item once.

    Existing studies lose nothing: the judgments attached to a study's items (items.judgment_id) become its
    run 1, "Run 1", whose configuration is the one most of those judgments record (ties: the earliest judgment's).
    items.judgment_id stays, as the judgment of the study's first run (the Label tab's reveal, the exports, the
    published study and the review read it). A study without any judgment gets no run until it is graded.
    """
    metadata = MetaData()
    for name in ("users", "studies"):  # referenced only; earlier migrations created them
        Table(name, metadata, Column("id", Integer, primary_key=True))
    # Only read here (and referenced): the columns the data step needs.
    items = Table("items", metadata, Column("id", Integer, primary_key=True), Column("study_id", Integer),
                  Column("judgment_id", Integer))
    judgments = Table("judgments", metadata, Column("id", Integer, primary_key=True),
                      Column("created_at", DateTime(timezone=True)), Column("repro", JSON))
    runs = Table(
        "judge_runs",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("study_id", Integer, ForeignKey("studies.id", ondelete="CASCADE"), nullable=False, index=True),
        Column("position", Integer, nullable=False),  # 1, 2, ... in the study; the first run is the default
        Column("name", String(200), nullable=False),
        Column("config", JSON, nullable=False),  # back-end, model, revision, quantization, dtype, prompt, decoding
        Column("created_at", DateTime(timezone=True), nullable=False),
        # NULL: made by this migration from judgments graded before runs existed (who graded them is not known).
        Column("created_by_id", Integer, ForeignKey("users.id"), nullable=True),
        UniqueConstraint("study_id", "position", name="uq_judge_runs_study_position"),
        UniqueConstraint("study_id", "name", name="uq_judge_runs_study_name"),
    )
    run_judgments = Table(
        "run_judgments",
        metadata,
        Column("run_id", Integer, ForeignKey("judge_runs.id", ondelete="CASCADE"), primary_key=True),
        Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True, index=True),
        # CASCADE: deleting a judgment from History leaves its item ungraded in that run (items.judgment_id: SET NULL).
        Column("judgment_id", Integer, ForeignKey("judgments.id", ondelete="CASCADE"), nullable=False, index=True),
        Column("attached_at", DateTime(timezone=True), nullable=False),
    )
    runs.create(connection)
    run_judgments.create(connection)
    graded = connection.execute(
        select(items.c.id, items.c.study_id, items.c.judgment_id, judgments.c.created_at, judgments.c.repro)
        .join(judgments, judgments.c.id == items.c.judgment_id)
        .order_by(items.c.study_id, judgments.c.created_at, judgments.c.id)).all()
    by_study: dict[int, list[Any]] = {}
    for row in graded:
        by_study.setdefault(row.study_id, []).append(row)
    for study_id, rows in by_study.items():
        configs = [_m007_config(row.repro) for row in rows]
        keys = [json.dumps(config, sort_keys=True) for config in configs]
        counts = Counter(keys)
        chosen = configs[max(range(len(keys)), key=lambda i: (counts[keys[i]], -i))]  # most common, then earliest
        inserted = connection.execute(insert(runs).values(
            study_id=study_id, position=1, name="Run 1", config=chosen, created_at=rows[0].created_at,
            created_by_id=None)).inserted_primary_key
        assert inserted is not None  # an insert of one row always has its key
        run_id = inserted[0]
        connection.execute(insert(run_judgments), [
            {"run_id": run_id, "item_id": row.id, "judgment_id": row.judgment_id, "attached_at": row.created_at}
            for row in rows])


def _m008_pairwise_studies(connection: Connection) -> None:
    """Pairwise studies, frozen: a study either grades one response ('single', every study so far) or compares two
    ('pairwise'), with or without a tie; a pairwise label records the annotator's choice and the order the two
    responses were shown in; a judge run keeps the second order's judgment of a pairwise item.

    Existing rows lose nothing: every existing study is 'single' and its labels carry no choice.
    """
    for statement in (
        "ALTER TABLE studies ADD COLUMN mode VARCHAR(16) NOT NULL DEFAULT 'single'",
        "ALTER TABLE studies ADD COLUMN allow_tie BOOLEAN NOT NULL DEFAULT FALSE",
        # 'A' / 'B' / 'tie' in the item's own terms; NULL in a single-response study.
        "ALTER TABLE annotations ADD COLUMN choice VARCHAR(8) NULL",
        # 'AB': response A was shown first (on the left); 'BA': B was; NULL in a single-response study.
        "ALTER TABLE annotations ADD COLUMN shown_order VARCHAR(4) NULL",
    ):
        connection.execute(text(statement))
    metadata = MetaData()
    for name in ("judge_runs", "items", "judgments"):  # referenced only; earlier migrations created them
        Table(name, metadata, Column("id", Integer, primary_key=True))
    # The (B, A) order's judgment of a pairwise item in a run; run_judgments holds its (A, B) order's.
    Table(
        "run_second_orders",
        metadata,
        Column("run_id", Integer, ForeignKey("judge_runs.id", ondelete="CASCADE"), primary_key=True),
        Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True, index=True),
        Column("judgment_id", Integer, ForeignKey("judgments.id", ondelete="CASCADE"), nullable=False, index=True),
        Column("attached_at", DateTime(timezone=True), nullable=False),
    ).create(connection)


def _m009_study_audits(connection: Connection) -> None:
    """Robustness audits kept with their study, frozen: one row per audit (append only; the newest is the one the
    report and the published study show), its summary block (core.audit.report.audit_report) and the judge runs
    that hold its verdicts. Nothing existing changes: studies audited before this step have no stored audit.
    """
    metadata = MetaData()
    for name in ("users", "studies"):  # referenced only; earlier migrations created them
        Table(name, metadata, Column("id", Integer, primary_key=True))
    Table(
        "study_audits",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("study_id", Integer, ForeignKey("studies.id", ondelete="CASCADE"), nullable=False, index=True),
        Column("label", String(200), nullable=False),  # "<UTC start>[ (n)]": its judge runs' "Audit <label>: " prefix
        Column("started_at", DateTime(timezone=True), nullable=False),
        Column("created_by_id", Integer, ForeignKey("users.id"), nullable=True),
        Column("summary", JSON, nullable=False),  # the audit block: rows per perturbation, sample, bootstrap, methods
        Column("runs", JSON, nullable=False),  # run name ("unperturbed", a perturbation) -> its judge run's id
        Column("item_ids", JSON, nullable=False),  # the audited items, in study order
        Column("seconds", Float, nullable=True),
    ).create(connection)


def _m010_username_keys(connection: Connection) -> None:
    """Usernames compared without regard to case, frozen: `users.username_key` holds each name's case-folded form
    (Python's str.casefold, the same on every database, unlike SQL's lower()), unique, so "Ada" and "ada" cannot
    both be created, even by two processes at once.

    Nothing is renamed: names that already differ only in case keep signing in by their exact name; the later
    one's key gets "#<id>" ('#' is never in a username), so the index holds.
    """
    connection.execute(text("ALTER TABLE users ADD COLUMN username_key VARCHAR(256) NULL"))
    users = Table("users", MetaData(), Column("id", Integer, primary_key=True), Column("username", String(64)),
                  Column("username_key", String(256)))
    taken: set[str] = set()
    for user_id, name in connection.execute(select(users.c.id, users.c.username).order_by(users.c.id)).all():
        key = name.casefold()
        if key in taken:
            key = f"{key}#{user_id}"
        taken.add(key)
        connection.execute(update(users).where(users.c.id == user_id).values(username_key=key))
    Index("uq_users_username_key", users.c.username_key, unique=True).create(connection)


# Append only; never edit or reorder a released step (existing databases have already run it).
MIGRATIONS: list[Migration] = [
    Migration(1, "create_judgments", _m001_create_judgments),
    Migration(2, "create_studies", _m002_create_studies),
    Migration(3, "create_batch_jobs", _m003_create_batch_jobs),
    Migration(4, "add_users_can_grade", _m004_add_users_can_grade),
    Migration(5, "study_administration", _m005_study_administration),
    Migration(6, "queue_order", _m006_queue_order),
    Migration(7, "judge_runs", _m007_judge_runs),
    Migration(8, "pairwise_studies", _m008_pairwise_studies),
    Migration(9, "study_audits", _m009_study_audits),
    Migration(10, "username_keys", _m010_username_keys),
]


def checked(migrations: Sequence[Migration | tuple[int, str, Callable[[Connection], None]]]) -> list[Migration]:
    """The steps as Migration values; ValueError unless their versions are positive, unique and ascending."""
    steps = [Migration(*step) for step in migrations]
    versions = [step.version for step in steps]
    if any(v <= 0 for v in versions) or versions != sorted(set(versions)):
        raise ValueError(f"Migration versions must be positive, unique and ascending; got {versions}.")
    return steps
