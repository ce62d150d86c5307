"""The event stream's ZeroMQ transport: publisher, subscriber, endpoints and CURVE keys.

Not a GStreamer element: the publish element, the broker, the command line and the tests all send
or receive through it, so it sits under plugins/ and above parsing/ (whose event codec it uses).
"""
