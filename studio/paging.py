"""Keyset paging for the history and the gallery: newest first by id, whatever the depth."""

from studio.access import to_id


def keyset_page(queryset, before, size):
    """One page of `size` rows newest first, and the id to continue from (None at the end).

    No OFFSET and no COUNT, one query: a filter on id below `before` walks the (owner, -id)
    index, so a deep page costs what the first one does (bench/gallery_pages.py).
    """
    before = to_id(before)
    if before:
        queryset = queryset.filter(pk__lt=before)
    rows = list(queryset.order_by("-id")[:size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return rows, (rows[-1].pk if more else None)


def image_page(queryset, after, size):
    """One page of images in gallery order (newest job first, each job's images 1, 2, 3…), and
    the cursor to continue from: "<job id>.<index>" of the last image shown (None at the end).

    `job_id <= cursor job` is the index range to walk, and only the cursor's own job's earlier
    images are excluded on top, so a deep page starts where the cursor is: no OFFSET, one query.
    """
    cursor = image_cursor(after)
    if cursor:
        job_id, index = cursor
        queryset = queryset.filter(job_id__lte=job_id).exclude(job_id=job_id, index__lte=index)
    rows = list(queryset.order_by("-job_id", "index")[:size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return rows, (f"{rows[-1].job_id}.{rows[-1].index}" if more else None)


def image_cursor(text):
    """(job id, index) from a gallery cursor, or None when the text is not one."""
    job_text, _, index_text = str(text or "").partition(".")
    job_id = to_id(job_text)
    if not job_id or not (index_text.isascii() and index_text.isdigit()) or len(index_text) > 5:
        return None
    return job_id, int(index_text)
