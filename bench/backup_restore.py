"""A backup and a restore, tried: the SQLite database and the media are dumped, lost, restored,
and the gallery is shown intact (every image listed, every file's bytes as recorded).

    .venv/bin/python bench/backup_restore.py     # prints what it did; exits 1 if anything differs

It runs on a throwaway portal in a temp folder, never on var/. The two functions that do the work,
backup() and restore(), are what docs/operations.md describes for a real install:

- the database with SQLite's online backup API (a consistent copy while the portal runs: WAL
  and all), to a file next to the media archive;
- the media through Django's storage API (the same code for local disk and for an S3 bucket),
  into a tar archive; restore() writes every file back under its own name.
"""

import hashlib
import io
import os
import sqlite3
import sys
import tarfile
import tempfile
from pathlib import Path

from _throwaway_django import setup_django

JOBS, IMAGES_PER_JOB = 3, 2


def backup(database_path, storage, into):
    """Dump the database and every media file into the folder `into`; returns the file count."""
    into = Path(into)
    into.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(database_path) as source, sqlite3.connect(into / "studio.sqlite3") as copy:
        source.backup(copy)
    count = 0
    with tarfile.open(into / "media.tar", "w") as archive:
        for name in every_file(storage):
            with storage.open(name, "rb") as handle:
                data = handle.read()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, fileobj=io.BytesIO(data))
            count += 1
    return count


def restore(backup_dir, database_path, storage):
    """Put the database file back and write every media file back through the storage API."""
    backup_dir = Path(backup_dir)
    with sqlite3.connect(backup_dir / "studio.sqlite3") as copy, sqlite3.connect(database_path) as target:
        copy.backup(target)
    from django.core.files.base import ContentFile

    count = 0
    with tarfile.open(backup_dir / "media.tar") as archive:
        for member in archive.getmembers():
            if not member.isfile():
                continue
            data = archive.extractfile(member).read()
            if storage.exists(member.name):
                storage.delete(member.name)
            saved = storage.save(member.name, ContentFile(data))
            assert saved == member.name, (saved, member.name)  # rows name files: names must not change
            count += 1
    return count


def every_file(storage, folder=""):
    folders, files = storage.listdir(folder)
    for name in files:
        yield f"{folder}/{name}" if folder else name
    for sub in folders:
        yield from every_file(storage, f"{folder}/{sub}" if folder else sub)


def make_gallery():
    """A user with a few finished jobs and their stored images (originals and thumbnails)."""
    from decimal import Decimal

    from django.contrib.auth.models import User
    from PIL import Image as PILImage

    from studio import media
    from studio.models import Job

    owner = User.objects.create_user("keeper", password="keeper-password-1")
    for number in range(JOBS):
        job = Job.objects.create(
            owner=owner, gateway="apimart", model="wan2.7-image", mode="text-to-image",
            prompt=f"backup {number}", request={}, n_requested=IMAGES_PER_JOB, status=Job.SUCCEEDED,
            unit_price=Decimal("0.20"), hold_amount=Decimal("0.40"),
        )
        for index in range(IMAGES_PER_JOB):
            out = io.BytesIO()
            PILImage.new("RGB", (320, 240), (40 * number, 30 * index + 60, 150)).save(out, "PNG")
            media.store_result(job, {"index": index}, out.getvalue())
    return owner


def gallery_problems(owner):
    """What is wrong with the gallery as the owner sees it: every image listed and served whole."""
    from django.test import Client
    from django.urls import reverse

    from studio.models import Image

    client = Client(SERVER_NAME="localhost")
    client.force_login(owner)
    page = client.get(reverse("gallery")).content.decode()
    problems = []
    images = list(Image.objects.filter(owner=owner))
    if len(images) != JOBS * IMAGES_PER_JOB:
        problems.append(f"{len(images)} images in the database, expected {JOBS * IMAGES_PER_JOB}")
    for image in images:
        if reverse("image_thumbnail", args=[image.pk]) not in page:
            problems.append(f"image {image.pk} is not in the gallery page")
        response = client.get(reverse("image_file", args=[image.pk]))
        if response.status_code != 200:
            problems.append(f"image {image.pk} answers {response.status_code}")
            continue
        if hashlib.sha256(b"".join(response.streaming_content)).hexdigest() != image.sha256:
            problems.append(f"image {image.pk} has other bytes than recorded")
        if client.get(reverse("image_thumbnail", args=[image.pk])).status_code != 200:
            problems.append(f"image {image.pk} has no thumbnail")
    return problems


def main():
    for name in ("STUDIO_S3_BUCKET", "STUDIO_S3_ENDPOINT_URL", "STUDIO_S3_REGION", "REDIS_URL"):
        os.environ.pop(name, None)  # a throwaway portal: local disk, SQLite, ORM broker
    with tempfile.TemporaryDirectory(prefix="studio-backup-") as var_dir:
        setup_django(var_dir, STUDIO_TESTING="1")
        from django.conf import settings
        from django.core.files.storage import default_storage
        from django.db import connection

        database = settings.DATABASES["default"]["NAME"]
        owner = make_gallery()
        before = gallery_problems(owner)
        assert not before, before

        saved = backup(database, default_storage, Path(var_dir) / "backup")
        print(f"backed up the database and {saved} media files")

        # Disaster: every table emptied, every media file gone.
        connection.close()
        with sqlite3.connect(database) as db:
            tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            db.execute("PRAGMA foreign_keys=OFF")
            for table in tables:
                db.execute(f'DELETE FROM "{table}"')
        for name in list(every_file(default_storage)):
            default_storage.delete(name)
        from studio.models import Image

        print(f"lost everything: {Image.objects.count()} images in the database, "
              f"{len(list(every_file(default_storage)))} media files")

        connection.close()
        restored = restore(Path(var_dir) / "backup", database, default_storage)
        print(f"restored the database and {restored} media files")
        after = gallery_problems(owner)
        if after:
            print("the gallery is NOT intact:", *after, sep="\n  ")
            sys.exit(1)
        print(f"the gallery is intact: {JOBS * IMAGES_PER_JOB} images listed, each served with its "
              "recorded bytes and a thumbnail")


if __name__ == "__main__":
    main()
