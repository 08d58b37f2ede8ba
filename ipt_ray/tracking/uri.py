"""The tracking URI, always absolute: Tune trials and ``ray job`` entrypoints run in other working
directories and would otherwise open a different store."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

_BARE_SERVER_URIS = ("databricks", "databricks-uc", "uc")  # scheme-less URIs MLflow treats as servers


def resolve_tracking_uri(uri: str | None, base_dir: Path | None = None) -> str:
    """The tracking URI to use, always absolute.

    ``uri``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<base_dir or cwd>/mlflow.db``. Relative
    sqlite paths and plain/``file:`` paths are made absolute against ``base_dir`` (default: cwd), because
    Tune trials and ``ray job`` entrypoints run in other working directories and would otherwise open
    a different store. Server URIs (``http(s)://``, ``databricks``, other databases) pass unchanged.
    """
    base = Path(os.path.abspath(os.path.expanduser(base_dir))) if base_dir is not None else Path.cwd()
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or None
    if uri is None:
        return f"sqlite:///{base / 'mlflow.db'}"
    if uri.startswith("sqlite:"):
        return _absolute_sqlite(uri, base)
    scheme = urlparse(uri).scheme
    if uri in _BARE_SERVER_URIS:
        return uri
    if scheme == "file":
        return _absolute_file(uri, base)
    if scheme == "" or (len(scheme) == 1 and os.name == "nt"):  # a plain path (or a Windows drive letter)
        return _as_file_uri(uri, base)
    return uri


def is_http(uri: str) -> bool:
    """Whether ``uri`` names an HTTP(S) tracking server (the stores that can go away)."""
    return urlparse(uri).scheme in ("http", "https")


def sqlite_path(uri: str) -> Path | None:
    """The database file of an absolute ``sqlite:///`` URI; None for anything else."""
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///"):].partition("?")[0]
        if path.startswith("/"):
            return Path(path)
    return None


def _absolute_sqlite(uri: str, base: Path) -> str:
    """``sqlite:///rel.db`` -> ``sqlite:////base/rel.db``; absolute and in-memory stores unchanged."""
    if not uri.startswith("sqlite:///"):
        return uri  # sqlite:// (in memory)
    rest = uri[len("sqlite:///"):]
    path, sep, query = rest.partition("?")
    if path in ("", ":memory:") or path.startswith("/"):
        return uri
    absolute = os.path.normpath(base / os.path.expanduser(path))
    return f"sqlite:///{absolute}{sep}{query}"


def _absolute_file(uri: str, base: Path) -> str:
    parsed = urlparse(uri)
    if parsed.netloc not in ("", "localhost"):
        return uri  # file://host/share: leave it to MLflow
    if uri.startswith("file://"):
        return uri if parsed.path.startswith("/") else _as_file_uri(parsed.path, base)
    return _as_file_uri(uri[len("file:"):], base)  # file:relative/path or file:/abs/path


def _as_file_uri(path: str, base: Path) -> str:
    return Path(os.path.normpath(base / os.path.expanduser(path))).as_uri()
