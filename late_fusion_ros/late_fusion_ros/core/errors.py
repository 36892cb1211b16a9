# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""Error type the core raises for malformed input."""


class InputError(ValueError):
    """
    Reject malformed input, with a stable machine-usable reason key.

    ``reason`` is a short key ('odd_byte_count', 'unknown_encoding', ...) that
    nodes count rejections by; ``str(error)`` is the message for humans.
    """

    def __init__(self, reason: str, message: str):
        """Store the reason key and the human-readable message."""
        super().__init__(message)
        self.reason = reason
