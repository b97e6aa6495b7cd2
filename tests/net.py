"""Network settings shared by tests that talk to a launched app or a server they start."""

import socket

# gradio_client's default read timeout (5 s) fails while a loaded 2-core CI machine builds /config;
# a grade's own time limits are asserted elsewhere, never through this.
SLOW_MACHINE = {"timeout": 60}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
