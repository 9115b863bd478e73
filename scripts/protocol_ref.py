#!/usr/bin/env python3
"""Reference transcription of the two published localisation protocols, for
test/eval-protocols.test.ts (docs/evaluation.md, "Protocols").

Our own re-statement of what the published evaluation code computes, step by
step, in the libraries that code uses (not a copy of it):

- ezvsl: EZ-VSL (github.com/stoneMo/EZ-VSL) test.py `validate` + utils.py
  `Evaluator.cal_CIOU / finalize_AP50 / finalize_cIoU / finalize_AUC`,
  `normalize_img`; datasets.py `bbox2gtmap`, `load_all_bboxes`.
  The map is upsampled with torch.nn.functional.interpolate(size=(224, 224),
  mode='bilinear', align_corners=True) in float32, min-max normalised,
  threshold = sorted map at int(224 * 224 * 0.5), mask = map >= threshold.
- lvs: LVS (github.com/hche11/Localizing-Visual-Sounds-the-Hard-Way) test.py
  `main` + utils.py `Evaluator.cal_CIOU`, `normalize_img`, `testset_gt`.
  cv2.resize(map, (224, 224), interpolation=cv2.INTER_LINEAR) in float32,
  pred = 1 - normalize_img(-map), threshold = sorted pred at int(224 * 224 / 2),
  pred[pred > threshold] = 1, pred[pred < 1] = 0, mask = pred >= 0.5.

Both: cIoU = sum(mask * gt) / (sum(gt) + sum(mask * (gt == 0))); cIoU@0.5 =
share of images with cIoU >= 0.5; AUC = sklearn.metrics.auc over
x = 0.05 i, i = 0..20, of share(cIoU >= x) (sklearn.metrics.auc is np.trapz
for increasing x; sklearn is not needed here).

Usage: protocol_ref.py CASES.json > RESULT.json
CASES.json: {"protocol": "ezvsl" | "lvs", "size": 224,
             "cases": [{"h": 7, "w": 7, "map": [...float32 values, row-major],
                        "boxes": [[xmin, ymin, xmax, ymax], ...] (grid pixels)
                          | "vggss": [[x0, y0, x1, y1], ...] (normalised)
                          | "flickr": [[xmin, ymin, xmax, ymax], ...] (256-pixel image),
                        "consensus": false}],
             "upsampled": [case indices whose upsampled float32 map to return]}
Result: {"ciou": [...], "ciou50": x, "auc": x, "meanCiou": x,
         "masks": [[flat indices of the mask], ...] (for "upsampled" cases),
         "upsampled": [[...float32 values], ...]}
Exit status 3 with a line on stderr when a module the protocol needs is missing.
"""
import json
import sys

try:
    import numpy as np
except ImportError as e:  # pragma: no cover
    sys.stderr.write(f'missing python module: numpy ({e})\n')
    sys.exit(3)


def gt_from_case(case, size, protocol):
    """The protocol's GT map (float64, size x size) from a case's boxes."""
    if 'vggss' in case:
        if protocol == 'ezvsl':
            # load_all_bboxes(format='vggss'): (clip(b, 0, 1) * 224).astype(int)
            boxes = [(np.clip(np.array(b, dtype=np.float64), 0, 1) * size).astype(int).tolist() for b in case['vggss']]
        else:
            # testset_gt('vggss'): int(224 * max(x, 0)) per coordinate
            boxes = [[int(size * max(x, 0)) for x in b] for b in case['vggss']]
    elif 'flickr' in case:
        # both: int(224 * int(text) / 256)
        boxes = [[int(size * int(v) / 256) for v in b] for b in case['flickr']]
    else:
        boxes = case['boxes']
    gt = np.zeros([size, size])
    for xmin, ymin, xmax, ymax in boxes:
        one = np.zeros([size, size])
        one[ymin:ymax, xmin:xmax] = 1
        gt += one
    if case.get('consensus'):
        gt = gt / 2
        gt[gt > 1] = 1
    else:
        gt[gt > 0] = 1
    return gt


def normalize(v):
    lo, hi = v.min(), v.max()
    if not (hi - lo) == 0:
        v = (v - lo) / (hi - lo)
    return v


def ezvsl_mask(m, size):
    import torch
    import torch.nn.functional as F
    t = torch.from_numpy(m).reshape(1, 1, *m.shape)
    up = F.interpolate(t, size=(size, size), mode='bilinear', align_corners=True).numpy()[0, 0]
    pred = normalize(up)
    thr = np.sort(pred.flatten())[int(pred.shape[0] * pred.shape[1] * 0.5)]
    mask = np.zeros((size, size))
    mask[pred >= thr] = 1
    return up, mask


def lvs_mask(m, size):
    import cv2
    up = cv2.resize(m, dsize=(size, size), interpolation=cv2.INTER_LINEAR)
    pred = 1 - normalize(-up)
    thr = np.sort(pred.flatten())[int(pred.shape[0] * pred.shape[1] / 2)]
    pred[pred > thr] = 1
    pred[pred < 1] = 0
    mask = np.zeros((size, size))
    mask[pred >= 0.5] = 1
    return up, mask


def main():
    spec = json.load(open(sys.argv[1]))
    protocol = spec['protocol']
    size = int(spec.get('size', 224))
    try:
        if protocol == 'ezvsl':
            import torch  # noqa: F401
        elif protocol == 'lvs':
            import cv2  # noqa: F401
        else:
            sys.stderr.write(f"unknown protocol '{protocol}'\n")
            sys.exit(2)
    except ImportError as e:
        sys.stderr.write(f'missing python module: {e.name} ({e})\n')
        sys.exit(3)
    want = set(spec.get('upsampled', []))
    cious, masks, ups = [], [], []
    for i, case in enumerate(spec['cases']):
        m = np.array(case['map'], dtype=np.float32).reshape(case['h'], case['w'])
        up, mask = (ezvsl_mask if protocol == 'ezvsl' else lvs_mask)(m, size)
        gt = gt_from_case(case, size, protocol)
        with np.errstate(invalid='ignore', divide='ignore'):
            c = np.sum(mask * gt) / (np.sum(gt) + np.sum(mask * (gt == 0)))
        cious.append(float(c))
        if i in want:
            masks.append(np.flatnonzero(mask.flatten()).tolist())
            ups.append([float(x) for x in up.flatten()])
    arr = np.array(cious)
    shares = [np.sum(arr >= 0.05 * i) / len(cious) for i in range(21)]
    x = np.array([0.05 * i for i in range(21)])
    auc = float(np.trapz(np.array(shares), x))  # sklearn.metrics.auc for increasing x
    mean = float(np.mean(arr))
    # JSON has no NaN (0 / 0: no GT and an empty mask): null
    out = {'ciou': [None if np.isnan(c) else c for c in cious], 'ciou50': float(np.mean(arr >= 0.5)), 'auc': auc, 'meanCiou': None if np.isnan(mean) else mean, 'masks': masks, 'upsampled': ups}
    json.dump(out, sys.stdout)


if __name__ == '__main__':
    main()
