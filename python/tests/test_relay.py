"""conveyor.relay and manage.py conveyor_relay: the relay runs on Django's DATABASES."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction
from django.test import override_settings

from conveyor import Event, EventSpec, Status, publish_many
from conveyor.relay import DATABASE_URL_ENV, RelayError, build_invocation, database_url, mask_url

PYTHON_DIR = Path(__file__).resolve().parent.parent
REPO = PYTHON_DIR.parent
SECRET = "p@ss:w/rd ${HOME}%"

PG = {
    "ENGINE": "django.db.backends.postgresql",
    "NAME": "shop",
    "USER": "app user",
    "PASSWORD": SECRET,
    "HOST": "db.internal",
    "PORT": 5433,
    "OPTIONS": {"sslmode": "verify-full", "sslrootcert": "/etc/ca.pem", "isolation_level": 1},
}


def test_postgres_url() -> None:
    url, ignored = database_url(PG)
    parts = urlsplit(url)
    assert parts.scheme == "postgres"
    assert unquote(parts.username or "") == "app user"
    assert unquote(parts.password or "") == SECRET
    assert (parts.hostname, parts.port, parts.path) == ("db.internal", 5433, "/shop")
    assert parts.query == "sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem"
    assert ignored == ["isolation_level"]
    assert "$" not in url and "{" not in url  # nothing for the relay's ${VAR} interpolation


@pytest.mark.parametrize(
    ("db", "expected"),
    [
        ({"NAME": "shop"}, "postgres:///shop"),
        ({"NAME": "shop", "USER": "u"}, "postgres://u@/shop"),
        (
            {"NAME": "shop", "HOST": "/var/run/postgresql", "PORT": "5432"},
            "postgres:///shop?host=%2Fvar%2Frun%2Fpostgresql&port=5432",
        ),
        ({"NAME": "shop", "HOST": "::1", "PORT": "5432"}, "postgres://[::1]:5432/shop"),
        ({"OPTIONS": {"service": "prod"}}, "postgres:///?service=prod"),
    ],
)
def test_postgres_url_shapes(db: dict[str, Any], expected: str) -> None:
    url, _ = database_url({"ENGINE": "django.db.backends.postgresql", **db})
    assert url == expected


MY = {
    "ENGINE": "django.db.backends.mysql",
    "NAME": "shop",
    "USER": "app user",
    "PASSWORD": SECRET,
    "HOST": "db.internal",
    "PORT": "3307",
    "OPTIONS": {
        "charset": "utf8mb4",
        "ssl": {"ca": "/etc/ca.pem", "cert": "/etc/client.pem", "key": "/etc/client.key"},
        "connect_timeout": 5,
        "init_command": "SET sql_mode='STRICT_TRANS_TABLES'",
    },
}


def test_mysql_url() -> None:
    url, ignored = database_url(MY)
    parts = urlsplit(url)
    assert parts.scheme == "mysql"
    assert unquote(parts.username or "") == "app user"
    assert unquote(parts.password or "") == SECRET
    assert (parts.hostname, parts.port, parts.path) == ("db.internal", 3307, "/shop")
    assert dict(parse_qsl(parts.query)) == {
        "charset": "utf8mb4",
        "ssl-ca": "/etc/ca.pem",
        "ssl-cert": "/etc/client.pem",
        "ssl-key": "/etc/client.key",
        "timeout": "5s",
        "tls": "true",
    }
    assert ignored == ["init_command"]
    assert "$" not in url and "{" not in url  # nothing for the relay's ${VAR} interpolation


@pytest.mark.parametrize(
    ("db", "expected"),
    [
        ({"NAME": "shop"}, "mysql://localhost/shop"),
        ({"NAME": "shop", "USER": "u", "HOST": "10.0.0.5"}, "mysql://u@10.0.0.5/shop"),
        ({"NAME": "shop", "HOST": "::1", "PORT": 3306}, "mysql://[::1]:3306/shop"),
        (
            {"NAME": "shop", "HOST": "/run/mysqld/mysqld.sock"},
            "mysql:///shop?socket=%2Frun%2Fmysqld%2Fmysqld.sock",
        ),
        (
            {"NAME": "shop", "OPTIONS": {"unix_socket": "/tmp/my.sock"}},
            "mysql:///shop?socket=%2Ftmp%2Fmy.sock",
        ),
        (
            {"NAME": "shop", "OPTIONS": {"ssl_mode": "REQUIRED"}},
            "mysql://localhost/shop?tls=skip-verify",
        ),
        ({"NAME": "shop", "OPTIONS": {"ssl_mode": "disabled"}}, "mysql://localhost/shop?tls=false"),
        (
            {"NAME": "shop", "OPTIONS": {"ssl": {"ca": "/ca.pem"}, "ssl_mode": "VERIFY_IDENTITY"}},
            "mysql://localhost/shop?ssl-ca=%2Fca.pem&tls=true",
        ),
    ],
)
def test_mysql_url_shapes(db: dict[str, Any], expected: str) -> None:
    url, _ = database_url({"ENGINE": "django.db.backends.mysql", **db})
    assert url == expected


def test_sqlite_url(tmp_path: Path) -> None:
    path = tmp_path / "my db.sqlite3"
    url, _ = database_url({"ENGINE": "django.db.backends.sqlite3", "NAME": path})
    assert url == "sqlite:///" + str(path).replace(" ", "%20")
    assert url.startswith("sqlite:////")  # four slashes: absolute, as the relay reads it
    rel, _ = database_url({"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"})
    assert rel == "sqlite:///" + os.path.abspath("db.sqlite3")


@pytest.mark.parametrize(
    ("db", "message"),
    [
        ({"ENGINE": "django.db.backends.mysql", "NAME": ""}, "has no NAME"),
        ({"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}, "in-memory"),
        ({"ENGINE": "django.db.backends.sqlite3", "NAME": "file:x?mode=memory"}, "in-memory"),
        (
            {"ENGINE": "django.db.backends.oracle", "NAME": "x"},
            "runs on PostgreSQL, MySQL/MariaDB and SQLite",
        ),
    ],
)
def test_unsupported_databases(db: dict[str, Any], message: str) -> None:
    with pytest.raises(RelayError, match=message):
        database_url(db)


def test_mask_url() -> None:
    url, _ = database_url(PG)
    masked = mask_url(url)
    assert "***" in masked and "p%40ss" not in masked and "rd" not in masked.split("@")[0]
    assert masked.startswith("postgres://app%20user:***@db.internal:5433/shop?")
    assert mask_url("sqlite:////tmp/x") == "sqlite:////tmp/x"
    assert mask_url("postgres://u@h/db") == "postgres://u@h/db"
    my, _ = database_url(MY)
    assert mask_url(my).startswith("mysql://app%20user:***@db.internal:3307/shop?")


def _fake_relay(tmp_path: Path) -> Path:
    """An executable that records its arguments and the database URL it was given."""
    script = tmp_path / "fake-conveyor"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "with open(os.environ['FAKE_RELAY_OUT'], 'w') as f:\n"
        "    json.dump({'argv': sys.argv[1:], 'url': os.environ.get('CONVEYOR_DATABASE__URL'),\n"
        "               'url_file': os.environ.get('CONVEYOR_DATABASE__URL_FILE')}, f)\n"
        "sys.exit(int(os.environ.get('FAKE_RELAY_EXIT', '0')))\n"
    )
    script.chmod(0o755)
    return script


def test_binary_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_relay(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    inv = build_invocation(PG, [], binary="fake-conveyor")
    assert inv.argv == [str(fake), "run"]
    assert build_invocation(PG, ["--", "check"], binary=str(fake)).argv[1:] == ["check"]
    assert build_invocation(PG, ["--config", "a.yaml"], binary=str(fake)).argv[1:] == [
        "run",
        "--config",
        "a.yaml",
    ]
    with pytest.raises(RelayError, match=r"'conveyor' is not on PATH.*make build"):
        build_invocation(PG, [], binary="conveyor")
    with pytest.raises(RelayError, match="does not exist or is not executable"):
        build_invocation(PG, [], binary=str(tmp_path / "missing"))
    (tmp_path / "plain").write_text("")
    with pytest.raises(RelayError, match="not executable"):
        build_invocation(PG, [], binary=str(tmp_path / "plain"))


def _call(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("conveyor_relay", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_print_masks_the_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_relay(tmp_path)
    monkeypatch.setitem(connections.settings, "pg", PG)
    out, err = _call("--database", "pg", "--binary", str(fake), "--print", "run", "-x")
    assert out.strip() == (
        f"{DATABASE_URL_ENV}=postgres://app%20user:***@db.internal:5433/shop?"
        f"sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem {fake} run -x"
    )
    assert "isolation_level" in err
    for text in (out, err):
        assert "p%40ss" not in text and "w/rd" not in text and "w%2Frd" not in text


@pytest.mark.django_db
def test_runs_the_relay_with_the_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_relay(tmp_path)
    record = tmp_path / "out.json"
    monkeypatch.setenv("FAKE_RELAY_OUT", str(record))
    _call("--binary", str(fake), "--no-exec", "status", "--json")
    got = json.loads(record.read_text())
    assert got["argv"] == ["status", "--json"]
    expected, _ = database_url(connection.settings_dict)
    assert got["url"] == expected
    assert got["url_file"] == ""  # clears a url_file from the user's config files

    monkeypatch.setenv("FAKE_RELAY_EXIT", "3")
    with pytest.raises(CommandError, match="exited with status 3") as info:
        _call("--binary", str(fake), "--no-exec")
    assert info.value.returncode == 3


@pytest.mark.django_db
def test_command_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = str(_fake_relay(tmp_path))
    with pytest.raises(CommandError, match="is not on PATH"):
        _call("--binary", "no-such-conveyor-binary", "--print")
    with pytest.raises(CommandError, match="'nope' is not a key of DATABASES"):
        _call("--database", "nope", "--binary", fake, "--print")
    monkeypatch.setitem(
        connections.settings, "my", {"ENGINE": "django.db.backends.oracle", "NAME": "shop"}
    )
    with pytest.raises(CommandError, match="the relay runs on PostgreSQL, MySQL/MariaDB"):
        _call("--database", "my", "--binary", fake, "--print")


@pytest.mark.django_db
@override_settings(CONVEYOR={"RELAY_BINARY": "/nonexistent/conveyor"})
def test_relay_binary_setting() -> None:
    with pytest.raises(CommandError, match=r"'/nonexistent/conveyor' .*RELAY_BINARY"):
        _call("--print")


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "django", "conveyor_relay", *args],
        cwd=PYTHON_DIR,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(PYTHON_DIR / "src"), str(PYTHON_DIR)]),
            "DJANGO_SETTINGS_MODULE": "tests.settings_sqlite",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_exec_replaces_the_process(tmp_path: Path) -> None:
    """From the command line the relay replaces manage.py: its exit status is the process's."""
    fake = _fake_relay(tmp_path)
    record = tmp_path / "out.json"
    done = _manage(
        "--binary",
        str(fake),
        "--",
        "check",
        "--config",
        "x.yaml",
        env={"FAKE_RELAY_OUT": str(record), "FAKE_RELAY_EXIT": "7"},
    )
    assert done.returncode == 7, done.stderr
    got = json.loads(record.read_text())
    assert got["argv"] == ["check", "--config", "x.yaml"]
    assert got["url"].startswith("sqlite:////") and got["url"].endswith("conveyor-dev.sqlite3")


def _real_relay() -> str | None:
    binary = os.environ.get("CONVEYOR_TEST_RELAY_BINARY") or str(REPO / "bin" / "conveyor")
    if not os.access(binary, os.X_OK):
        return None
    # CONVEYOR_*__* overrides came with `conveyor config print` (issue #6).
    probe = subprocess.run(
        [binary, "config", "--help"], capture_output=True, text=True, timeout=30, check=False
    )
    return binary if probe.returncode == 0 else None


def _run_real_relay(tmp_path: Path, *args: str) -> str:
    """Run bin/conveyor with only the environment conveyor_relay builds."""
    binary = _real_relay()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("bin/conveyor is missing or predates CONVEYOR_* overrides: make build")
        pytest.skip("bin/conveyor is missing or predates CONVEYOR_* overrides (make build)")
    invocation = build_invocation(connection.settings_dict, args, binary=binary)
    done = subprocess.run(
        invocation.argv,
        env={**os.environ, **invocation.env},
        cwd=tmp_path,  # no ./db.sqlite3 here: the relay must use the URL it was given
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.django_db
def test_real_relay_config_has_djangos_database(tmp_path: Path) -> None:
    """Django's database wins over the user's config files, url_file included."""
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("database:\n  url_file: /nonexistent/database-url\n")
    base = str(REPO / "deploy" / "config" / "base.yaml")
    printed = _run_real_relay(
        tmp_path, "config", "print", "--config", base, "--config", str(overlay)
    )
    url, _ = database_url(connection.settings_dict)
    assert url.rpartition("@")[2] in printed  # the host and database (or the file) we gave
    password = connection.settings_dict.get("PASSWORD")
    assert not password or password not in printed  # redacted


@pytest.mark.django_db(transaction=True)
def test_real_relay_counts_djangos_events(tmp_path: Path) -> None:
    with transaction.atomic():
        events = publish_many([EventSpec("a", {}), EventSpec("b", {})])
    Event.objects.filter(pk=events[1].pk).update(status=Status.DEAD)
    counts = json.loads(_run_real_relay(tmp_path, "status", "--json"))
    assert (counts["pending"], counts["dead"]) == (1, 1)
