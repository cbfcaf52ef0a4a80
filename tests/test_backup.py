"""The backup and restore in bench/backup_restore.py, tried end to end: dumped, lost, restored,
the gallery intact."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_restored_backup_shows_the_gallery_intact():
    result = subprocess.run([sys.executable, "bench/backup_restore.py"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "lost everything: 0 images in the database, 0 media files" in result.stdout
    assert "the gallery is intact: 6 images listed" in result.stdout
