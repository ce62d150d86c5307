"""A stand-alone RTSP server on 127.0.0.1 for tests that must kill it and start it again.

python tests/pipeline/rtsp_serve.py PORT   # serves rtsp://127.0.0.1:PORT/live until killed
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

LAUNCH = (
    "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=160,height=120,framerate=10/1"
    " ! x264enc tune=zerolatency key-int-max=5 ! rtph264pay name=pay0 pt=96 )"
)

if __name__ == "__main__":
    Gst.init(None)
    server = GstRtspServer.RTSPServer.new()
    server.set_address("127.0.0.1")
    server.set_service(sys.argv[1])
    factory = GstRtspServer.RTSPMediaFactory.new()
    factory.set_launch(LAUNCH)
    factory.set_shared(True)
    server.get_mount_points().add_factory("/live", factory)
    server.attach(None)
    print("ready", flush=True)
    GLib.MainLoop().run()
