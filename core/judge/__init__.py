"""Judge back-ends. Importing this package is cheap: heavy libraries load inside each back-end."""

# Imported for their side effect: registering each back-end under its name.
from core.judge import (
    llamacpp_backend,  # noqa: F401
    openai_backend,  # noqa: F401
    transformers_backend,  # noqa: F401
)
from core.judge.base import (
    BACKENDS,
    DEFAULT_MAX_NEW_TOKENS,
    TRAINED_CONTEXT,
    BackendInfo,
    Generation,
    JudgeBackend,
    StreamEvent,
    create_backend,
    register_backend,
)

__all__ = [
    "BACKENDS",
    "DEFAULT_MAX_NEW_TOKENS",
    "TRAINED_CONTEXT",
    "BackendInfo",
    "Generation",
    "JudgeBackend",
    "StreamEvent",
    "create_backend",
    "register_backend",
]
