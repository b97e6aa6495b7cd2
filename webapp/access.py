"""Who is signed in, who may grade, and which tabs each role sees (the tabs' callbacks ask these functions).

`current_user` is the one lookup of who is asking: the study tabs call it, and `signed_in_user` (History,
Batch and the tab bar, through `grade_guard`) is built on it.

With sign-in on, grading and reading the judge's verdicts (the Grade tab, `/grade`, History, Batch) need the
grade right (core.studies.User.can_grade: admins, and annotators an admin granted it to); even then a
verdict of a blind-study item the user has not labelled is never shown (core.studies.BlindGuard). With
sign-in off there are no users and everyone may do everything, as before.

With Sign in with Hugging Face (`services.hub`), the identity is the OAuth profile of the request's session
(webapp.hub_sign_in), mapped to a users row by core.hub_sign_in; everything after that is the same code. A
visitor who is not signed in may use only the Grade tab, as a demo (`grade_tab_guard`).

Gradio 6.31 ignores visibility updates of a gr.Tab, so the tabs a role cannot use are hidden by classes on
the gr.Tabs (`TAB_CSS`), set on page load; the callbacks refuse those users anyway.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from core.batch import BatchJobs
from core.studies import BlindGuard, PermissionDenied, User
from core.studies.visitors import visitor_guard
from webapp import hub_sign_in
from webapp.components import Unavailable
from webapp.services import Services

# Every tab's id (gr.Tab(id=...)) in the order of the tab bar; each role's tabs are a subset.
TABS = ("grade", "history", "batch", "studies", "label", "agreement", "review", "manage", "people")
GRADING_TABS = ("grade", "history", "batch")
ADMIN_TABS = ("studies", "agreement", "manage", "people")
HIDDEN_CLASS = "gl-hide-{tab}"
# The whole tab bar and its content, while a user must first choose a new password (webapp.password_panel).
LOCKED_CLASS = "gl-locked"
# One rule per tab: its button in the tab bar (the Tabs wrap instead of folding into a menu, whose
# buttons carry no tab id) disappears while the gr.Tabs carries the tab's class.
TAB_CSS = "\n".join(f'#gl-tabs.{HIDDEN_CLASS.format(tab=tab)} button[data-tab-id="{tab}"] {{ display: none; }}'
                    for tab in TABS) + f"\n#gl-tabs.{LOCKED_CLASS} {{ display: none; }}"
NEEDS_SIGN_IN = (
    "Studies need sign-in. Create the first admin with `python -m core create-admin NAME`, then restart the "
    "app: it asks everyone to sign in as soon as a user exists (or start it with --auth)."
)
NO_STUDIES = "Studies are not available: this app was started without a study store."
NO_RIGHT = ("Grading is for admins and for annotators an admin allowed to grade: it shows the judge's verdicts, "
            "which blind studies hide from annotators until they have labelled the item.")


def signed_in_user(services: Services, request: Any) -> User | None:
    """The signed-in user of a request, as stored now; None when sign-in is off or nobody is signed in."""
    if not services.auth_enabled or services.studies is None:
        return None
    try:
        return current_user(services, request)
    except (Unavailable, PermissionDenied):
        return None


def current_user(services: Services, request: Any) -> User:
    """The signed-in user of a request, as stored now: the only identity a callback trusts.

    Unavailable when there is no user store or nobody is signed in; PermissionDenied when the account is gone.
    """
    if services.studies is None:
        raise Unavailable(NO_STUDIES)
    if services.hub is not None:  # signed in with Hugging Face: the session's profile, mapped by core
        profile = hub_sign_in.profile_of(request)
        if profile is None:
            raise Unavailable(hub_sign_in.SIGN_IN_HINT)
        return hub_sign_in.user_of(services, profile)
    username = getattr(request, "username", None) if request is not None else None
    if not username:
        raise Unavailable(NEEDS_SIGN_IN)
    user = services.studies.get_user(str(username))
    if user is None:
        raise PermissionDenied(f"There is no account named {username!r} any more; sign out and in again.")
    if not user.active:
        raise PermissionDenied(f"The account {user.username!r} is deactivated; an admin can reactivate it.")
    return user


def require_admin(user: User, doing: str) -> User:
    """`user` when they are an admin; PermissionDenied ("Only an admin may {doing}; ...") otherwise."""
    if not user.is_admin:
        article = "a" if user.role == "reviewer" else "an"
        raise PermissionDenied(f"Only an admin may {doing}; {user.username!r} is {article} {user.role}.")
    return user


def grade_guard(services: Services, request: Any) -> BlindGuard | None:
    """What this request may not see of the judge's verdicts: None when sign-in is off (no limits).

    PermissionDenied when the signed-in user has no grade right (or nobody is signed in).
    """
    if not services.auth_enabled or services.studies is None:
        return None
    user = signed_in_user(services, request)
    if user is None:
        raise PermissionDenied("Sign in first.")
    if not user.can_grade:
        raise PermissionDenied(NO_RIGHT)
    return services.studies.blind_guard(user)


def grade_tab_guard(services: Services, request: Any) -> BlindGuard | None:
    """grade_guard for the Grade tab and /grade: with Hugging Face sign-in, whoever may not grade (a visitor, or
    an annotator without the grade right) grades as a demo, never an item of a blind study (visitor_guard)."""
    if services.hub is not None and services.studies is not None:
        user = signed_in_user(services, request)
        if user is None or not user.can_grade:
            return visitor_guard(services.store)
    return grade_guard(services, request)


def visible_judgments(services: Services, request: Any, judgment_ids: Iterable[int]) -> set[int]:
    """Which stored judgments this request may see (all of them when sign-in is off)."""
    wanted = set(judgment_ids)
    guard = grade_guard(services, request)
    if guard is None or not guard.items or services.studies is None:
        return wanted
    user = signed_in_user(services, request)
    assert user is not None  # grade_guard returned a guard, so somebody is signed in
    return services.studies.visible_judgments(user, wanted)


def check_job(guard: BlindGuard | None, jobs: BatchJobs, job_id: int) -> None:
    """PermissionDenied when a batch job grades (or graded) a blind-study item the user has not labelled."""
    if guard is None or not guard.items:
        return
    rows = [result.row_number for result in jobs.results(job_id)
            if guard.hides(result.judgment_id or 0, list(result.input_values.items()))]
    if rows:
        shown = ", ".join(str(row) for row in rows[:10]) + (" ..." if len(rows) > 10 else "")
        raise PermissionDenied(
            f"Job {job_id} holds items of a blind study that {guard.username!r} has not labelled yet (data rows "
            f"{shown}): their verdicts stay hidden until you have labelled them in the Label tab.")


def tabs_for(services: Services, user: User | None) -> tuple[str, ...]:
    """The tabs a user sees: all with sign-in off or for admins; annotators and reviewers Label (and grading, if
    granted), reviewers also Review; none while the user must choose a new password."""
    if not services.auth_enabled or services.studies is None:
        return TABS
    if user is None:
        return ("grade",) if services.hub is not None else ("label",)
    if user.must_change_password:
        return ()
    if user.is_admin:
        return TABS
    return tuple(tab for tab in TABS if tab == "label" or (user.can_grade and tab in GRADING_TABS)
                 or (tab == "review" and user.may_review) or (tab == "grade" and services.hub is not None))


def hidden_classes(shown: Iterable[str]) -> list[str]:
    """The gr.Tabs classes that hide every tab not in `shown` (and the whole bar when none is shown)."""
    visible = set(shown)
    return [HIDDEN_CLASS.format(tab=tab) for tab in TABS if tab not in visible] + ([] if visible else [LOCKED_CLASS])


def first_tab(shown: tuple[str, ...], user: User | None) -> str:
    """The tab a user lands on: Label for annotators (what they come for), else the first one shown."""
    if user is not None and not user.is_admin and "label" in shown:
        return "label"
    return shown[0] if shown else "label"
