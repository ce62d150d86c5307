"""GStreamer elements: thin adapters from buffers to the parsing stages."""
