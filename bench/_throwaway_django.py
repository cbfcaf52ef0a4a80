"""Shared by the bench scripts: Django on a throwaway database (SQLite in a temp folder, unless the
caller passes another database URL).

The leading underscore keeps `make bench` from running it as a bench of its own.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_django(var_dir, database_url=None, **extra_env):
    """Point every path of the project at var_dir, set up Django and migrate."""
    os.environ.update(
        STUDIO_VAR_DIR=var_dir,
        DATABASE_URL=database_url or f"sqlite:///{var_dir}/bench.sqlite3",
        MEDIA_ROOT=f"{var_dir}/media",
        DJANGO_SETTINGS_MODULE="studio.settings",
        STUDIO_LOG_LEVEL="WARNING",
        **extra_env,
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
