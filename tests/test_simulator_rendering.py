"""The simulator's result images: real PNGs, deterministic, and visibly shaped by the request."""

import io
import time

from PIL import Image, ImageChops, ImageStat

from studio.simulator.rendering import BOX_COLOR, Spec, differs, render_png


def pixels(png):
    return Image.open(io.BytesIO(png)).convert("RGB")


def png_of(image):
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_it_renders_a_png_at_the_asked_size():
    image = Image.open(io.BytesIO(render_png(Spec(1280, 720, prompt="A wide dune"))))
    assert image.format == "PNG"
    assert image.size == (1280, 720)


def test_the_same_request_gives_the_same_bytes():
    spec = dict(width=800, height=600, prompt="A lighthouse", seed=42, index=1, count=3)
    assert render_png(Spec(**spec)) == render_png(Spec(**spec))


def test_each_image_of_a_batch_differs():
    batch = [render_png(Spec(768, 768, prompt="A lighthouse", seed=42, index=i, count=4)) for i in range(4)]
    for i in range(4):
        for j in range(i + 1, 4):
            assert differs(batch[i], batch[j])


def test_another_seed_or_prompt_gives_another_image():
    base = render_png(Spec(768, 768, prompt="A lighthouse", seed=1))
    assert differs(base, render_png(Spec(768, 768, prompt="A lighthouse", seed=2)))
    assert differs(base, render_png(Spec(768, 768, prompt="A windmill", seed=1)))


def test_the_palette_is_used():
    palette = [("#E63946", 50.0), ("#F1FAEE", 30.0), ("#1D3557", 20.0)]
    wanted = [(0xE6, 0x39, 0x46), (0xF1, 0xFA, 0xEE), (0x1D, 0x35, 0x57)]
    for index in range(4):
        image = pixels(render_png(Spec(600, 600, prompt="Room", palette=palette, index=index, count=4)))
        raw = image.resize((60, 60), Image.NEAREST).tobytes()
        sample = [tuple(raw[i : i + 3]) for i in range(0, len(raw), 3)]
        near = [
            min(sum((a - b) ** 2 for a, b in zip(p, w, strict=True)) for w in wanted) < 60**2 for p in sample
        ]
        assert sum(near) / len(sample) > 0.75, index


def test_an_edit_is_derived_from_the_input():
    # Left half black, right half white: the result must keep that structure, changed.
    source = Image.new("RGB", (600, 400), (0, 0, 0))
    source.paste((255, 255, 255), (300, 0, 600, 400))
    for index in range(4):
        result = pixels(render_png(Spec(600, 400, prompt="Restyle", base_image=png_of(source), index=index)))
        left = ImageStat.Stat(result.crop((40, 80, 260, 320)).convert("L")).mean[0]
        right = ImageStat.Stat(result.crop((340, 80, 560, 320)).convert("L")).mean[0]
        assert right - left > 40, index
        assert ImageChops.difference(result, source).getbbox() is not None


def test_requested_regions_are_outlined():
    source = Image.new("RGB", (1000, 1000), (120, 130, 140))
    image = pixels(
        render_png(
            Spec(1000, 1000, prompt="Add a clock", base_image=png_of(source), boxes=[(200, 300, 500, 700)])
        )
    )
    for point in ((200, 500), (499, 500), (350, 300), (350, 699)):
        assert image.getpixel(point) == BOX_COLOR, point
    assert image.getpixel((100, 500)) != BOX_COLOR
    # The region itself has new content, unlike the flat grey around it.
    inside = ImageStat.Stat(image.crop((220, 320, 480, 680))).stddev
    assert max(inside) > 5


def test_the_watermark_marks_the_bottom_right():
    plain = pixels(render_png(Spec(1024, 1024, prompt="Beach", seed=3)))
    marked = pixels(render_png(Spec(1024, 1024, prompt="Beach", seed=3, watermark=True)))
    changed = ImageChops.difference(plain, marked).getbbox()
    assert changed is not None and changed[0] > 512 and changed[1] > 512


def test_4k_renders_in_a_few_seconds():
    started = time.monotonic()
    image = Image.open(io.BytesIO(render_png(Spec(4096, 4096, prompt="Summer beach", seed=1))))
    assert image.size == (4096, 4096)
    assert time.monotonic() - started < 8
