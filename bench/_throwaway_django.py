"""Shared by the bench scripts: Django on a throwaway SQLite database in a temp folder.

The leading underscore keeps `make bench` from running it as a bench of its own.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_django(var_dir, **extra_env):
    """Point every path of the project at var_dir, set up Django and migrate."""
    env = {
        "STUDIO_VAR_DIR": var_dir,
        "DATABASE_URL": f"sqlite:///{var_dir}/bench.sqlite3",
        "MEDIA_ROOT": f"{var_dir}/media",
        "DJANGO_SETTINGS_MODULE": "studio.settings",
        "STUDIO_LOG_LEVEL": "WARNING",
    }
    env.update(extra_env)  # e.g. DATABASE_URL of a PostgreSQL database to measure on instead
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
