"""Gallery paging: the first page against a deep one, keyset (what the gallery does) against OFFSET.

A throwaway SQLite database with 20,000 images of one user (and 2,000 of another, so the owner
filter matters). Prints milliseconds per page (median of several runs), queries per page and the
deep/first ratio of each method: keyset should stay near 1×, OFFSET grows with the depth.

    .venv/bin/python bench/gallery_pages.py
"""

import statistics
import tempfile
import time

from _throwaway_django import setup_django

IMAGES = 20_000
OTHER_IMAGES = 2_000
PER_JOB = 4
PAGE_SIZE = 60
DEEP_PAGE = 300
RUNS = 30


def fill(user, count):
    from studio.models import Image, Job

    job_rows = [
        Job(owner=user, gateway="apimart", model="wan2.7-image", mode="text-to-image", prompt=f"prompt {i}",
            request={}, n_requested=PER_JOB, status=Job.SUCCEEDED)
        for i in range(count // PER_JOB)
    ]
    Job.objects.bulk_create(job_rows, batch_size=1000)
    image_rows = [
        Image(job=job, owner=user, index=index, file=f"images/{user.pk}/{job.pk}/{index + 1:02d}.png",
              thumbnail=f"thumbs/{user.pk}/{job.pk}/{index + 1:02d}.webp", width=1024, height=1024,
              bytes=1_500_000, sha256="0" * 64, mime="image/png")
        for job in Job.objects.filter(owner=user).order_by("id")
        for index in range(PER_JOB)
    ]
    Image.objects.bulk_create(image_rows, batch_size=2000)


def timed(fetch):
    """(median ms, queries) of one page fetch."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    fetch()  # warm the cache the way a second visitor would find it
    with CaptureQueriesContext(connection) as queries:
        fetch()
    samples = []
    for _ in range(RUNS):
        started = time.perf_counter()
        fetch()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), len(queries)


def main():
    with tempfile.TemporaryDirectory(prefix="studio-bench-") as var_dir:
        setup_django(var_dir)
        from django.contrib.auth.models import User
        from django.core.paginator import Paginator

        from studio.models import Image
        from studio.paging import keyset_page

        user = User.objects.create_user("bench")
        fill(user, IMAGES)
        fill(User.objects.create_user("other"), OTHER_IMAGES)
        images = Image.objects.filter(owner=user)
        newest_first = images.select_related("job").order_by("-id")

        # The cursor a visitor holds on page DEEP_PAGE: the id of the last image of the page before.
        ids = list(images.order_by("-id").values_list("id", flat=True))
        deep_cursor = ids[(DEEP_PAGE - 1) * PAGE_SIZE - 1]
        offset = (DEEP_PAGE - 1) * PAGE_SIZE

        methods = {
            "keyset (paging.keyset_page)": (
                lambda: keyset_page(images.select_related("job"), None, PAGE_SIZE),
                lambda: keyset_page(images.select_related("job"), deep_cursor, PAGE_SIZE),
            ),
            "OFFSET slice": (
                lambda: list(newest_first[:PAGE_SIZE]),
                lambda: list(newest_first[offset:offset + PAGE_SIZE]),
            ),
            "OFFSET + COUNT (Paginator)": (
                lambda: list(Paginator(newest_first, PAGE_SIZE).page(1)),
                lambda: list(Paginator(newest_first, PAGE_SIZE).page(DEEP_PAGE)),
            ),
        }
        # Both ends of each method return the same rows.
        deep_page, _ = keyset_page(images, deep_cursor, PAGE_SIZE)
        assert [i.pk for i in deep_page] == ids[offset:offset + PAGE_SIZE]

        print(f"{IMAGES:,} images of one user (+{OTHER_IMAGES:,} of another), {PAGE_SIZE} a page, "
              f"page 1 against page {DEEP_PAGE}; median of {RUNS} runs, SQLite")
        print(f"{'method':<30} {'first ms':>9} {'deep ms':>9} {'deep/first':>11} {'queries/page':>13}")
        for name, (first, deep) in methods.items():
            first_ms, first_queries = timed(first)
            deep_ms, deep_queries = timed(deep)
            queries = f"{first_queries}/{deep_queries}"
            print(f"{name:<30} {first_ms:9.2f} {deep_ms:9.2f} {deep_ms / first_ms:10.1f}× {queries:>13}")


if __name__ == "__main__":
    main()
