"""GLIDER Studio's Gradio interface: wiring only; grading, parsing and storage live in core."""

from webapp.app import build_app, launch_options
from webapp.services import Services

__all__ = ["Services", "build_app", "launch_options"]
