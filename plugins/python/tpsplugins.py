"""Entry point for the gst-python plugin loader: makes our elements usable from gst-launch-1.0.

    GST_PLUGIN_PATH=<repo>/plugins gst-launch-1.0 videotestsrc ! video/x-raw,format=RGB \\
        ! tpsstamp stream=cam0 ! fakesink

The loader (gstreamer1.0-python3-plugin-loader) imports every ``python/*.py`` under each directory
of GST_PLUGIN_PATH inside an embedded system Python. That interpreter knows neither this repository
nor its virtual environment, so, as the process's entry point, this file puts both on ``sys.path``
(the environment from VIRTUAL_ENV, else ``<repo>/.venv``).

Every element of the catalogue is registered with the loader's plugin (``Gst.__plugin__``, set by
the loader when it started Python itself), because the loader registers only one element per file
through ``__gstelementfactory__``. Registering them under another plugin would replace the features
the registry is loading and crash. In a Python process that loads the loader (``__plugin__`` unset)
only the first element comes from here; such processes call `register_elements()` themselves.
"""

from __future__ import annotations

import os
import site
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_DIR = ".venv"


def _site_packages(venv: Path) -> Path:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return venv / "lib" / version / "site-packages"


def _extend_path() -> None:
    """Make the repository's packages and its environment's dependencies importable."""
    venv = Path(os.environ.get("VIRTUAL_ENV") or REPO / VENV_DIR)
    packages = _site_packages(venv)
    if packages.is_dir():
        known = list(sys.path)
        site.addsitedir(str(packages))  # also runs its .pth files (editable installs)
        added = [entry for entry in sys.path if entry not in known]
        sys.path[:] = added + known  # the environment wins over system packages, as in the venv
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


_extend_path()

import gi  # noqa: E402

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

from plugins.element import CATALOGUE, load_spec, make_element_class, register_elements  # noqa: E402

Gst.init(None)
_plugin = getattr(Gst, "__plugin__", None)
if _plugin is not None:
    register_elements(plugin=_plugin)
_first = load_spec(CATALOGUE[0])
__gstelementfactory__ = (_first.name, Gst.Rank.NONE, make_element_class(_first))
