"""Judge back-ends. Importing this package is cheap: heavy libraries load inside each back-end."""

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
