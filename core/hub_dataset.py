"""Dataset repos on the Hugging Face Hub: upload a folder as one commit, and download a repo's files.

Thin wrappers over huggingface_hub (HfApi.create_repo + upload_folder; snapshot_download) that turn its
errors into HubError with a readable message. The token is the signed-in user's OAuth token on a Space, or
None: huggingface_hub then uses HF_TOKEN or the token saved by `hf auth login`. The Hub's address is
huggingface_hub's (HF_ENDPOINT), or `endpoint`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from core.errors import GliderError, InputError

# owner/name as the Hub spells repo ids: letters, digits, '-', '_', '.'; no '--' or '..', at most 96 characters.
_REPO_ID = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}\Z")


class HubError(GliderError):
    """The Hub refused or could not be reached (the message says which, and what to do)."""


@dataclass(frozen=True)
class Published:
    """Where a folder went: the dataset repo's URL and the commit made."""

    repo_id: str
    url: str
    commit_url: str
    commit_oid: str


def check_repo_id(repo_id: object) -> str:
    """`repo_id` stripped, if it looks like owner/name; InputError otherwise."""
    text = repo_id.strip() if isinstance(repo_id, str) else ""
    if not _REPO_ID.match(text) or "--" in text or ".." in text:
        raise InputError(f"{repo_id!r} is not a dataset repo id: write it as owner/name, e.g. alice/my-study.")
    return text


def upload_dataset_folder(folder: str | Path, repo_id: str, *, private: bool = False, token: str | None = None,
                          message: str = "Publish from GLIDER Studio", endpoint: str | None = None) -> Published:
    """Create the dataset repo if needed (private or public; an existing repo keeps its visibility) and upload
    the folder's files as one commit. Files with the same names are replaced; nothing is appended."""
    from huggingface_hub import HfApi  # only needed here
    from huggingface_hub.errors import HfHubHTTPError

    repo_id = check_repo_id(repo_id)
    api = HfApi(endpoint=endpoint, token=token or None)
    try:
        repo = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="dataset",
                                 commit_message=message)
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else None
        hint = {401: "the token is missing or invalid (sign in with Hugging Face, or set HF_TOKEN)",
                403: "the token may not create or write this repo (a Space's sign-in needs the manage-repos or "
                     "contribute-repos scope and write-repos; elsewhere use a write token)",
                404: "there is no such repo or namespace"}.get(status or 0, "")
        raise HubError(f"The Hub refused to publish to {repo_id}{': ' + hint if hint else ''} ({error}).") from error
    except (OSError, ConnectionError) as error:
        raise HubError(f"Could not reach the Hub to publish {repo_id}: {error}") from error
    return Published(repo_id=repo_id, url=str(repo), commit_url=info.commit_url, commit_oid=info.oid)


def download_dataset(repo_id: str, *, token: str | None = None, endpoint: str | None = None,
                     folder: str | Path | None = None) -> Path:
    """The dataset repo's files in a local folder (huggingface_hub's cache, or `folder`); HubError on failure."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    repo_id = check_repo_id(repo_id)
    try:
        path = snapshot_download(repo_id, repo_type="dataset", token=token or None, endpoint=endpoint,
                                 local_dir=str(folder) if folder is not None else None)
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as error:
        raise HubError(f"Could not download the dataset {repo_id}: {error}") from error
    return Path(path)
