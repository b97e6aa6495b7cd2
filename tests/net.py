"""Network settings shared by tests that talk to a launched app."""

# gradio_client's default read timeout (5 s) fails while a loaded 2-core CI machine builds /config;
# a grade's own time limits are asserted elsewhere, never through this.
SLOW_MACHINE = {"timeout": 60}
