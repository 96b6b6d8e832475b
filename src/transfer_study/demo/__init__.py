"""The demo dataset's library: its configuration and the renderer of its fragment photos."""
