"""Load checkpoints of every layout users bring, and save our own.

Our format is safetensors with string metadata `{"format": "tps-parser/1", "arch": <registry name>,
"classes": <JSON list, or JSON {head: list} for multi-head models>, ...}`. Foreign checkpoints
(`.pth`/`.pt`) are read with `torch.load(weights_only=True)`, so nothing in a file can run code;
`state_dict` / `model` wrappers and a DataParallel `module.` prefix are removed.

Layouts, each one key migration in `MIGRATIONS` (auto-detected from metadata and key names):
- `tps`: ours; identity.
- `mmaction2`: `ResNet3dCSN` + `I3DHead` keys; identity (our CSN uses the same names).
- `vmz`: facebookresearch/VMZ PyTorch CSN (torchvision `VideoResNet` naming: `stem.0`, `stem.1`,
  `layerS.B.conv1.0`, `conv2.0[.0/.1/.2]`, `downsample.0/1`, `fc`) -> mmaction2 names.
- `mmpose`: mmpose 1.x (`backbone.*`, `head.*`); identity.
- `mmpose0`: mmpose 0.x (`keypoint_head.*` -> `head.*`).
- `mmdet`: mmdet YOLOF (`backbone.*`, `neck.*`, `bbox_head.*`); identity.

Loading is strict: missing keys, unexpected keys and shape mismatches are all reported in one
`ModelError`. The one tolerated gap is a missing BatchNorm `num_batches_tracked` counter (older and
converted checkpoints lack it; it does not affect the forward pass).
"""

from __future__ import annotations

import json
import logging
import pickle
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from models.registry import ModelError, build

log = logging.getLogger(__name__)

FORMAT = "tps-parser/1"
RESERVED_METADATA = ("format", "arch", "classes")
SAFETENSORS_SUFFIX = ".safetensors"
PICKLE_SUFFIXES = (".pth", ".pt")
WRAPPER_KEYS = ("state_dict", "model")
DATA_PARALLEL_PREFIX = "module."
TOLERATED_MISSING_SUFFIX = ".num_batches_tracked"
NAMES_SHOWN = 5
UNSAFE_GLOBAL = re.compile(r"unsupported global", re.IGNORECASE)
"""torch's words for a pickled global outside its allow-list ("Unsupported global: ...", or
"Trying to load unsupported GLOBAL posix.system whose module posix is blocked")."""
_WEIGHTS_ONLY_REASON = re.compile(r"WeightsUnpickler error:\s*(\S.*)")

StateDict = dict[str, torch.Tensor]
Classes = Sequence[str] | Mapping[str, Sequence[str]]
Rules = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class LoadReport:
    """What `load_checkpoint` did.

    Attributes:
        path: the checkpoint file.
        layout: the layout it was read as.
        loaded: number of tensors copied into the model.
        reinitialised: model keys left as freshly initialised (the head, with `reinit_head`).
        metadata: the file's metadata (our format) or {}.
    """

    path: Path
    layout: str
    loaded: int
    reinitialised: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def arch(self) -> str | None:
        """The registry name stored in our format, else None."""
        return self.metadata.get("arch")

    @property
    def classes(self) -> list[str] | dict[str, list[str]] | None:
        """Class names stored in our format (a list, or `{head: list}`), else None."""
        raw = self.metadata.get("classes")
        return json.loads(raw) if raw is not None else None


# ---------------------------------------------------------------- key migrations, one per layout


def _rename(state: StateDict, rules: Rules) -> StateDict:
    """Apply the first matching (regex, replacement) rule to each key; unmatched keys stay."""
    compiled = [(re.compile(pattern), replacement) for pattern, replacement in rules]
    renamed: StateDict = {}
    for key, tensor in state.items():
        for pattern, replacement in compiled:
            new_key, count = pattern.subn(replacement, key)
            if count:
                key = new_key
                break
        renamed[key] = tensor
    return renamed


_BLOCK = r"^(layer\d+\.\d+)\."
_VMZ_COMMON: Rules = (
    (r"^stem\.0\.weight$", "backbone.conv1.conv.weight"),
    (r"^stem\.1\.(\w+)$", r"backbone.conv1.bn.\1"),
    (_BLOCK + r"(conv1|conv3|downsample)\.0\.weight$", r"backbone.\1.\2.conv.weight"),
    (_BLOCK + r"(conv1|conv3|downsample)\.1\.(\w+)$", r"backbone.\1.\2.bn.\3"),
    (r"^fc\.(weight|bias)$", r"cls_head.fc_cls.\1"),
)
# ir: conv2 = Sequential(depthwise conv, BN, ReLU)
_VMZ_IR: Rules = (
    (_BLOCK + r"conv2\.0\.weight$", r"backbone.\1.conv2.0.conv.weight"),
    (_BLOCK + r"conv2\.1\.(\w+)$", r"backbone.\1.conv2.0.bn.\2"),
)
# ip: conv2 = Sequential(Sequential(1x1x1 conv, BN, depthwise conv), BN, ReLU)
_VMZ_IP: Rules = (
    (_BLOCK + r"conv2\.0\.0\.weight$", r"backbone.\1.conv2.0.conv.weight"),
    (_BLOCK + r"conv2\.0\.1\.(\w+)$", r"backbone.\1.conv2.0.bn.\2"),
    (_BLOCK + r"conv2\.0\.2\.weight$", r"backbone.\1.conv2.1.conv.weight"),
    (_BLOCK + r"conv2\.1\.(\w+)$", r"backbone.\1.conv2.1.bn.\2"),
)
_VMZ_IP_MARK = re.compile(_BLOCK + r"conv2\.0\.0\.weight$")


def _from_vmz(state: StateDict) -> StateDict:
    is_ip = any(_VMZ_IP_MARK.match(key) for key in state)
    return _rename(state, (*_VMZ_COMMON, *(_VMZ_IP if is_ip else _VMZ_IR)))


def _from_mmpose0(state: StateDict) -> StateDict:
    return _rename(state, ((r"^keypoint_head\.", "head."),))


def _identity(state: StateDict) -> StateDict:
    return dict(state)


MIGRATIONS: dict[str, Callable[[StateDict], StateDict]] = {
    "tps": _identity,
    "mmaction2": _identity,
    "vmz": _from_vmz,
    "mmpose": _identity,
    "mmpose0": _from_mmpose0,
    "mmdet": _identity,
}
"""Layout name -> function mapping that layout's keys to ours."""

# Detection: the first layout whose key prefix appears in the checkpoint.
_SIGNATURES: tuple[tuple[str, str], ...] = (
    ("keypoint_head.", "mmpose0"),
    ("stem.0.", "vmz"),
    ("cls_head.", "mmaction2"),
    ("bbox_head.", "mmdet"),
    ("neck.", "mmdet"),
    ("head.", "mmpose"),
)


def detect_layout(state: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> str:
    """Name the layout of a checkpoint from its metadata and key names."""
    if metadata.get("format") == FORMAT:
        return "tps"
    for prefix, layout in _SIGNATURES:
        if any(key.startswith(prefix) for key in state):
            return layout
    raise ModelError(
        f"cannot tell the checkpoint layout from its keys (first: {_first(state)}); "
        f"name one of {', '.join(MIGRATIONS)}"
    )


# ---------------------------------------------------------------- reading and writing files


def _first(names: Iterable[str]) -> str:
    """The first few names, comma separated, with an ellipsis when there are more."""
    names = list(names)
    shown = ", ".join(names[:NAMES_SHOWN])
    return shown + (", ..." if len(names) > NAMES_SHOWN else "")


def _unwrap(content: Any, path: Path) -> StateDict:
    """The state dict inside a loaded `.pth`: drop wrappers and a `module.` prefix."""
    while isinstance(content, Mapping):
        wrapper = next((k for k in WRAPPER_KEYS if isinstance(content.get(k), Mapping)), None)
        if wrapper is None:
            break
        content = content[wrapper]
    if not isinstance(content, Mapping):
        raise ModelError(f"checkpoint {path} holds a {type(content).__name__}, not a state dict")
    not_tensors = [k for k, v in content.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise ModelError(
            f"checkpoint {path}: expected a state dict of tensors, but {len(not_tensors)} "
            f"entries are not tensors ({_first(map(str, not_tensors))})"
        )
    state: StateDict = dict(content)
    if state and all(key.startswith(DATA_PARALLEL_PREFIX) for key in state):
        state = {key[len(DATA_PARALLEL_PREFIX) :]: value for key, value in state.items()}
    return state


def _unpickling_reason(error: pickle.UnpicklingError) -> str:
    """The specific cause inside torch's long weights-only error text (its first sentence)."""
    text = str(error)
    found = _WEIGHTS_ONLY_REASON.search(text)
    reason = found.group(1) if found else text.strip().split("\n", 1)[0]
    return reason.split(". ", 1)[0].strip().rstrip(".")


def read_checkpoint(path: str | Path) -> tuple[StateDict, dict[str, str]]:
    """Tensors and metadata of a checkpoint file, without touching any model.

    `.safetensors` files give their metadata; `.pth`/`.pt` files give {}. Pickled files are read
    with `weights_only=True`: one that holds anything but tensors and plain containers (a pickle
    that would run code) is refused with a ModelError.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == SAFETENSORS_SUFFIX:
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = dict(handle.metadata() or {})
                state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        except (SafetensorError, OSError) as error:
            raise ModelError(f"cannot read safetensors checkpoint {path}: {error}") from error
        return state, metadata
    if suffix in PICKLE_SUFFIXES:
        try:
            content = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            reason = _unpickling_reason(error)
            if UNSAFE_GLOBAL.search(str(error)):
                raise ModelError(
                    f"refusing to load checkpoint {path}: it holds objects other than tensors "
                    f"and plain containers, which could run code when unpickled ({reason})"
                ) from error
            raise ModelError(
                f"cannot read checkpoint {path}: not a torch file ({reason})"
            ) from error
        except (RuntimeError, OSError, EOFError, ValueError) as error:
            raise ModelError(f"cannot read checkpoint {path}: {error}") from error
        return _unwrap(content, path), {}
    raise ModelError(
        f"checkpoint {path}: expected a {SAFETENSORS_SUFFIX} or {'/'.join(PICKLE_SUFFIXES)} "
        f"file, got suffix {suffix or '(none)'!r}"
    )


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a checkpoint without reading its tensors; {} for pickled files."""
    path = Path(path)
    if path.suffix.lower() != SAFETENSORS_SUFFIX:
        return {}
    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except (SafetensorError, OSError) as error:
        raise ModelError(f"cannot read safetensors checkpoint {path}: {error}") from error


def _class_counts(classes: Classes) -> int | dict[str, int]:
    if isinstance(classes, Mapping):
        return {head: len(names) for head, names in classes.items()}
    return len(classes)


def save_checkpoint(
    model: nn.Module,
    path: str | Path,
    arch: str,
    classes: Classes,
    extra: Mapping[str, object] | None = None,
) -> Path:
    """Write `model`'s weights in our format (safetensors + metadata).

    Args:
        model: the network; its `state_dict()` is saved (moved to CPU).
        path: the file to write (conventionally `.safetensors`); parent folders are created.
        arch: the registry name that rebuilds this model.
        classes: class names, or `{head: names}` for a multi-head model; must match the model's
            `num_classes` when it has one.
        extra: more metadata; strings are stored as they are, other values as JSON.

    Returns:
        `path` as a Path.
    """
    counts = _class_counts(classes)
    model_counts = getattr(model, "num_classes", None)
    if model_counts is not None and model_counts != counts:
        raise ModelError(
            f"classes for {arch} do not fit the model: {counts} given, model has {model_counts}"
        )
    metadata = {"format": FORMAT, "arch": arch, "classes": json.dumps(classes)}
    for key, value in (extra or {}).items():
        if key in RESERVED_METADATA:
            raise ModelError(f"extra metadata key {key!r} is reserved ({RESERVED_METADATA})")
        metadata[key] = value if isinstance(value, str) else json.dumps(value)
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial_path = path.with_name(path.name + ".partial")
    save_file(state, str(partial_path), metadata=metadata)
    partial_path.replace(path)
    log.info("saved %s (%d tensors) to %s", arch, len(state), path)
    return path


# ---------------------------------------------------------------- loading into a model


def _dims(tensor: torch.Tensor) -> str:
    """A shape as `24x512` (`scalar` for 0-d)."""
    return "x".join(map(str, tensor.shape)) or "scalar"


def _mismatch_report(expected: Mapping[str, torch.Tensor], state: StateDict) -> list[str]:
    """One phrase per kind of disagreement between a model's and a checkpoint's state dicts."""
    missing = [
        key for key in expected if key not in state and not key.endswith(TOLERATED_MISSING_SUFFIX)
    ]
    unexpected = [key for key in state if key not in expected]
    shapes = [
        f"{key}: checkpoint {_dims(state[key])} vs model {_dims(expected[key])}"
        for key in expected
        if key in state and state[key].shape != expected[key].shape
    ]
    phrases = []
    if missing:
        phrases.append(f"{len(missing)} missing keys ({_first(missing)})")
    if unexpected:
        phrases.append(f"{len(unexpected)} unexpected keys ({_first(unexpected)})")
    if shapes:
        phrases.append(f"{len(shapes)} shape mismatches ({_first(shapes)})")
    return phrases


def _head_phrase(
    expected: Mapping[str, torch.Tensor], state: StateDict, head_prefixes: tuple[str, ...]
) -> str | None:
    """'checkpoint head has A classes, model has B' when a head weight differs in dim 0 only."""
    for key, tensor in expected.items():
        theirs = state.get(key)
        if (
            key.startswith(head_prefixes)
            and theirs is not None
            and theirs.ndim == tensor.ndim
            and theirs.shape[1:] == tensor.shape[1:]
            and theirs.shape[0] != tensor.shape[0]
        ):
            return f"checkpoint head has {theirs.shape[0]} classes, model has {tensor.shape[0]}"
    return None


def load_checkpoint(
    model: nn.Module,
    path: str | Path,
    layout: str = "auto",
    *,
    reinit_head: bool = False,
) -> LoadReport:
    """Load a checkpoint of any supported layout into `model`, strictly.

    Args:
        model: the network. Its optional `head_prefixes` attribute names the classifier's keys.
        path: `.safetensors` (ours) or `.pth`/`.pt` (OpenMMLab, VMZ, plain state dicts).
        layout: one of `MIGRATIONS`, or "auto" to detect it.
        reinit_head: leave the classifier (keys under `model.head_prefixes`) as freshly
            initialised and load everything else, e.g. a 400-class Kinetics checkpoint into a
            24-class model.

    Returns:
        a LoadReport.

    Raises:
        ModelError: the file cannot be read safely, the layout is unknown, or keys or shapes
            disagree (all disagreements listed in one message).
    """
    path = Path(path)
    state, metadata = read_checkpoint(path)
    if layout == "auto":
        layout = detect_layout(state, metadata)
    try:
        migrate = MIGRATIONS[layout]
    except KeyError:
        raise ModelError(
            f"unknown checkpoint layout {layout!r}; known: auto, {', '.join(MIGRATIONS)}"
        ) from None
    state = migrate(state)
    expected = model.state_dict()
    head_prefixes = tuple(getattr(model, "head_prefixes", ()))
    reinitialised: tuple[str, ...] = ()
    if reinit_head:
        if not head_prefixes:
            raise ModelError(
                f"{type(model).__name__} declares no head_prefixes, so reinit_head cannot "
                "tell its head apart"
            )
        reinitialised = tuple(key for key in expected if key.startswith(head_prefixes))
        state = {key: value for key, value in state.items() if not key.startswith(head_prefixes)}
        expected = {key: value for key, value in expected.items() if key not in reinitialised}
    phrases = _mismatch_report(expected, state)
    if phrases:
        head = None if reinit_head else _head_phrase(expected, state, head_prefixes)
        hint = f"; {head} (reinit_head / --reinit-head keeps a fresh head)" if head else ""
        raise ModelError(
            f"checkpoint {path} (layout {layout}) does not fit {type(model).__name__}: "
            f"{'; '.join(phrases)}{hint}"
        )
    model.load_state_dict(state, strict=False)
    log.info(
        "loaded %d tensors from %s (layout %s, %d head keys reinitialised)",
        len(state),
        path,
        layout,
        len(reinitialised),
    )
    return LoadReport(path, layout, len(state), reinitialised, metadata)


def build_from_checkpoint(path: str | Path, **overrides: object) -> tuple[nn.Module, LoadReport]:
    """Rebuild the model a checkpoint in our format describes and load it.

    The architecture and class count come from the file's metadata; `overrides` go to the
    builder (e.g. `frozen_bn=True`).
    """
    metadata = read_metadata(path)
    if metadata.get("format") != FORMAT:
        raise ModelError(
            f"checkpoint {path}: expected our format {FORMAT!r} (with arch and classes), "
            f"got format {metadata.get('format')!r}; convert it with `run.py models convert`"
        )
    classes = json.loads(metadata["classes"])
    model = build(metadata["arch"], num_classes=_class_counts(classes), **overrides)
    return model, load_checkpoint(model, path, "tps")
