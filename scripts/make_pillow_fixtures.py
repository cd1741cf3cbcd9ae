#!/usr/bin/env python3
"""Reference crops for tests/preprocess.rs, made by Pillow itself.

torchvision's evaluation transform on a PIL image, `Resize(256)` + `CenterCrop(224)`, is two
lines of PIL; they are written out here so that only Pillow is needed:

    Resize(256):      shorter side -> 256, longer side -> int(256 * long / short),
                      img.resize((w', h'), Image.BILINEAR)    (Pillow's antialiased resampler)
    CenterCrop(224):  left = int(round((w' - 224) / 2.0)), top likewise (round half to even)

Writes into tests/fixtures/:
  synth_*.png             synthetic RGB inputs (odd sizes, sharp edges, gradients, noise) that
                          isolate the resize from any JPEG decoder
  synth_*.pillow224.png   Pillow's 224x224 crop of each
  cat.pillow224.png,      Pillow's crop of ../shared/images/{cat,dog}.jpg (decoded by Pillow's
  dog.pillow224.png       libjpeg-turbo), when the shared data is there
  progressive.jpg         a small progressive JPEG for the cut-off-file tests
  README.md               how they were made, with the Pillow version

Usage: python3 scripts/make_pillow_fixtures.py   (pip install pillow numpy)
"""

import os
import sys

import numpy as np
import PIL
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures")
SHARED = os.environ.get("GOOGLENET_SHARED", os.path.join(ROOT, "..", "shared"))


def resize_center_crop(img, size=256, crop=224):
    """torchvision.transforms.Resize(size) + CenterCrop(crop) on a PIL image."""
    img = img.convert("RGB")
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    img = img.resize((new_w, new_h), Image.BILINEAR)
    left = int(round((new_w - crop) / 2.0))
    top = int(round((new_h - crop) / 2.0))
    return img.crop((left, top, left + crop, top + crop))


def synthetic(w, h, seed):
    """Gradients, a sinusoid, hard-edged blocks and a patch of noise: every resampling
    weight and rounding path gets exercised, and the PNG stays small."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 255.0 * x / max(w - 1, 1)
    g = 127.5 + 127.5 * np.sin(x / 7.3 + y / 11.1)
    b = np.where(((x // 9) + (y // 13)) % 2 == 0, 250.0, 5.0)
    img = np.stack([r, g, b], axis=-1)
    # A noisy band across the middle (where the centre crop looks).
    band = (y > h * 0.42) & (y < h * 0.52) & (x > w * 0.35) & (x < w * 0.6)
    img[band] = rng.integers(0, 256, size=(int(band.sum()), 3))
    # Pure black and white lines: clipping at 0 and 255.
    img[:, w // 2] = 0
    img[h // 2, :] = 255
    return Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), "RGB")


# (name, width, height): odd sizes downscaled, a tall one, an upscale, and the two cases
# where one pass is skipped (a side already 256).
SYNTH = [
    ("synth_517x301", 517, 301),
    ("synth_90x700", 90, 700),
    ("synth_100x60", 100, 60),
    ("synth_256x391", 256, 391),
    ("synth_403x256", 403, 256),
]


def main():
    os.makedirs(OUT, exist_ok=True)
    lines = []
    for seed, (name, w, h) in enumerate(SYNTH):
        src = synthetic(w, h, seed)
        src.save(os.path.join(OUT, name + ".png"), optimize=True)
        # Re-read the saved PNG, exactly what the Rust test reads.
        crop = resize_center_crop(Image.open(os.path.join(OUT, name + ".png")))
        crop.save(os.path.join(OUT, name + ".pillow224.png"), optimize=True)
        lines.append(f"- `{name}.png` ({w}×{h}) → `{name}.pillow224.png`")
    # A small progressive JPEG (several SOS segments) for the cut-off-file tests.
    synthetic(48, 32, 99).save(os.path.join(OUT, "progressive.jpg"), quality=90, progressive=True)
    lines.append("- `progressive.jpg`: a 48×32 progressive JPEG (for the truncation tests, no crop)")
    for stem in ("cat", "dog"):
        path = os.path.join(SHARED, "images", stem + ".jpg")
        if not os.path.isfile(path):
            print(f"skipping {stem}: {path} is missing", file=sys.stderr)
            continue
        crop = resize_center_crop(Image.open(path))
        crop.save(os.path.join(OUT, stem + ".pillow224.png"), optimize=True)
        lines.append(f"- `../shared/images/{stem}.jpg` → `{stem}.pillow224.png`")
    readme = f"""# Pillow reference crops

Made by `python3 scripts/make_pillow_fixtures.py` with Pillow {PIL.__version__} (numpy {np.__version__}):
torchvision's `Resize(256)` + `CenterCrop(224)` on a PIL image, i.e.
`img.convert('RGB').resize((w', h'), Image.BILINEAR)` with the shorter side 256 and the longer
`int(256 * long / short)`, then the crop at `int(round((w' - 224) / 2.0))`.
`tests/preprocess.rs` requires our crop to equal these exactly for the synthetic PNGs and within
one grey level for the JPEG photos (the JPEG decoders differ: zune-jpeg here, libjpeg-turbo in
Pillow).

{chr(10).join(lines)}
"""
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write(readme)
    print(f"Pillow {PIL.__version__}: wrote {len(lines)} fixtures to {OUT}")


if __name__ == "__main__":
    main()
