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
