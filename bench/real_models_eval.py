"""Quick accuracy/speed check of the real MoveNet ONNX models on the photos in shared/real.

Person recall at IoU 0.5 (MultiPose boxes vs annotated boxes, greedy one-to-one matching) and
PCK@0.2 of the annotated box diagonal over annotated keypoints (v > 0) that have a COCO-17
counterpart (all 17 for OCHuman; the 12 limb joints for CrowdPose and AI Challenger; their
head/neck points have none). MultiPose PCK counts an unmatched person's joints as misses;
single-pose PCK is top-down on the annotated boxes. ms: median of onnxruntime ``run`` alone.

    .venv/bin/python -m bench.real_models_eval [--real ../shared/real] [--weights weights]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from parsing import real_models as rm

SETS = {
    "ochuman": "test_ochuman.json",
    "crowdpose": "test_crowdpose.json",
    "aic": "test_aic.json",
}


def load_set(root: Path, name: str):
    data = json.loads((root / name / SETS[name]).read_text())
    names = [n.lower().replace(" ", "_") for n in data["categories"][0]["keypoints"]]
    to_coco = [rm.COCO17.index(n) if n in rm.COCO17 else -1 for n in names]
    images = []
    for img in data["images"]:
        people = []
        for ann in data["annotations"]:
            if ann["image_id"] != img["id"] or not ann.get("num_keypoints"):
                continue
            x, y, w, h = ann["bbox"]
            kp = np.asarray(ann["keypoints"], np.float32).reshape(-1, 3)
            people.append((np.array([x, y, x + w, y + h], np.float32), kp, to_coco))
        frame = np.asarray(Image.open(root / name / img["file_name"]).convert("RGB"))
        images.append((frame, people))
    return images


def iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def pck_counts(pred_xy: np.ndarray | None, box, kp, to_coco) -> tuple[int, int]:
    diag = float(np.hypot(box[2] - box[0], box[3] - box[1]))
    hit = total = 0
    for j, c in enumerate(to_coco):
        if c < 0 or kp[j, 2] <= 0:
            continue
        total += 1
        if pred_xy is not None and np.hypot(*(pred_xy[c] - kp[j, :2])) <= 0.2 * diag:
            hit += 1
    return hit, total


def timed(run, x, repeats: int = 20) -> float:
    run(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def eval_multipose(model: rm.MultiPose, sets, threshold: float) -> dict:
    out = {}
    for name, images in sets.items():
        found = gt = hit = total = 0
        for frame, people in images:
            (poses,) = model([frame], threshold)
            used: set[int] = set()
            for box, kp, to_coco in people:
                gt += 1
                best, best_iou = -1, 0.5
                for k, pbox in enumerate(poses.boxes):
                    v = iou(box, pbox)
                    if k not in used and v >= best_iou:
                        best, best_iou = k, v
                pred = None
                if best >= 0:
                    used.add(best)
                    found += 1
                    pred = poses.keypoints[best, :, :2]
                h, t = pck_counts(pred, box, kp, to_coco)
                hit, total = hit + h, total + t
        out[name] = {"recall@0.5": f"{found}/{gt}", "pck@0.2": round(hit / max(total, 1), 3)}
    return out


def eval_single(model: rm.SinglePose, sets) -> dict:
    out = {}
    for name, images in sets.items():
        hit = total = 0
        for frame, people in images:
            if not people:
                continue
            preds = model(frame, np.stack([p[0] for p in people]))
            for (box, kp, to_coco), pred in zip(people, preds, strict=True):
                h, t = pck_counts(pred[:, :2], box, kp, to_coco)
                hit, total = hit + h, total + t
        out[name] = {"pck@0.2 (gt boxes)": round(hit / max(total, 1), 3)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", type=Path, default=Path("../shared/real"))
    ap.add_argument("--weights", type=Path, default=Path("weights"))
    ap.add_argument("--threshold", type=float, default=0.25)
    args = ap.parse_args()
    sets = {name: load_set(args.real, name) for name in SETS}
    report = {}
    for long_side in (256, 384):
        model = rm.open_real(rm.MULTIPOSE, args.weights, long_side=long_side)
        res = eval_multipose(model, sets, args.threshold)
        frame = sets["ochuman"][0][0]
        hw = rm.multipose_input_hw(frame.shape[:2], long_side)
        x = rm.to_input(rm.sample_box(frame, rm.letterbox_box(frame.shape[:2], hw), hw))
        res["ms"] = round(timed(model.run, x), 1)
        res["input"] = list(hw)
        report[f"{rm.MULTIPOSE}@{long_side}"] = res
    for name in (rm.LIGHTNING, rm.THUNDER):
        model = rm.open_real(name, args.weights)
        res = eval_single(model, sets)
        x = np.zeros((1, *model.input_hw, 3), np.int32)
        res["ms"] = round(timed(model.run, x), 1)
        report[name] = res
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
