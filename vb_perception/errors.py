"""The project's exception hierarchy: one base, one subclass per area.

Every message names the bad value and says what to do about it. Node callbacks catch
:class:`VbPerceptionError`, log it once and keep spinning.
"""

from __future__ import annotations

__all__ = ["CodecError", "ImageFileError", "PromptError", "VbPerceptionError"]


class VbPerceptionError(Exception):
    """Base class of every error vb_perception raises on purpose."""


class CodecError(VbPerceptionError, ValueError):
    """An array handed to an RGB codec has the wrong shape, dtype or values."""


class PromptError(VbPerceptionError, ValueError):
    """An instruction prompt cannot be parsed into a task, or asks for something undecodable."""


class ImageFileError(VbPerceptionError, ValueError):
    """An image, depth or normals file is missing, unreadable or of a kind we do not read."""
