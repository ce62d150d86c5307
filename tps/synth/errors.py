"""The synthetic-data exception family."""


class SynthError(Exception):
    """Base of every synthetic-data error."""


class SynthParamError(SynthError):
    """A bad request: a size, count, action or frame index outside what the generator accepts."""


class EncodeError(SynthError):
    """GStreamer could not encode or decode a video (pipeline error, timeout, missing element)."""
