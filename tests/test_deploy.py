"""STUDIO_HTTPS=1 with a real SECRET_KEY and ALLOWED_HOSTS passes `manage.py check --deploy`."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PRINT_SECURITY = """
import json
import django
from django.conf import settings
django.setup()
print(json.dumps({name: getattr(settings, name) for name in (
    "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_PROXY_SSL_HEADER")}))
"""


def deployment(tmp_path, **env):
    """The environment of a fresh process, as a deployment would set it."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STUDIO_", "DATABASE_URL", "REDIS_URL", "MEDIA_ROOT", "DJANGO_"))
    }
    clean.update({
        "DJANGO_SETTINGS_MODULE": "studio.settings",
        "STUDIO_VAR_DIR": str(tmp_path / "var"),
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DEBUG": "0",
        "ALLOWED_HOSTS": "studio.example.com",
    })
    clean.update(env)
    return clean


def check_deploy(tmp_path, **env):
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=deployment(tmp_path, **env), capture_output=True, text=True, timeout=120,
    )


def test_https_deployment_passes_check_deploy(tmp_path):
    result = check_deploy(tmp_path, STUDIO_HTTPS="1", STUDIO_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNINGS" not in result.stdout + result.stderr


def test_without_it_check_deploy_complains(tmp_path):
    result = check_deploy(tmp_path)
    assert result.returncode != 0
    assert "SECURE_HSTS_SECONDS" in result.stdout + result.stderr


def test_the_switch_sets_cookies_hsts_redirect_and_the_proxy_header(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", PRINT_SECURITY], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env=deployment(tmp_path, STUDIO_HTTPS="1", STUDIO_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO"),
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
    }
