"""GStreamer underneath everything that touches video: helpers, RGB frame layout, the decode loop.

The lowest floor: `tps`, `plugins` and `pipeline` all stand on it, and it imports none of them.
"""
