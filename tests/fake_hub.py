"""A stand-in for the Hugging Face Hub on 127.0.0.1: the few endpoints that HfApi.create_repo and upload_folder call.

This is NOT the Hub: the Hub cannot be reached from the test machines. It plays, as huggingface_hub 2.x calls
them, POST /api/repos/create (200 the first time, 409 "already exists" after), POST /api/validate-yaml,
POST /api/datasets/OWNER/NAME/preupload/REVISION (every file "regular", with the git oid of the stored copy as
the Hub sends it, so unchanged files are left out of a commit) and POST /api/datasets/OWNER/NAME/commit/REVISION
(the NDJSON commit: header + base64 files), and GET/HEAD /datasets/OWNER/NAME/resolve/REVISION/PATH (a stored
file, for hf_hub_download). Any other request is answered 404 and recorded, so a test sees it.
The real Hub sends Parquet files through LFS/Xet storage; that path is not played here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def git_oid(data: bytes) -> str:
    """git's blob id of `data` (what the Hub reports as a regular file's oid)."""
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


@dataclass
class Repo:
    repo_type: str
    visibility: str | None
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[dict[str, Any]] = field(default_factory=list)  # {"oid", "summary", "paths"}


@dataclass
class FakeHub:
    """The stand-in's state: repos by id, and every request as (method, path, Authorization header)."""

    url: str = ""
    repos: dict[str, Repo] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    refused_token: str | None = None  # requests with this token are answered 401, as the Hub does a revoked one
    _server: ThreadingHTTPServer | None = None

    def start(self) -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                self._file(send_body=True)

            def do_HEAD(self) -> None:
                self._file(send_body=False)

            def _file(self, send_body: bool) -> None:
                """GET/HEAD /datasets/OWNER/NAME/resolve/REVISION/PATH: a stored file (hf_hub_download)."""
                hub.requests.append((self.command, self.path.split("?")[0], self.headers.get("authorization")))
                parts = self.path.split("?")[0].strip("/").split("/", 5)
                repo = hub.repos.get("/".join(parts[1:3])) if len(parts) == 6 and parts[3] == "resolve" else None
                data = repo.files.get(parts[5]) if repo is not None and parts[0] == "datasets" else None
                if repo is None or data is None or not repo.commits:
                    self._send(404, {"error": "Entry not found"}, send_body)
                    return
                self.send_response(200)
                self.send_header("content-length", str(len(data)))
                self.send_header("etag", f'"{git_oid(data)}"')
                self.send_header("x-repo-commit", repo.commits[-1]["oid"])
                self.end_headers()
                if send_body:
                    self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                path = self.path.split("?")[0]
                hub.requests.append(("POST", path, self.headers.get("authorization")))
                if hub.refused_token and self.headers.get("authorization") == f"Bearer {hub.refused_token}":
                    self._send(401, {"error": "Invalid credentials in Authorization header"})
                    return
                status, answer = hub.answer(path, body)
                self._send(status, answer)

            def _send(self, status: int, answer: Any, send_body: bool = True) -> None:
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                if status == 404:
                    self.send_header("x-error-code", "EntryNotFound")
                self.end_headers()
                if send_body:
                    self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def answer(self, path: str, body: bytes) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if path == "/api/repos/create":
            payload = json.loads(body)
            repo_id = f"{payload['organization']}/{payload['name']}"
            url = f"{self.url}/datasets/{repo_id}"
            if repo_id in self.repos:
                return 409, {"error": "You already created this dataset repo", "url": url}
            self.repos[repo_id] = Repo(payload.get("type") or "model", payload.get("visibility"))
            return 200, {"url": url}
        if path == "/api/validate-yaml":
            return 200, {"errors": [], "warnings": []}
        if len(parts) == 6 and parts[:2] == ["api", "datasets"] and parts[4] in ("preupload", "commit"):
            repo = self.repos.get(f"{parts[2]}/{parts[3]}")
            if repo is None:
                return 404, {"error": "Repository not found"}
            if parts[4] == "preupload":
                files = json.loads(body)["files"]
                return 200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                                        "oid": git_oid(repo.files[f["path"]]) if f["path"] in repo.files else None}
                                       for f in files]}
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
            header = next(line["value"] for line in lines if line["key"] == "header")
            paths = []
            for line in lines:
                if line["key"] == "file":
                    repo.files[line["value"]["path"]] = base64.b64decode(line["value"]["content"])
                    paths.append(line["value"]["path"])
                elif line["key"] == "deletedFile":
                    repo.files.pop(line["value"]["path"], None)
            oid = hashlib.sha1(f"{len(repo.commits)}:{header['summary']}".encode()).hexdigest()
            repo.commits.append({"oid": oid, "summary": header["summary"], "paths": paths})
            return 200, {"commitUrl": f"{self.url}/datasets/{parts[2]}/{parts[3]}/commit/{oid}", "commitOid": oid,
                         "pullRequestUrl": None}
        return 404, {"error": "not played by the stand-in"}
