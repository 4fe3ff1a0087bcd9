#!/usr/bin/env python3
"""Decode the scanner-core QR corpus with peer decoders (zxing-cpp, zbar) for comparison.

Write the corpus first (PNGs + expected.json):

    cargo run --release -p scanner-core --bin bench -- --corpus-dir /tmp/qr-corpus

then, in a venv with bench/requirements.txt installed:

    python bench/peers.py /tmp/qr-corpus

Prints ONE JSON object: {"zxing-cpp": {...}, "zbar": {...}} with the same per-variant shape as the
"decode" section of the Rust bench ({frames, decoded, wrong, median_ms, p99_ms} per variant, "totals" over
the original degraded corpus, "extended_totals" over every frame holding a code). A decode only counts if
the text equals the expected text exactly; on a frame without a code ("has_code": false) only returning
nothing counts. Peers that cannot be loaded are reported as
{"skipped": "<reason>"} instead of failing the whole run.
"""

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

try:
    import numpy as np
    from PIL import Image
except ImportError as exc:  # pragma: no cover - depends on the environment
    sys.exit(f"peers.py needs numpy and Pillow (pip install -r bench/requirements.txt): {exc}")


# The original degraded corpus; "totals" covers these only, so it stays comparable run over run (the Rust
# bench does the same). "extended_totals" covers every frame that holds a code.
BASE_VARIANTS = {"clean", "blur", "noise", "rotation", "perspective", "small_modules", "low_contrast", "combined"}


def load_zxing():
    """Return a decode(luma ndarray) -> list[str] function for zxing-cpp, or a reason string."""
    try:
        import zxingcpp
    except ImportError as exc:
        return None, f"zxing-cpp not installed: {exc}"

    formats = zxingcpp.BarcodeFormat.QRCode

    def decode(luma):
        # zxing-cpp's defaults (try_rotate, try_downscale, binarizer LocalAverage) are what apps ship with.
        return [r.text for r in zxingcpp.read_barcodes(luma, formats=formats)]

    return decode, f"zxing-cpp {getattr(zxingcpp, '__version__', '?')}"


def load_zbar():
    """Return a decode(luma ndarray) -> list[str] function for zbar, or a reason string."""
    try:
        from pyzbar import pyzbar
    except (ImportError, OSError) as exc:
        # pyzbar raises ImportError when the libzbar0 shared library (apt) is missing.
        return None, f"zbar unavailable (pip pyzbar + apt libzbar0 needed): {exc}"

    symbols = [pyzbar.ZBarSymbol.QRCODE]

    def decode(luma):
        h, w = luma.shape
        results = pyzbar.decode((luma.tobytes(), w, h), symbols=symbols)
        return [r.data.decode("utf-8", errors="replace") for r in results]

    return decode, "zbar via pyzbar"


def percentiles(times):
    """Median and nearest-rank 99th percentile, matching the Rust bench."""
    if not times:
        return 0.0, 0.0
    ordered = sorted(times)
    rank = min(max(math.ceil(0.99 * len(ordered)), 1), len(ordered)) - 1
    return statistics.median(ordered), ordered[rank]


def run(decode, frames, corpus_dir, verbose, name):
    per_variant = {}
    groups = {}
    # Warm-up so library initialisation is not charged to the first frame.
    if frames:
        decode(frames[0][1])
    for entry, luma in frames:
        start = time.perf_counter()
        texts = decode(luma)
        ms = (time.perf_counter() - start) * 1000.0
        # Same rule as the Rust bench: the first result must be exactly the expected text; a frame without
        # a code ("has_code": false, expected text empty) is right only when nothing is returned.
        if entry.get("has_code", True):
            ok = bool(texts) and texts[0] == entry["expected"]
        else:
            ok = not texts
        wrong = not ok and bool(texts)
        if verbose and not ok:
            print(f"{name} FAIL {entry['file']} severity {entry['severity']:.2f}", file=sys.stderr)
        stats = per_variant.setdefault(entry["variant"], {"decoded": 0, "wrong": 0, "times": []})
        stats["decoded"] += int(ok)
        stats["wrong"] += int(wrong)
        stats["times"].append(ms)
        for group, member in (("totals", entry["variant"] in BASE_VARIANTS),
                              ("extended_totals", entry.get("has_code", True))):
            if member:
                totals = groups.setdefault(group, {"decoded": 0, "wrong": 0, "times": []})
                totals["decoded"] += int(ok)
                totals["wrong"] += int(wrong)
                totals["times"].append(ms)

    def summary(stats):
        median, p99 = percentiles(stats["times"])
        return {
            "frames": len(stats["times"]),
            "decoded": stats["decoded"],
            "wrong": stats["wrong"],
            "median_ms": round(median, 3),
            "p99_ms": round(p99, 3),
        }

    empty = {"decoded": 0, "wrong": 0, "times": []}
    return {
        "variants": {variant: summary(stats) for variant, stats in per_variant.items()},
        "totals": summary(groups.get("totals", empty)),
        "extended_totals": summary(groups.get("extended_totals", empty)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus_dir", type=Path, help="directory written by `bench --corpus-dir`")
    parser.add_argument("--verbose", action="store_true", help="list failing frames on stderr")
    args = parser.parse_args()

    manifest_path = args.corpus_dir / "expected.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        sys.exit(f"cannot read {manifest_path}: {exc}")

    # Load every frame up front so that file I/O and PNG decoding are not timed.
    frames = []
    for entry in manifest["frames"]:
        img = Image.open(args.corpus_dir / entry["file"]).convert("L")
        frames.append((entry, np.ascontiguousarray(np.asarray(img, dtype=np.uint8))))

    report = {}
    for name, loader in (("zxing-cpp", load_zxing), ("zbar", load_zbar)):
        decode, description = loader()
        if decode is None:
            report[name] = {"skipped": description}
            continue
        result = run(decode, frames, args.corpus_dir, args.verbose, name)
        report[name] = {"decoder": description, **result}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
