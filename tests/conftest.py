"""Shared fixtures: tiny Phi-3 judges saved to disk and loaded through the user's code path."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Quantized copies saved by the judge go to a throwaway folder, never the user's ~/.cache.
os.environ.setdefault("GLIDER_CACHE_DIR", tempfile.mkdtemp(prefix="glider-test-cache-"))

from hypothesis import HealthCheck, settings  # noqa: E402

from core.prompt import build_prompt  # noqa: E402
from core.store import Store  # noqa: E402
from core.studies import ADMIN, Studies, User  # noqa: E402
from tests import tiny_model  # noqa: E402
from tests.fakes import WELL_FORMED  # noqa: E402
from tests.postgres import PostgresCluster  # noqa: E402

# Property-based tests: CI runs a bounded, reproducible campaign; a long random one runs on demand with
# HYPOTHESIS_PROFILE=campaign (tests/test_fuzz.py says how).
_NO_CLOCK = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
settings.register_profile("ci", max_examples=150, derandomize=True, database=None, **_NO_CLOCK)
settings.register_profile("campaign", max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "100000")),
                          database=None, **_NO_CLOCK)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

TEACH_FIELDS = {"CONTEXT": "Paris is the capital of France.", "MODEL OUTPUT": "Paris is the capital of France."}
TEACH_CRITERIA = "Is the MODEL OUTPUT faithful to the CONTEXT?"
TEACH_RUBRIC = "0: The MODEL OUTPUT is not faithful to the CONTEXT.\n1: The MODEL OUTPUT is faithful to the CONTEXT."


@pytest.fixture(scope="session")
def taught_prompt() -> str:
    """The one prompt the trained tiny judge answers with a well-formed GLIDER answer."""
    return build_prompt(TEACH_FIELDS, TEACH_CRITERIA, TEACH_RUBRIC)


@pytest.fixture(scope="session")
def tiny_tokenizer(taught_prompt: str):  # noqa: ANN201
    return tiny_model.build_tokenizer([taught_prompt, WELL_FORMED])


@pytest.fixture(scope="session")
def untrained_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer) -> Path:  # noqa: ANN001
    """A randomly initialised tiny Phi-3, saved like a user's local model directory."""
    model = tiny_model.build_model(tiny_tokenizer)
    return tiny_model.save(model, tiny_tokenizer, tmp_path_factory.mktemp("untrained-judge"))


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer, taught_prompt: str) -> Path:  # noqa: ANN001
    """A tiny Phi-3 trained (seconds, on CPU) until greedy decoding reproduces WELL_FORMED for taught_prompt."""
    model = tiny_model.build_model(tiny_tokenizer)
    loss = tiny_model.teach(model, tiny_tokenizer, taught_prompt, WELL_FORMED)
    assert loss < 0.05, f"the tiny judge did not learn its answer (loss {loss:.3f})"
    return tiny_model.save(model, tiny_tokenizer, tmp_path_factory.mktemp("trained-judge"))


@pytest.fixture(scope="session")
def trained_judge(trained_model_dir: Path):  # noqa: ANN201
    from core.judge import create_backend

    return create_backend("transformers", model=str(trained_model_dir), quantization="none")


@pytest.fixture(scope="session")
def browser():  # noqa: ANN201 - a playwright Browser; imported lazily so other tests need no playwright
    """One headless Debian Chromium for every browser test (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


# --- a study database: what the store, studies, runs, audit and publish tests share --------------------------------
# Defined once here; a test module that needs another database (an older schema, a shared file) defines its own.
# Every test that builds on `db_url` (and so on `store`, `studies`, `ada`) runs twice, on a SQLite file and on a
# PostgreSQL database ("[sqlite]" / "[postgresql]" in its name): core must behave the same on both. A module whose
# tests are about something else (the judge, a web page) and only keep their results in a store may set
# DATABASES = ("sqlite",), saying why.

STUDY_PASSWORD = "correct horse battery"
BACKENDS = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db_url" in metafunc.fixturenames:
        metafunc.parametrize("db_url", getattr(metafunc.module, "DATABASES", BACKENDS), indirect=True)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """The path of a fresh SQLite database file (db_url's file on SQLite)."""
    return tmp_path / "glider.db"


@pytest.fixture
def db_url(request: pytest.FixtureRequest, db: Path) -> str:
    """The SQLAlchemy URL of a fresh, empty database: the file `db` on SQLite, a new database of the session's
    cluster on PostgreSQL (pytest_generate_tests above runs each test on both). Opening a Store on it again is
    reopening the same database."""
    if getattr(request, "param", "sqlite") == "postgresql":
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        if "store" in request.fixturenames:  # it is opened at once: start from a copy of a migrated database
            return cluster.create_database(template=request.getfixturevalue("postgres_migrated"))
        return cluster.create_database()
    return f"sqlite:///{db}"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A fresh database at `db_url` (SQLite and PostgreSQL), migrated to the current schema."""
    with Store(db_url) as opened:
        yield opened


@pytest.fixture
def studies(store: Store) -> Studies:
    """The Studies service on `store` (cheap password hashing for tests)."""
    return Studies(store, password_cost=16)


@pytest.fixture
def ada(studies: Studies) -> User:
    """An admin, "ada", with STUDY_PASSWORD."""
    return studies.create_user("ada", STUDY_PASSWORD, role=ADMIN)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A throw-away PostgreSQL cluster for the session (tests.postgres), started on first use; a missing server is an
    error, never a skip (.ci/run installs it)."""
    cluster = PostgresCluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def postgres_migrated(postgres_cluster: PostgresCluster) -> str:
    """The name of a database of the session's cluster migrated to the current schema, a template for db_url: copying
    it (CREATE DATABASE ... TEMPLATE) takes a third of the time migrating a new one takes."""
    url = postgres_cluster.create_database("glider_migrated")
    Store(url).close()
    return url.rsplit("/", 1)[1]


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """The SQLAlchemy URL of a fresh, empty PostgreSQL database."""
    return postgres_cluster.create_database()
