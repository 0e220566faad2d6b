"""Run the Go relay against Django's own database: the DSN comes from ``DATABASES``.

``manage.py conveyor_relay`` is the user-facing command; this module builds what it runs:
the binary (``CONVEYOR["RELAY_BINARY"]``, a path or a name on PATH), the arguments, and the
environment, where ``CONVEYOR_DATABASE__URL`` carries the database URL. The relay applies
``CONVEYOR_*__*`` variables over its config files (``database.url`` here, and an empty
``database.url_file`` so a file in the user's config cannot clash), so the URL never appears
on a command line (``ps``) and the rest of the config stays the user's.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from conveyor.exceptions import ConveyorError

DATABASE_URL_ENV: Final = "CONVEYOR_DATABASE__URL"
# Emptied, so a database.url_file in the user's config files does not clash with the URL.
DATABASE_URL_FILE_ENV: Final = "CONVEYOR_DATABASE__URL_FILE"

# libpq connection parameters that pgx reads from a URL's query string. Other OPTIONS are
# Django's own (isolation_level, pool, server_side_binding, ...) and mean nothing there.
PG_URL_OPTIONS: Final = frozenset(
    {
        "application_name",
        "connect_timeout",
        "options",
        "passfile",
        "service",
        "servicefile",
        "sslcert",
        "sslkey",
        "sslmode",
        "sslnegotiation",
        "sslpassword",
        "sslrootcert",
        "sslsni",
        "target_session_attrs",
    }
)


# Settings of the mysqlclient/PyMySQL OPTIONS that the relay understands (as URL
# parameters); every other OPTIONS key (init_command, isolation_level, sql_mode, ...) is
# Django's or the Python driver's own.
MYSQL_SSL_MODES: Final = {
    # ssl_mode -> the relay's tls= (github.com/go-sql-driver/mysql). VERIFY_CA is checked
    # as strictly as VERIFY_IDENTITY: Go verifies the host name with the chain.
    "DISABLED": "false",
    "PREFERRED": "preferred",
    "REQUIRED": "skip-verify",
    "VERIFY_CA": "true",
    "VERIFY_IDENTITY": "true",
}


class RelayError(ConveyorError):
    """The relay cannot be run with this project's settings."""


@dataclass(frozen=True, slots=True)
class RelayInvocation:
    """What to execute: ``argv`` with ``env`` added to this process's environment."""

    argv: list[str]
    env: dict[str, str]
    database_url: str  # also in env; kept for display, masked
    ignored_options: list[str] = field(default_factory=list)

    def display(self) -> str:
        """The command line and the environment it adds, with the password masked."""
        return f"{DATABASE_URL_ENV}={mask_url(self.database_url)} " + " ".join(
            shlex.quote(a) for a in self.argv
        )


def find_binary(name: str) -> str:
    """Resolve ``RELAY_BINARY``: a path to an executable, or a name looked up on PATH."""
    if os.sep in name or (os.altsep and os.altsep in name):
        path = Path(name).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return str(path.resolve())
        raise RelayError(
            f'The relay binary {name!r} (CONVEYOR["RELAY_BINARY"]) does not exist or is not '
            "executable. Build it with `make build` (it lands in bin/conveyor) or install a "
            "release, and point RELAY_BINARY at it."
        )
    found = shutil.which(name)
    if found is None:
        raise RelayError(
            f"The relay binary {name!r} is not on PATH. Build it with `make build` (it lands "
            "in bin/conveyor) or install a release, then put it on PATH or set CONVEYOR = "
            '{"RELAY_BINARY": "/path/to/conveyor"}.'
        )
    return found


def database_url(
    settings_dict: Mapping[str, Any], *, alias: str = "default"
) -> tuple[str, list[str]]:
    """Build the relay's ``database.url`` from one ``DATABASES`` entry.

    Returns the URL and the OPTIONS keys left out (Django-only settings). Raises RelayError
    for a database the relay cannot use."""
    engine = str(settings_dict.get("ENGINE", ""))
    if "postgresql" in engine or "postgis" in engine:
        return _postgres_url(settings_dict)
    if "sqlite3" in engine or "spatialite" in engine:
        return _sqlite_url(settings_dict, alias), []
    if "mysql" in engine:
        return _mysql_url(settings_dict, alias)
    raise RelayError(
        f"DATABASES[{alias!r}] uses {engine or 'no ENGINE'}; the relay runs on PostgreSQL, "
        "MySQL/MariaDB and SQLite."
    )


def _userinfo(user: str, password: str) -> str:
    # Every part is percent-encoded (safe=""), so no character of a password can end the
    # userinfo, and no "$" can start a ${VAR} in the relay's interpolation.
    if not (user or password):
        return ""
    userinfo = quote(user, safe="")
    if password:
        userinfo += ":" + quote(password, safe="")
    return userinfo + "@"


def _mysql_url(db: Mapping[str, Any], alias: str) -> tuple[str, list[str]]:
    """mysql://user:password@host:port/name?params for github.com/go-sql-driver/mysql."""
    host = str(db.get("HOST") or "")
    port = str(db.get("PORT") or "")
    name = str(db.get("NAME") or "")
    if not name:
        raise RelayError(f"DATABASES[{alias!r}] has no NAME; the relay needs the database name.")
    query: dict[str, str] = {}
    ignored: list[str] = []
    options = dict(db.get("OPTIONS") or {})
    socket = options.pop("unix_socket", None)
    if host.startswith("/"):
        socket = host
    if socket:
        query["socket"] = str(socket)
    for key, value in sorted(options.items()):
        if value is None:
            continue
        if key == "ssl" and isinstance(value, Mapping):
            for part in ("ca", "cert", "key"):
                if value.get(part):
                    query[f"ssl-{part}"] = str(value[part])
            unused = sorted(set(value) - {"ca", "cert", "key"})
            ignored.extend(f"ssl.{part}" for part in unused)
            query.setdefault("tls", "true")
        elif key == "ssl_mode" and str(value).upper() in MYSQL_SSL_MODES:
            query["tls"] = MYSQL_SSL_MODES[str(value).upper()]
        elif key == "connect_timeout":
            query["timeout"] = f"{value}s"
        elif key == "charset":
            query["charset"] = str(value)
        else:
            ignored.append(str(key))
    if query.get("tls") == "false":
        for part in ("ca", "cert", "key"):
            query.pop(f"ssl-{part}", None)
    netloc = _userinfo(str(db.get("USER") or ""), str(db.get("PASSWORD") or ""))
    if not socket:
        host = host or "localhost"
        netloc += f"[{host}]" if ":" in host else quote(host, safe="")
        if port:
            netloc += f":{port}"
    url = f"mysql://{netloc}/{quote(name, safe='')}"
    return (f"{url}?{urlencode(sorted(query.items()))}" if query else url), ignored


def _postgres_url(db: Mapping[str, Any]) -> tuple[str, list[str]]:
    user = str(db.get("USER") or "")
    password = str(db.get("PASSWORD") or "")
    host = str(db.get("HOST") or "")
    port = str(db.get("PORT") or "")
    name = str(db.get("NAME") or "")
    query: dict[str, str] = {}
    ignored: list[str] = []
    for key, value in sorted((db.get("OPTIONS") or {}).items()):
        if key in PG_URL_OPTIONS and value is not None:
            query[key] = str(value)
        else:
            ignored.append(str(key))
    netloc = _userinfo(user, password)
    if host.startswith("/"):  # a Unix socket directory
        query["host"] = host
    elif host:
        netloc += f"[{host}]" if ":" in host else quote(host, safe="")
    if port:
        if host.startswith("/"):
            query["port"] = port
        else:
            netloc += f":{port}"
    path = "/" + quote(name, safe="")
    url = f"postgres://{netloc}{path}"  # not urlunsplit: it drops // before an empty host
    return (f"{url}?{urlencode(query)}" if query else url), ignored


def _sqlite_url(db: Mapping[str, Any], alias: str) -> str:
    name = str(db.get("NAME") or "")
    if not name or name == ":memory:" or "mode=memory" in name:
        raise RelayError(
            f"DATABASES[{alias!r}] is an in-memory SQLite database, which only this process "
            "can see; give it a file NAME so the relay can open it."
        )
    if name.startswith("file:"):
        raise RelayError(
            f"DATABASES[{alias!r}] NAME {name!r} is a SQLite URI; use a plain file path."
        )
    path = os.path.abspath(os.fspath(name))
    return "sqlite:///" + quote(path, safe="/")  # absolute: sqlite:////abs/path


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.netloc.rpartition("@")[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def build_invocation(
    settings_dict: Mapping[str, Any],
    args: Sequence[str],
    *,
    binary: str,
    alias: str = "default",
) -> RelayInvocation:
    """The relay command for ``args`` (``run`` when empty or starting with an option)."""
    executable = find_binary(binary)
    url, ignored = database_url(settings_dict, alias=alias)
    rest = list(args)
    if rest and rest[0] == "--":
        rest = rest[1:]
    if not rest or rest[0].startswith("-"):
        rest = ["run", *rest]
    return RelayInvocation(
        argv=[executable, *rest],
        env={DATABASE_URL_ENV: url, DATABASE_URL_FILE_ENV: ""},
        database_url=url,
        ignored_options=ignored,
    )


__all__ = [
    "DATABASE_URL_ENV",
    "DATABASE_URL_FILE_ENV",
    "MYSQL_SSL_MODES",
    "RelayError",
    "RelayInvocation",
    "build_invocation",
    "database_url",
    "find_binary",
    "mask_url",
]
