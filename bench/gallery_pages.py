"""Gallery paging at 40,000 images: the first page against a deep one, plain, searched and
filtered, as the gallery serves them (library.own_images + paging.image_page); and keyset against
OFFSET on the same rows.

A throwaway SQLite database with 40,000 images of one user (10,000 jobs of 4) and 10,000 of
others, so the owner filter matters. Prompts are drawn from a word list: the searched word is in
1 job of 50; the filtered model and mode together in 1 of 6. Prints the median milliseconds of a
page, its queries, and deep/first.

    .venv/bin/python bench/gallery_pages.py
    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/wt13 .venv/bin/python bench/gallery_pages.py

With BENCH_DATABASE_URL it measures on that (emptied afterwards) database instead.
"""

import os
import random
import statistics
import tempfile
import time

from _throwaway_django import setup_django

IMAGES = 40_000
OTHER_IMAGES = 10_000
PER_JOB = 4
PAGE_SIZE = 60
DEEP_PAGE = 300
RUNS = 30
WORDS = ["lighthouse", "harbour", "mountain", "city", "portrait", "forest", "desert", "river", "robot",
         "garden", "castle", "market", "bridge", "cat", "dog", "horse", "train", "storm", "dawn", "night"]
RARE = "axolotl"  # in 1 job of 50: a search that has to look far for a page
MODELS = [("apimart", "wan2.7-image"), ("apimart", "wan2.7-image-pro"), ("foxapi", "wan2.7-image"),
          ("anyfast", "doubao-seedream-4-5-251128"), ("gccai", "wan2.7-image-pro"), ("gccai", "wan2.7-image")]
MODES = ["text-to-image", "edit", "reference"]


def prompt(rng, i):
    words = rng.sample(WORDS, 6)
    if i % 50 == 7:
        words.insert(3, RARE)
    return "A " + " ".join(words) + f" study number {i}"


def fill(user, count, rng):
    from studio.models import Image, Job

    job_rows = []
    for i in range(count // PER_JOB):
        gateway, model = MODELS[i % len(MODELS)]
        job_rows.append(Job(owner=user, gateway=gateway, model=model, mode=MODES[(i // 2) % len(MODES)],
                            prompt=prompt(rng, i), request={}, n_requested=PER_JOB, status=Job.SUCCEEDED))
    Job.objects.bulk_create(job_rows, batch_size=1000)
    image_rows = [
        Image(job_id=job_id, owner=user, index=index,
              file=f"images/{user.pk}/{job_id}/{index + 1:02d}.png",
              thumbnail=f"thumbs/{user.pk}/{job_id}/{index + 1:02d}.webp", width=1024, height=1024,
              bytes=1_500_000, sha256="0" * 64, mime="image/png", favourite=(job_id % 9 == 0))
        for job_id in Job.objects.filter(owner=user).order_by("id").values_list("id", flat=True)
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


def deep_cursor(images, pages):
    """The cursor a visitor holds after scrolling `pages` pages (at most the last page)."""
    from studio.paging import image_page

    keys = list(images.order_by("-job_id", "index").values_list("job_id", "index"))
    if not keys:
        raise SystemExit("no image matches: the bench's data and its filters have drifted apart")
    at = min(pages * PAGE_SIZE, max(len(keys) - PAGE_SIZE, 1)) - 1
    job_id, index = keys[at]
    return f"{job_id}.{index}", image_page


def main():
    with tempfile.TemporaryDirectory(prefix="studio-bench-") as var_dir:
        given = os.environ.get("BENCH_DATABASE_URL")  # a PostgreSQL database to measure on, emptied after
        setup_django(var_dir, database_url=given)
        from django.contrib.auth.models import User
        from django.core.management import call_command
        from django.core.paginator import Paginator
        from django.db import connection

        from studio import library
        from studio.paging import image_page

        try:
            rng = random.Random(13)
            user = User.objects.create_user("bench")
            fill(user, IMAGES, rng)
            for n in range(4):
                fill(User.objects.create_user(f"other{n}"), OTHER_IMAGES // 4, rng)
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("ANALYZE")

            cases = {
                "all images": {},
                f"search '{RARE}'": {"q": RARE},
                "filtered: pro model, reference mode": {"model": "wan2.7-image-pro", "mode": "reference"},
                "search + filter": {"q": "lighthouse", "gateway": "gccai", "favourites": True},
            }
            print(f"{IMAGES:,} images of one user (+{OTHER_IMAGES:,} of others), {PAGE_SIZE} a page, "
                  f"median of {RUNS} runs, {connection.vendor}")
            print(f"{'gallery page (library + paging.image_page)':<44} {'matches':>8} {'first ms':>9} "
                  f"{'deep ms':>8} {'deep page':>10} {'queries':>8}")
            for name, values in cases.items():
                images = library.own_images(user, values).select_related("job")
                matches = images.count()
                cursor, _ = deep_cursor(images, DEEP_PAGE - 1)
                first_ms, first_queries = timed(lambda images=images: image_page(images, None, PAGE_SIZE))
                deep_ms, deep_queries = timed(
                    lambda images=images, cursor=cursor: image_page(images, cursor, PAGE_SIZE))
                depth = min(DEEP_PAGE, max(matches // PAGE_SIZE, 1))
                print(f"{name:<44} {matches:>8,} {first_ms:9.2f} {deep_ms:8.2f} {depth:>10} "
                      f"{first_queries}/{deep_queries:>6}")

            if connection.vendor == "postgresql":
                # Which index serves the search (the trigram one from migration 0006, or the order).
                searched = library.own_images(user, {"q": RARE}).select_related("job")
                searched = searched.order_by("-job_id", "index")
                sql, params = searched[:PAGE_SIZE + 1].query.sql_with_params()
                with connection.cursor() as cursor:
                    cursor.execute("EXPLAIN " + sql, params)
                    print("\nplan of the search's first page:")
                    print("\n".join("  " + row[0] for row in cursor.fetchall()))

            # The same rows by OFFSET, for comparison: cost grows with the depth.
            newest_first = library.own_images(user, {}).select_related("job").order_by("-job_id", "index")
            offset = (DEEP_PAGE - 1) * PAGE_SIZE
            print(f"\n{'baseline':<44} {'':>8} {'first ms':>9} {'deep ms':>8} "
                  f"{'deep page':>10} {'queries':>8}")
            for name, first, deep in (
                ("OFFSET slice", lambda: list(newest_first[:PAGE_SIZE]),
                 lambda: list(newest_first[offset:offset + PAGE_SIZE])),
                ("OFFSET + COUNT (Paginator)", lambda: list(Paginator(newest_first, PAGE_SIZE).page(1)),
                 lambda: list(Paginator(newest_first, PAGE_SIZE).page(DEEP_PAGE))),
            ):
                first_ms, first_queries = timed(first)
                deep_ms, deep_queries = timed(deep)
                print(f"{name:<44} {'':>8} {first_ms:9.2f} {deep_ms:8.2f} {DEEP_PAGE:>10} "
                      f"{first_queries}/{deep_queries:>6}")

            # Both ways reach the same rows.
            cursor, _ = deep_cursor(library.own_images(user, {}), DEEP_PAGE - 1)
            keyset_rows, _ = image_page(library.own_images(user, {}), cursor, PAGE_SIZE)
            assert [i.pk for i in keyset_rows] == [i.pk for i in newest_first[offset:offset + PAGE_SIZE]]
        finally:
            if given:
                call_command("flush", interactive=False, verbosity=0)


if __name__ == "__main__":
    main()
