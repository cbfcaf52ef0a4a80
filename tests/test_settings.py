"""Settings parsing: each variable is read from a fresh interpreter, as at start-up."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PRINT_SETTINGS = """
import json
from django.conf import settings
import django
django.setup()
db = settings.DATABASES["default"]
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "ALLOWED_HOSTS": settings.ALLOWED_HOSTS,
    "ENGINE": db["ENGINE"],
    "NAME": str(db["NAME"]),
    "CONN_MAX_AGE": db["CONN_MAX_AGE"],
    "OPTIONS": db.get("OPTIONS", {}),
    "Q": {k: v for k, v in settings.Q_CLUSTER.items() if k in ("redis", "orm", "timeout", "retry",
          "max_attempts", "ack_failures", "workers")},
    "GATEWAYS": settings.STUDIO_GATEWAYS,
    "SIMULATOR": settings.STUDIO_SIMULATOR,
    "MEDIA_ROOT": str(settings.MEDIA_ROOT),
    "SECRET_KEY_LEN": len(settings.SECRET_KEY),
    "DEADLINE": settings.STUDIO_JOB_DEADLINE,
    "STORAGE": settings.STORAGES["default"],
    "WORKER_HOST": settings.STUDIO_WORKER_HOST,
    "HEARTBEAT": [settings.STUDIO_HEARTBEAT_SECONDS, settings.STUDIO_HEARTBEAT_TIMEOUT],
    "WEB": [settings.STUDIO_WEB_WORKERS, settings.STUDIO_WEB_THREADS],
}))
"""


def load_settings(tmp_path, **env):
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STUDIO_", "DATABASE_URL", "REDIS_URL", "MEDIA_ROOT"))
    }
    clean.update({"DJANGO_SETTINGS_MODULE": "studio.settings", "STUDIO_VAR_DIR": str(tmp_path / "var")})
    clean.pop("SECRET_KEY", None)
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def settings_for(tmp_path, **env):
    result = load_settings(tmp_path, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_defaults_make_clone_and_run_work(tmp_path):
    s = settings_for(tmp_path)
    assert s["DEBUG"] is False
    assert s["ENGINE"] == "django.db.backends.sqlite3"
    assert s["NAME"] == str(tmp_path / "var" / "studio.sqlite3")
    assert s["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in s["OPTIONS"]["init_command"]
    assert s["OPTIONS"]["timeout"] >= 20
    assert s["Q"]["orm"] == "default" and "redis" not in s["Q"]
    assert s["Q"]["timeout"] < s["Q"]["retry"]
    assert s["Q"]["max_attempts"] == 1 and s["Q"]["ack_failures"] is True
    assert s["SIMULATOR"] is False
    assert s["GATEWAYS"]["foxapi"] == {"api_key": "", "base_url": "https://api.foxapi.cc"}
    assert s["GATEWAYS"]["anyfast"]["base_url"] == "https://www.anyfast.ai"
    assert s["MEDIA_ROOT"] == str(tmp_path / "var" / "media")


def test_secret_key_is_generated_once_into_a_private_file(tmp_path):
    first = settings_for(tmp_path)
    key_file = tmp_path / "var" / "secret_key"
    assert key_file.exists()
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    key = key_file.read_text()
    settings_for(tmp_path)
    assert key_file.read_text() == key
    assert first["SECRET_KEY_LEN"] >= 50


def test_secret_key_from_environment_wins(tmp_path):
    settings_for(tmp_path, SECRET_KEY="x" * 60)
    assert not (tmp_path / "var" / "secret_key").exists()


def test_debug_and_allowed_hosts(tmp_path):
    s = settings_for(tmp_path, DEBUG="true", ALLOWED_HOSTS="studio.example.com, 10.0.0.5")
    assert s["DEBUG"] is True
    assert s["ALLOWED_HOSTS"] == ["studio.example.com", "10.0.0.5"]


def test_bad_boolean_is_a_clear_error(tmp_path):
    result = load_settings(tmp_path, DEBUG="maybe")
    assert result.returncode != 0
    assert "DEBUG must be a boolean" in result.stderr


def test_postgres_database_url(tmp_path):
    s = settings_for(tmp_path, DATABASE_URL="postgres://studio@db.internal:5432/studio")
    assert s["ENGINE"] == "django.db.backends.postgresql"
    assert s["NAME"] == "studio"


@pytest.mark.parametrize(
    "url, message",
    [
        ("garbage", "DATABASE_URL is not a valid database URL"),
        ("mysqlx://u:hunter2@h/db", "'mysqlx' is not a supported scheme"),
        ("postgres://", "DATABASE_URL names no database"),
    ],
)
def test_bad_database_url_is_a_clear_error_at_start_up(tmp_path, url, message):
    result = load_settings(tmp_path, DATABASE_URL=url)
    assert result.returncode != 0
    assert message in result.stderr
    assert "hunter2" not in result.stderr  # a password in the URL is never echoed


def test_redis_url_switches_the_broker(tmp_path):
    s = settings_for(tmp_path, REDIS_URL="redis://127.0.0.1:6379/3")
    assert s["Q"]["redis"] == "redis://127.0.0.1:6379/3"
    assert "orm" not in s["Q"]


def test_gateway_keys_and_urls(tmp_path):
    s = settings_for(
        tmp_path,
        STUDIO_APIMART_API_KEY="sk-apimart",
        STUDIO_GCCAI_BASE_URL="https://gcc.example/",
        STUDIO_SIMULATOR="on",
    )
    assert s["GATEWAYS"]["apimart"] == {"api_key": "sk-apimart", "base_url": "https://api.apimart.ai"}
    assert s["GATEWAYS"]["gccai"]["base_url"] == "https://gcc.example"
    assert s["SIMULATOR"] is True


def test_media_root_and_deadline(tmp_path):
    s = settings_for(tmp_path, MEDIA_ROOT=str(tmp_path / "m"), STUDIO_JOB_DEADLINE="600")
    assert s["MEDIA_ROOT"] == str(tmp_path / "m")
    assert s["DEADLINE"] == 600


def test_connections_are_kept_a_minute_unless_told(tmp_path):
    # django-q2's ORM broker closes an aged connection before every enqueue and dequeue: at 0 on
    # SQLite that was a new connection for every task handed over.
    assert settings_for(tmp_path)["CONN_MAX_AGE"] == 60
    postgres = "postgres://studio@db.internal:5432/studio"
    assert settings_for(tmp_path, DATABASE_URL=postgres)["CONN_MAX_AGE"] == 60
    assert settings_for(tmp_path, DATABASE_URL=postgres, STUDIO_DB_CONN_MAX_AGE="0")["CONN_MAX_AGE"] == 0
    assert settings_for(tmp_path, STUDIO_DB_CONN_MAX_AGE="5")["CONN_MAX_AGE"] == 5
    result = load_settings(tmp_path, STUDIO_DB_CONN_MAX_AGE="forever")
    assert result.returncode != 0
    assert "STUDIO_DB_CONN_MAX_AGE must be a whole number" in result.stderr


def test_the_web_server_runs_four_processes_of_four_threads_unless_told(tmp_path):
    assert settings_for(tmp_path)["WEB"] == [4, 4]
    assert settings_for(tmp_path, STUDIO_WEB_WORKERS="2", STUDIO_WEB_THREADS="8")["WEB"] == [2, 8]
    for name in ("STUDIO_WEB_WORKERS", "STUDIO_WEB_THREADS"):
        result = load_settings(tmp_path, **{name: "0"})
        assert result.returncode != 0
        assert f"{name} must be at least 1, not 0" in result.stderr


def test_a_download_task_takes_at_least_one_job(tmp_path):
    result = load_settings(tmp_path, STUDIO_DOWNLOAD_JOBS_PER_TASK="0")
    assert result.returncode != 0
    assert "STUDIO_DOWNLOAD_JOBS_PER_TASK must be at least 1, not 0" in result.stderr
    assert load_settings(tmp_path, STUDIO_DOWNLOAD_JOBS_PER_TASK="2").returncode == 0


def test_bad_number_is_a_clear_error(tmp_path):
    result = load_settings(tmp_path, STUDIO_JOB_DEADLINE="soon")
    assert result.returncode != 0
    assert "STUDIO_JOB_DEADLINE must be a whole number" in result.stderr


def test_media_stay_on_local_disk_by_default(tmp_path):
    assert settings_for(tmp_path)["STORAGE"] == {"BACKEND": "django.core.files.storage.FileSystemStorage"}


def test_a_bucket_puts_media_in_s3_privately(tmp_path):
    s = settings_for(tmp_path, STUDIO_S3_BUCKET="studio-media", STUDIO_S3_ENDPOINT_URL="http://127.0.0.1:9000",
                     STUDIO_S3_REGION="eu-central-1")
    assert s["STORAGE"]["BACKEND"] == "storages.backends.s3.S3Storage"
    options = s["STORAGE"]["OPTIONS"]
    assert (options["bucket_name"], options["endpoint_url"], options["region_name"]) == (
        "studio-media", "http://127.0.0.1:9000", "eu-central-1")
    assert options["default_acl"] is None and options["querystring_auth"] is True
    assert options["file_overwrite"] is False and options["querystring_expire"] <= 600


@pytest.mark.parametrize("env, message", [
    ({"STUDIO_S3_BUCKET": "b", "STUDIO_S3_ENDPOINT_URL": "127.0.0.1:9000"}, "must start with http://"),
    ({"STUDIO_S3_ENDPOINT_URL": "http://127.0.0.1:9000"}, "need STUDIO_S3_BUCKET"),
    ({"STUDIO_HEARTBEAT_SECONDS": "10", "STUDIO_HEARTBEAT_TIMEOUT": "20"}, "at least three times"),
    ({"STUDIO_HEARTBEAT_SECONDS": "0"}, "above 0"),
    ({"STUDIO_HEARTBEAT_TIMEOUT": "soon"}, "must be a number"),
    ({"STUDIO_WORKER_HOST": "a:b"}, "may not contain"),
])
def test_bad_storage_and_liveness_settings_fail_at_start_up(tmp_path, env, message):
    result = load_settings(tmp_path, **env)
    assert result.returncode != 0
    assert message in result.stderr


def test_the_worker_host_defaults_to_the_host_name(tmp_path):
    import socket

    s = settings_for(tmp_path)
    assert s["WORKER_HOST"] == socket.gethostname()
    assert s["HEARTBEAT"] == [5.0, 30.0]
    assert settings_for(tmp_path, STUDIO_WORKER_HOST="box-2")["WORKER_HOST"] == "box-2"
