"""GLIDER Studio core: prompt, parsing, span location, judge back-ends and storage.

Nothing in this package imports gradio or plotly, so it works from Python, a CLI or a notebook.
"""

__version__ = "0.1.0"
