"""Sign in with Hugging Face in the page: the login button, and the profile of a request's session.

Gradio adds its OAuth routes (`/login/huggingface`, `/login/callback`, `/logout`) and a signed session cookie
as soon as the page has a gr.LoginButton; a callback typed `gr.OAuthProfile` gets the profile from that
session. `profile_of` reads it from the same place (the session of the request that started the event), so
every existing callback, which already takes the gr.Request, finds its user through webapp.access.current_user
without a second parameter. Outside a Space Gradio mocks the login with the profile of the machine's own
`hf auth login` (it asks the Hub who that is once, at start).
"""

import time
from collections.abc import Mapping
from typing import Any

import gradio as gr

from core.accounts import User
from core.hub_sign_in import hub_user
from webapp.services import Services

SIGN_IN_HINT = "Sign in with Hugging Face (the button at the top) to label studies."


def _session(request: Any) -> Mapping[str, Any]:
    """The request's session (Starlette's SessionMiddleware), or {} when there is none (as Gradio reads it)."""
    if request is None:
        return {}
    underlying = getattr(request, "request", None)
    scope = getattr(underlying, "scope", None)
    if isinstance(scope, dict):
        session = scope.get("session")
        return session if isinstance(session, Mapping) else {}
    kwargs = getattr(request, "kwargs", None)  # a gr.Request rebuilt from its fields
    session = kwargs.get("session") if isinstance(kwargs, dict) else None
    return session if isinstance(session, Mapping) else {}


def profile_of(request: Any) -> gr.OAuthProfile | None:
    """The Hugging Face profile signed in on this request's session, or None (none, or expired)."""
    info = _session(request).get("oauth_info")
    if not isinstance(info, Mapping):
        return None
    expires_at = info.get("expires_at")
    if isinstance(expires_at, int | float) and expires_at < time.time():
        return None
    userinfo = info.get("userinfo")
    if not isinstance(userinfo, Mapping) or not userinfo.get("preferred_username"):
        return None
    return gr.OAuthProfile({"name": "", "profile": "", "picture": "", **userinfo})


def user_of(services: Services, profile: gr.OAuthProfile) -> User:
    """The users row this profile signs in as (core.hub_sign_in.hub_user: made at the first sign-in)."""
    assert services.hub is not None  # only asked in Hugging Face mode
    return hub_user(services.store, str(profile.username), services.hub)


def login_button() -> gr.LoginButton:
    """The header's "Sign in with Hugging Face" button; once signed in it signs out."""
    return gr.LoginButton(logout_value="Sign out ({})", size="sm", elem_id="gl-login")
