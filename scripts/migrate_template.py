#!/usr/bin/env python3
"""Run the real django-conveyor migrations into one database.

Used by `scripts/services.sh templates` to build the template databases that the Go
tests clone. Standalone: no Django project is needed, only the repository's venv.

    .venv/bin/python scripts/migrate_template.py --database URL

URL forms:
    postgres://user:password@host:port/dbname?sslmode=disable   (also postgresql://)
    mysql://user:password@host:port/dbname                      (also mariadb://)
    sqlite:///absolute/path/to/file.sqlite3

The password is never printed: messages show the URL with it replaced by ***.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "python" / "src"


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[-1]}"))


def database_settings(url: str) -> dict:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    options = dict(parse_qsl(parts.query))
    if scheme == "sqlite":
        # sqlite:///abs/path -> path "/abs/path"
        path = unquote(parts.path)
        if parts.netloc or not path.startswith("/"):
            raise ValueError("sqlite URL must be sqlite:///absolute/path")
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": path}

    if scheme in ("postgres", "postgresql", "pgsql"):
        engine, default_port = "django.db.backends.postgresql", 5432
    elif scheme in ("mysql", "mariadb"):
        engine, default_port = "django.db.backends.mysql", 3306
        options.setdefault("charset", "utf8mb4")
    else:
        raise ValueError(f"unsupported database URL scheme {scheme!r}")

    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ValueError("database URL has no database name")
    return {
        "ENGINE": engine,
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or default_port),
        "OPTIONS": options,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True, help="database URL (see module docstring)")
    args = parser.parse_args(argv)
    shown = redact(args.database)

    try:
        db = database_settings(args.database)
    except ValueError as exc:
        print(f"migrate_template: {exc}: {shown}", file=sys.stderr)
        return 2

    if db["ENGINE"].endswith(".mysql"):
        try:
            import MySQLdb  # noqa: F401
        except ImportError:
            try:  # PyMySQL can stand in for mysqlclient.
                import pymysql

                pymysql.install_as_MySQLdb()
            except ImportError:
                print(
                    "migrate_template: the MySQL driver is not installed in this venv "
                    "(pip install mysqlclient)",
                    file=sys.stderr,
                )
                return 2

    sys.path.insert(0, str(SRC))
    os.environ.pop("DJANGO_SETTINGS_MODULE", None)

    import django
    from django.conf import settings
    from django.core.management import call_command

    settings.configure(
        INSTALLED_APPS=["conveyor"],
        DATABASES={"default": db},
        USE_TZ=True,
        TIME_ZONE="UTC",
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        LOGGING_CONFIG=None,
    )
    django.setup()

    from django.db import connection

    try:
        call_command("migrate", verbosity=0, interactive=False)
        tables = connection.introspection.table_names()
    except Exception as exc:  # report without leaking the DSN
        msg = str(exc)
        if db.get("PASSWORD"):
            msg = msg.replace(db["PASSWORD"], "***")
        print(f"migrate_template: migrate failed on {shown}: {type(exc).__name__}: {msg}", file=sys.stderr)
        return 1
    finally:
        connection.close()

    if "conveyor_event" not in tables:
        print(f"migrate_template: migrate ran but conveyor_event is missing on {shown}", file=sys.stderr)
        return 1
    print(f"migrate_template: migrated {shown} ({', '.join(sorted(tables))})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
