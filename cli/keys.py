"""``run.py keys NAME --out DIR``: a CurveZMQ key pair for the event stream (docs/security.md).

Writes ``DIR/NAME.key`` (the public certificate: hand it to the other end) and
``DIR/NAME.key_secret`` (the secret one: readable by its owner only), in the format of
``zmq.auth.create_certificates``, which the publisher, the broker and the subscribers read.
An existing pair is kept unless ``--force`` is given, so a key in use is not replaced by mistake.
"""

from __future__ import annotations

import argparse
import re
import stat
from pathlib import Path

import zmq
import zmq.auth

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")
"""Key names become file names: no separators, no spaces."""
PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
SECRET_MODE = stat.S_IRUSR | stat.S_IWUSR
"""0600: the secret certificate is readable by its owner only."""


class KeysError(Exception):
    """A key pair cannot be made: a bad name, an existing pair, an unwritable folder."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``keys`` subcommand."""
    parser = subparsers.add_parser(
        "keys",
        help="make a CurveZMQ key pair for the event stream",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", metavar="NAME", help="key name, e.g. server, worker0, dashboard")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="key folder")
    parser.add_argument("--force", action="store_true", help="replace an existing pair")
    parser.set_defaults(handler=handle)


def make_keys(name: str, folder: Path, *, force: bool = False) -> tuple[Path, Path]:
    """Write a fresh key pair; returns the public and the secret certificate paths.

    Raises:
        KeysError: `name` is not a plain file name, the pair exists (without `force`), the
            folder cannot be written, or libzmq lacks CURVE.
    """
    if not NAME_PATTERN.fullmatch(name):
        raise KeysError(f"key name {name!r}: expected letters, digits, '_', '.' or '-'")
    if not zmq.has("curve"):
        raise KeysError(f"CURVE security: not available in libzmq {zmq.zmq_version()}")
    public, secret = folder / f"{name}{PUBLIC_SUFFIX}", folder / f"{name}{SECRET_SUFFIX}"
    existing = [str(path) for path in (public, secret) if path.exists()]
    if existing and not force:
        raise KeysError(f"key {name!r}: {', '.join(existing)} exists (use --force to replace)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        secret.unlink(missing_ok=True)
        secret.touch(mode=SECRET_MODE)  # the secret is never readable by others, not even briefly
        zmq.auth.create_certificates(folder, name)
    except OSError as error:
        raise KeysError(f"key folder {folder}: cannot write ({error.strerror})") from error
    return public, secret


def handle(args: argparse.Namespace) -> int:
    """Make the pair and say which file goes where; returns 0."""
    public, secret = make_keys(args.name, args.out, force=args.force)
    print(f"public certificate: {public}  (give it to the other end)")
    print(f"secret certificate: {secret}  (keep it here; mode 600)")
    return 0
