import io
import os
import struct
import sys
import zipfile
import zlib
from decimal import Decimal

import pytest
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from studio import media
from studio.gateways import catalog
from studio.gateways.request import ImageRequest, InputImage, validate
from studio.models import Image
from tests.view_helpers import image_bytes, make_job

ANYFAST = catalog.offer("anyfast", "wan2.7-image")
APIMART = catalog.offer("apimart", "wan2.7-image")


def check(data, name="photo.png", offer=APIMART):
    return media.check_file(data, name, offer)


@pytest.mark.parametrize(("fmt", "name"), [("PNG", "a.png"), ("JPEG", "a.jpg"), ("BMP", "a.bmp"),
                                           ("WEBP", "a.webp")])
def test_it_accepts_the_documented_formats(fmt, name):
    facts, errors, notes = check(image_bytes(300, 400, fmt), name)
    assert errors == [] and notes == []
    assert (facts.width, facts.height) == (300, 400)
    assert facts.mime == media.MIME_BY_FORMAT[fmt]


def test_it_refuses_other_formats():
    _, errors, _ = check(image_bytes(300, 300, "GIF"), "a.gif")
    assert any("GIF image; use JPEG, PNG, BMP or WEBP" in e for e in errors)


def test_it_refuses_files_that_are_not_images():
    facts, errors, _ = check(b"%PDF-1.4 not an image at all", "photo.png")
    assert facts is None
    assert "not an image" in errors[0]


def test_it_refuses_a_file_whose_name_lies():
    _, errors, _ = check(image_bytes(300, 300, "JPEG"), "photo.png")
    assert "ends in .png but it is really a JPEG image" in errors[0]


def test_it_refuses_empty_files():
    assert check(b"")[1] == ["The file is empty."]


@pytest.mark.parametrize("size,message", [((200, 300), "each side must be 240–8000 px"),
                                          ((240, 2000), "aspect ratio must be between 1:8 and 8:1")])
def test_it_checks_sides_and_aspect(size, message):
    _, errors, _ = check(image_bytes(*size))
    assert any(message in e for e in errors)


def test_it_refuses_files_over_20_mb_without_opening_them():
    _, errors, _ = check(b"\x89PNG" + b"0" * (20 * 1024 * 1024 + 1))
    assert errors == ["It is 20.0 MB; the limit is 20 MB."]


def test_it_refuses_decompression_bombs():
    # A small PNG whose header claims 20000 × 20000 pixels.
    image = PILImage.new("1", (20000, 20000))
    out = io.BytesIO()
    image.save(out, "PNG")
    assert len(out.getvalue()) < 1024 * 1024
    facts, errors, _ = check(out.getvalue())
    assert facts is None
    assert "far" in errors[0]


def test_transparency_is_a_warning_where_the_gateway_takes_none():
    data = image_bytes(300, 300, "PNG", colour=(0, 0, 0, 0), mode="RGBA")
    _, errors, notes = check(data, offer=ANYFAST)
    assert errors == []
    assert "transparent areas" in notes[0] and "AnyFast" in notes[0]
    assert check(data, offer=APIMART)[2] == []


def test_an_opaque_rgba_png_has_no_transparency():
    data = image_bytes(300, 300, "PNG", colour=(10, 10, 10, 255), mode="RGBA")
    facts, _, notes = check(data, offer=ANYFAST)
    assert not facts.has_alpha and notes == []


@pytest.mark.django_db
def test_store_and_recheck(owner):
    data = image_bytes(300, 300)
    facts, _, _ = check(data)
    upload = media.store(owner, data, "../../evil name.png", facts)
    assert upload.owner == owner
    assert upload.original_name == "evil name.png"
    assert "/" not in upload.file.name.rsplit("/", 1)[-1]
    assert upload.file.name.endswith("evilname.png")
    assert (upload.width, upload.height, upload.bytes, upload.mime) == (300, 300, len(data), "image/png")
    assert media.check_upload(upload, APIMART) == ([], [])


@pytest.mark.django_db
def test_copy_image_makes_an_upload_for_the_user(owner, teammate):
    image = make_job(owner, images=1).images.get()
    upload = media.copy_image(image, teammate)
    assert upload.owner == teammate
    assert upload.sha256 == image.sha256


def test_palette_from_an_image_adds_up_to_exactly_100():
    palette = media.palette_from(image_bytes(400, 400))
    assert 3 <= len(palette) <= 10
    assert sum(Decimal(entry["ratio"][:-1]) for entry in palette) == Decimal("100.00")
    assert all(entry["hex"].startswith("#") and len(entry["hex"]) == 7 for entry in palette)
    assert palette[0]["ratio"] == "25.00%"


def test_palette_of_a_flat_image_is_refused():
    with pytest.raises(ValueError, match="fewer than 3 distinct colours"):
        media.palette_from(image_bytes(300, 300, mode="L", colour=128))


@pytest.mark.parametrize("counts", [[1, 1, 1], [1000, 1, 1], [7, 3, 5, 11, 13], [1] * 10])
def test_percentages_sum_to_100_and_none_is_zero(counts):
    values = media.percentages(counts)
    assert sum(values) == Decimal("100.00")
    assert all(value >= Decimal("0.01") for value in values)


# --- inputs for the wire -------------------------------------------------------------------

FOXAPI = catalog.offer("foxapi", "wan2.7-image")


def test_prepare_input_leaves_url_only_gateways_alone():
    image = InputImage(data=image_bytes(300, 300), mime="image/png", width=300, height=300, url="https://x/1")
    assert media.prepare_input(image, FOXAPI) == image


def test_an_opaque_rgba_png_goes_to_anyfast_unchanged():
    # One idea of transparency: transparent pixels, not an alpha channel (as the upload check).
    data = image_bytes(300, 300, "PNG", colour=(10, 10, 10, 255), mode="RGBA")
    image = InputImage(data=data, mime="image/png", width=300, height=300)
    assert media.prepare_input(image, ANYFAST).data_uri == media.data_uri("image/png", data)


def test_an_input_that_cannot_be_converted_carries_its_problem():
    image = InputImage(data=b"not a png", mime="image/png", width=300, height=300)
    prepared = media.prepare_input(image, ANYFAST)
    assert prepared.data_uri is None
    assert prepared.problem == "An input image (image/png) could not be read to convert it."


def test_upload_and_validate_word_the_same_rule_each_their_way():
    _, errors, _ = check(image_bytes(200, 300))
    assert errors == ["It is 200×300 px; each side must be 240–8000 px."]
    request = ImageRequest("apimart", "wan2.7-image", "edit", prompt="Make it dusk")
    meta = {"width": 200, "height": 300, "mime": "image/png", "bytes": 1000}
    assert validate(request, [meta])["images"] == ["Image 1 is 200×300 px; each side must be 240–8000 px."]


@pytest.mark.django_db
def test_zip_stream_holds_every_original(owner):
    images = list(make_job(owner, images=2).images.order_by("index"))
    archive = zipfile.ZipFile(io.BytesIO(b"".join(media.zip_stream(images))))
    assert len(archive.namelist()) == 2
    with images[1].file.open("rb") as handle:
        assert archive.read(archive.namelist()[1]) == handle.read()


# --- results: proven whole, thumbnail now or later ------------------------------------------


def png_chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_with_bad_pixels():
    """A PNG whose every checksum is right but whose pixel data is not deflate data: only a
    decode can tell (a hostile gateway could send one)."""
    header = struct.pack(">IIBBBBB", 64, 48, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", b"not deflate " * 40)
            + png_chunk(b"IEND", b""))


def test_a_png_result_is_proven_whole_by_its_checksums_and_its_thumbnail_left_for_later():
    facts, thumbnail = media.read_result(image_bytes(640, 480), thumbnail_later=True)
    assert (facts.format, facts.width, facts.height, thumbnail) == ("PNG", 640, 480, None)
    facts, thumbnail = media.read_result(image_bytes(640, 480))
    assert PILImage.open(io.BytesIO(thumbnail)).format == "WEBP"


@pytest.mark.parametrize("damage", ["flipped", "cut"])
def test_a_damaged_png_result_is_refused_without_decoding_it(damage):
    data = bytearray(image_bytes(640, 480))
    if damage == "flipped":
        data[len(data) // 2] ^= 0x55  # inside the pixel data: its chunk's CRC no longer holds
    else:
        data = data[: len(data) * 2 // 3]
    with pytest.raises(media.NotAnImage):
        media.read_result(bytes(data), thumbnail_later=True)


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_a_result_without_checksums_is_decoded_at_once_and_gets_its_thumbnail(fmt):
    facts, thumbnail = media.read_result(image_bytes(640, 480, fmt=fmt), thumbnail_later=True)
    assert facts.format == fmt
    assert PILImage.open(io.BytesIO(thumbnail)).size == (512, 384)


@pytest.mark.django_db
def test_a_thumbnail_is_made_once_and_not_for_an_image_deleted_meanwhile(owner):
    job = make_job(owner, images=0, n=2)
    image = media.store_result(job, {"index": 0}, image_bytes(640, 480), thumbnail_later=True)
    assert not image.thumbnail and default_storage.exists(image.file.name)
    again = Image.objects.get(pk=image.pk)
    assert media.make_thumbnail(image)
    with default_storage.open(image.thumbnail.name) as handle:
        assert PILImage.open(handle).size == (512, 384)
    folder = os.path.dirname(image.thumbnail.name)
    before = default_storage.listdir(folder)[1]
    assert not media.make_thumbnail(again)  # made already: the second one's file is not kept
    assert default_storage.listdir(folder)[1] == before

    gone = media.store_result(job, {"index": 1}, image_bytes(640, 480), thumbnail_later=True)
    Image.objects.filter(pk=gone.pk).delete()
    assert not media.make_thumbnail(gone)
    assert default_storage.listdir(folder)[1] == before


@pytest.mark.django_db
def test_an_original_that_does_not_decode_keeps_no_thumbnail(owner):
    job = make_job(owner, images=0, n=1)
    image = media.store_result(job, {"index": 0}, png_with_bad_pixels(), thumbnail_later=True)
    assert image.width == 64 and not image.thumbnail
    assert not media.make_thumbnail(image)
    assert not Image.objects.get(pk=image.pk).thumbnail


@pytest.mark.django_db(transaction=True)
def test_the_thumbnail_thread_makes_them_at_the_lowest_cpu_priority(owner):
    job = make_job(owner, images=0, n=3)
    stored = [media.store_result(job, {"index": index}, image_bytes(640, 480), thumbnail_later=True)
              for index in range(3)]
    media.thumbnails_later([image.pk for image in stored])
    media.THUMBNAIL_QUEUE.join()
    assert all(image.thumbnail.name.endswith(".webp") for image in job.images.all())
    if sys.platform.startswith("linux"):
        assert os.getpriority(os.PRIO_PROCESS, media.thumbnail_thread.native_id) == 19
        assert os.getpriority(os.PRIO_PROCESS, 0) == 0  # the thread alone, not the process


@pytest.mark.django_db(transaction=True)
def test_a_thumbnail_gives_way_while_other_results_wait_for_their_download(owner, settings):
    import threading

    from django.db import connection

    from studio.models import Job

    waiting = make_job(owner, status=Job.DOWNLOADING, images=0)

    def downloaded():
        Job.objects.filter(pk=waiting.pk).update(status=Job.SUCCEEDED)
        connection.close()

    settings.STUDIO_THUMBNAIL_GIVE_WAY_SECONDS = 60
    threading.Timer(0.3, downloaded).start()
    media.give_way_to_downloads()
    assert Job.objects.get(pk=waiting.pk).status == Job.SUCCEEDED  # it returned once that was done

    # A download stuck for longer holds thumbnails up only so long.
    Job.objects.filter(pk=waiting.pk).update(status=Job.DOWNLOADING)
    settings.STUDIO_THUMBNAIL_GIVE_WAY_SECONDS = 0.3
    media.give_way_to_downloads()
    assert Job.objects.get(pk=waiting.pk).status == Job.DOWNLOADING
