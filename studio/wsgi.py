import ctypes
import os
import sys

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")


def return_large_blocks_to_the_system():
    """Blocks of 1 MB and more are mmapped, so they go back to the system when freed.

    Pillow keeps a decoded image in 16 MB blocks. With glibc's default (a threshold that rises
    the first time such a block is freed), each of the web worker's threads keeps the last
    image it decoded in its own arena: eight 8000² uploads left a worker at 2 GB for good
    (bench/upload_memory.py). Linux with glibc only; elsewhere nothing changes.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_mmap_threshold = -3
    libc.mallopt(m_mmap_threshold, 1024 * 1024)


return_large_blocks_to_the_system()
application = get_wsgi_application()
