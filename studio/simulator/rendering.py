"""Result images for the simulator: real PNGs at the asked size, pleasant enough for the demo
gallery, and deterministic (same prompt, seed, index and inputs → same bytes).

Cost is kept low for 4K (16.7 million pixels): the scene is drawn on a small canvas (at most
WORK_SIDE a side), blurred and lightly grained there, then scaled up once; only the crisp bits
(caption, index badge, watermark, region outlines) are drawn at full size, on small crops.
PNGs are written with compress_level 1.
"""

import colorsys
import hashlib
import io
import math
import random
from dataclasses import dataclass, field

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont, ImageOps

WORK_SIDE = 512
BOX_COLOR = (255, 0, 200)  # region outlines: a colour no scene uses, so tests can find it
CAPTION_WORDS = 9


@dataclass
class Spec:
    width: int
    height: int
    prompt: str = ""
    seed: int | None = None
    index: int = 0
    count: int = 1
    palette: list[tuple[str, float]] | None = None  # [("#C2D1E6", 23.51), …]
    base_image: bytes | None = None  # edit modes: the (last) input image
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)  # in output pixels
    watermark: bool = False


def render_png(spec):
    image = render(spec)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def render(spec):
    theme = rng_for(spec, "theme")  # shared by a batch: same colours and mood
    own = rng_for(spec, f"image-{spec.index}")  # this image's layout
    colours = palette_colours(spec.palette) if spec.palette else generated_colours(theme)
    colours = rotate(colours, spec.index)
    if spec.base_image:
        image = stylised_input(spec, colours, own)
    else:
        image = scene(spec.width, spec.height, colours, own, spec.index, flat=bool(spec.palette))
    for box in spec.boxes:
        region_edit(image, box, colours, own)
    caption(image, spec)
    if spec.watermark:
        watermark(image)
    return image


def rng_for(spec, purpose):
    key = f"{spec.prompt}\0{spec.seed}\0{purpose}".encode()
    return random.Random(hashlib.sha256(key).digest())


# --- colours --------------------------------------------------------------------------------


def hex_rgb(value):
    value = value.lstrip("#")
    return tuple(int(value[i : i + 2], 16) for i in (0, 2, 4))


def hsv(h, s, v):
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, max(0.0, min(1.0, s)), max(0.0, min(1.0, v)))
    return (round(r * 255), round(g * 255), round(b * 255))


def palette_colours(palette):
    # Largest share first: it becomes the background, so areas roughly follow the ratios.
    ordered = sorted(palette, key=lambda entry: -entry[1])
    return [hex_rgb(hex_) for hex_, _ in ordered]


def generated_colours(rng):
    hue = rng.random()
    spread = rng.choice((0.06, 0.09, 0.12))
    return [
        hsv(hue, 0.35, 0.95),  # light sky
        hsv(hue + spread, 0.55, 0.85),
        hsv(hue + 0.5, 0.65, 0.98),  # complementary accent (sun, orbs)
        hsv(hue - spread, 0.6, 0.55),
        hsv(hue - 2 * spread, 0.7, 0.3),  # deep foreground
    ]


def rotate(colours, index):
    # Each image of a batch starts its colour roles one place further: same set, new look.
    if len(colours) < 2:
        return colours
    shift = index % len(colours)
    return colours[shift:] + colours[:shift]


def mix(a, b, t):
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b, strict=True))


def shade(colour, factor):
    return tuple(max(0, min(255, round(c * factor))) for c in colour)


# --- text-to-image scenes -----------------------------------------------------------------


def work_size(width, height):
    scale = min(1.0, WORK_SIDE / max(width, height))
    return max(8, round(width * scale)), max(8, round(height * scale))


def scene(width, height, colours, rng, index, flat=False):
    sw, sh = work_size(width, height)
    small = Image.new("RGB", (sw, sh), colours[0])
    kind = ("landscape", "orbs", "waves", "bauhaus")[index % 4]
    if kind == "landscape":
        landscape(small, colours, rng, flat)
    elif kind == "orbs":
        orbs(small, colours, rng, flat)
    elif kind == "waves":
        waves(small, colours, rng, flat)
    else:
        bauhaus(small, colours, rng)
    small = small.filter(ImageFilter.GaussianBlur(radius=max(1.0, sw / 300)))
    small = grain(small, rng, 0.05 if flat else 0.08)
    return small.resize((width, height), Image.BICUBIC)


def vertical_gradient(size, top, bottom):
    strip = Image.linear_gradient("L").resize((1, 256))
    mask = strip.resize(size, Image.BILINEAR)
    return Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), mask)


def landscape(small, colours, rng, flat):
    sw, sh = small.size
    sky_bottom = shade(colours[0], 0.9) if flat else mix(colours[0], colours[2], 0.45)
    small.paste(vertical_gradient((sw, sh), colours[0], sky_bottom))
    draw = ImageDraw.Draw(small)
    sun_r = sh * rng.uniform(0.08, 0.14)
    sun_x, sun_y = sw * rng.uniform(0.2, 0.8), sh * rng.uniform(0.18, 0.38)
    draw.ellipse((sun_x - sun_r, sun_y - sun_r, sun_x + sun_r, sun_y + sun_r), fill=colours[2 % len(colours)])
    ridges = colours[1:] if len(colours) > 2 else colours
    for layer, colour in enumerate(ridges[:4]):
        base = sh * (0.45 + 0.13 * layer)
        amplitude = sh * rng.uniform(0.05, 0.12)
        phase, freq = rng.uniform(0, 6.3), rng.uniform(1.5, 3.5)
        points = [(0, sh)]
        for step in range(0, 65):
            x = sw * step / 64
            y = base - amplitude * (
                math.sin(phase + freq * step / 64 * 6.3) + 0.4 * math.sin(phase * 2 + step / 5)
            )
            points.append((x, y))
        points.append((sw, sh))
        draw.polygon(points, fill=colour if flat else shade(colour, 1.0 - 0.08 * layer))


def orbs(small, colours, rng, flat):
    sw, sh = small.size
    if not flat:
        small.paste(vertical_gradient((sw, sh), colours[0], mix(colours[0], colours[-1], 0.6)))
    layer = Image.new("RGB", (sw, sh), (0, 0, 0))
    mask = Image.new("L", (sw, sh), 0)
    draw_layer, draw_mask = ImageDraw.Draw(layer), ImageDraw.Draw(mask)
    for _ in range(rng.randint(7, 13)):
        r = min(sw, sh) * rng.uniform(0.06, 0.24)
        x, y = rng.uniform(0, sw), rng.uniform(0, sh)
        colour = colours[rng.randint(1, len(colours) - 1)]
        draw_layer.ellipse((x - r, y - r, x + r, y + r), fill=colour)
        draw_mask.ellipse((x - r, y - r, x + r, y + r), fill=255 if flat else rng.randint(150, 230))
    small.paste(Image.composite(layer, small, mask))


def waves(small, colours, rng, flat):
    sw, sh = small.size
    if not flat:
        small.paste(vertical_gradient((sw, sh), colours[0], mix(colours[0], colours[1], 0.5)))
    draw = ImageDraw.Draw(small)
    bands = colours[1:] + colours[1:2]
    for layer, colour in enumerate(bands[:5]):
        base = sh * (0.3 + 0.15 * layer)
        amplitude = sh * rng.uniform(0.03, 0.07)
        freq, phase = rng.uniform(1.0, 2.5), rng.uniform(0, 6.3)
        points = (
            [(0, sh)]
            + [(sw * s / 48, base + amplitude * math.sin(phase + freq * 6.3 * s / 48)) for s in range(49)]
            + [(sw, sh)]
        )
        draw.polygon(points, fill=colour)


def bauhaus(small, colours, rng):
    sw, sh = small.size
    draw = ImageDraw.Draw(small)
    cols, rows = rng.choice((2, 3)), rng.choice((2, 3))
    cw, ch = sw / cols, sh / rows
    for row in range(rows):
        for col in range(cols):
            x0, y0 = col * cw, row * ch
            box = (x0, y0, x0 + cw, y0 + ch)
            if rng.random() < 0.55:
                draw.rectangle(box, fill=rng.choice(colours))
            shape = rng.choice(("circle", "quarter", "half", "none"))
            colour = rng.choice(colours)
            if shape == "circle":
                inset = min(cw, ch) * 0.15
                draw.ellipse((x0 + inset, y0 + inset, x0 + cw - inset, y0 + ch - inset), fill=colour)
            elif shape == "quarter":
                draw.pieslice((x0 - cw, y0 - ch, x0 + cw, y0 + ch), 0, 90, fill=colour)
            elif shape == "half":
                draw.pieslice((x0, y0, x0 + cw, y0 + ch * 1.5), 180, 360, fill=colour)


def grain(small, rng, amount):
    noise = Image.frombytes("L", small.size, rng.randbytes(small.size[0] * small.size[1]))
    noise = noise.filter(ImageFilter.GaussianBlur(radius=0.6))
    return Image.blend(small, Image.merge("RGB", (noise, noise, noise)), amount)


# --- edits ------------------------------------------------------------------------------------


def stylised_input(spec, colours, rng):
    """The input image coming back changed: re-coloured in one of four styles (by index), with a
    soft tint of the accent colour washing in from one corner."""
    base = Image.open(io.BytesIO(spec.base_image)).convert("RGB")
    size = (spec.width, spec.height)
    base = ImageOps.fit(base, size, Image.BICUBIC) if base.size != size else base
    style = spec.index % 4
    dark, light = shade(colours[-1], 0.5), mix(colours[0], (255, 255, 255), 0.4)
    if style == 0:
        styled = Image.blend(base, ImageOps.colorize(ImageOps.grayscale(base), dark, light), 0.6)
    elif style == 1:
        styled = Image.blend(
            ImageOps.posterize(base, 3), Image.new("RGB", size, colours[2 % len(colours)]), 0.2
        )
    elif style == 2:
        edges = ImageOps.invert(ImageOps.grayscale(base).filter(ImageFilter.FIND_EDGES))
        styled = Image.blend(ImageOps.colorize(edges, dark, light), base, 0.35)
    else:
        r, g, b = base.split()
        styled = Image.merge("RGB", (b, r, g))  # hue rotation by swapping channels: clearly "restyled"
        styled = Image.blend(styled, base, 0.4)
    corner = rng.choice((0, 90, 180, 270))
    mask = Image.linear_gradient("L").rotate(corner).resize(size, Image.BILINEAR).point(lambda v: v * 0.35)
    return Image.composite(Image.new("RGB", size, colours[2 % len(colours)]), styled, mask)


def region_edit(image, box, colours, rng):
    """Fill a requested region with new 'generated' content and outline it, so the user sees
    where the edit went."""
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x1, y1 = max(0, x1), max(0, y1)
    x2, y2 = min(image.width, x2), min(image.height, y2)
    if x2 - x1 < 4 or y2 - y1 < 4:
        return
    patch = scene(x2 - x1, y2 - y1, colours[::-1], rng, rng.randint(0, 3))
    region = image.crop((x1, y1, x2, y2))
    image.paste(Image.blend(region, patch, 0.75), (x1, y1))
    line = max(3, min(image.size) // 200)
    draw = ImageDraw.Draw(image)
    draw.rectangle((x1, y1, x2 - 1, y2 - 1), outline=BOX_COLOR, width=line)
    if x2 - x1 > 4 * line and y2 - y1 > 4 * line:
        draw.rectangle((x1 + line, y1 + line, x2 - 1 - line, y2 - 1 - line), outline=(255, 255, 255), width=1)


# --- crisp overlays -----------------------------------------------------------------------


def font(size):
    return ImageFont.load_default(size=max(8, int(size)))


def printable(text):
    # The built-in font covers Latin; other scripts would come out as boxes.
    return "".join(ch if 32 <= ord(ch) < 0x250 else "·" for ch in text)


def caption_text(prompt, width, face):
    words = printable(prompt).split()[:CAPTION_WORDS]
    text = " ".join(words) + ("…" if len(printable(prompt).split()) > CAPTION_WORDS else "")
    while words and face.getlength(text) > width:
        words = words[:-1]
        text = " ".join(words) + "…"
    return text


def caption(image, spec):
    width, height = image.size
    band = max(22, int(min(width, height) * 0.07))
    strip = image.crop((0, height - band, width, height))
    image.paste(Image.blend(strip, Image.new("RGB", strip.size, (12, 12, 18)), 0.45), (0, height - band))
    draw = ImageDraw.Draw(image)
    face = font(band * 0.45)
    pad = band * 0.4
    text = caption_text(spec.prompt, width - 2 * pad - face.getlength("0000/00"), face)
    if text:
        draw.text((pad, height - band / 2), text, fill=(250, 250, 250), font=face, anchor="lm")
    badge = f"{spec.index + 1}/{spec.count}"
    badge_face = font(band * 0.5)
    bw = badge_face.getlength(badge) + band * 0.5
    x0, y0 = pad, pad
    draw.rounded_rectangle((x0, y0, x0 + bw, y0 + band * 0.8), radius=band * 0.2, fill=(250, 250, 250))
    draw.text((x0 + bw / 2, y0 + band * 0.4), badge, fill=(20, 20, 28), font=badge_face, anchor="mm")


def watermark(image):
    width, height = image.size
    face = font(max(10, min(width, height) * 0.028))
    band = max(22, int(min(width, height) * 0.07))
    x, y = width - band * 0.4, height - band - band * 0.3
    draw = ImageDraw.Draw(image)
    draw.text((x + 1, y + 1), "AI Generated", fill=(0, 0, 0), font=face, anchor="rb")
    draw.text((x, y), "AI Generated", fill=(255, 255, 255), font=face, anchor="rb")


def differs(a_png, b_png):
    """True when two PNGs differ in pixels (not just bytes); used by tests and the README demo."""
    a, b = Image.open(io.BytesIO(a_png)).convert("RGB"), Image.open(io.BytesIO(b_png)).convert("RGB")
    return a.size != b.size or ImageChops.difference(a, b).getbbox() is not None
