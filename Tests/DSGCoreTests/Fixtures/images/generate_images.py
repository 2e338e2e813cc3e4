"""Writes the small PNG and JPEG files of Tests/DSGCoreTests/ImageTests.swift and what PIL makes of them
(images.json): each file's decoded pixels, and the crop, resize and grey conversion a PIL/torchvision pipeline
applies, to compare DecodedImage and ImagePreprocessing against byte for byte.

Run from this folder with Debian's python3-pil: /usr/bin/python3 generate_images.py
"""
import json
import random

from PIL import Image


def pattern(width, height, channels, seed):
    """Smooth gradients plus noise, so resampling has both edges and flat parts to get right."""
    rng = random.Random(seed)
    values = []
    for y in range(height):
        for x in range(width):
            for c in range(channels):
                base = (x * 255 // max(width - 1, 1) + y * 97 // max(height - 1, 1) + c * 80) % 256
                values.append(max(0, min(255, base + rng.randint(-40, 40))))
    return bytes(values)


def save(name, image, **options):
    image.save(name, **options)
    return name


files = {}
rgb = Image.frombytes("RGB", (37, 23), pattern(37, 23, 3, 1))
files["rgb.png"] = save("rgb.png", rgb)
files["grey.png"] = save("grey.png", Image.frombytes("L", (20, 30), pattern(20, 30, 1, 2)))
files["palette.png"] = save("palette.png", rgb.quantize(colors=16))
files["rgb.jpg"] = save("rgb.jpg", Image.frombytes("RGB", (40, 30), pattern(40, 30, 3, 4)), quality=90)
files["progressive.jpg"] = save(
    "progressive.jpg", Image.frombytes("RGB", (33, 41), pattern(33, 41, 3, 5)), quality=75, progressive=True)
files["grey.jpg"] = save("grey.jpg", Image.frombytes("L", (25, 19), pattern(25, 19, 1, 6)), quality=85)

golden = {"pil": Image.__version__, "files": {}}
for name in files:
    image = Image.open(name)
    mode = "L" if image.mode == "L" else "RGB"
    decoded = image.convert(mode)
    entry = {"width": decoded.width, "height": decoded.height, "channels": len(mode),
             "pixels": list(decoded.tobytes())}
    # The preprocessing of ImagePreprocessing: the centred box of the target's aspect, crop fraction 0.875
    # (int() of it, offset (size - crop + 1) // 2), then PIL's antialiased bicubic resize, then grey.
    for target_width, target_height in [(16, 16), (12, 10)]:
        wider = decoded.width * target_height > decoded.height * target_width
        if wider:
            crop_h = int(0.875 * decoded.height)
            crop_w = crop_h * target_width // target_height
        else:
            crop_h = int(0.875 * (decoded.width * target_height // target_width))
            crop_w = int(0.875 * decoded.width)
        left, top = (decoded.width - crop_w + 1) // 2, (decoded.height - crop_h + 1) // 2
        resized = decoded.crop((left, top, left + crop_w, top + crop_h)).resize(
            (target_width, target_height), Image.BICUBIC)
        entry[f"resized_{target_width}x{target_height}"] = list(resized.tobytes())
        entry[f"grey_{target_width}x{target_height}"] = list(resized.convert("L").tobytes())
    golden["files"][name] = entry

with open("images.json", "w") as f:
    json.dump(golden, f, separators=(",", ":"))
    f.write("\n")
