"""Secrets written into a cluster file: credential shapes anywhere, literal values under secret-sounding names."""

from __future__ import annotations

import re
from typing import Any, Iterator

# Credentials with a recognisable shape, wherever they appear.
SECRET_SHAPES = {
    "an AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "a private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "a GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "a Hugging Face token": re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"),
    "a Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "a URL with a password": re.compile(r"://[^/\s:@$]+:[^/\s@$]+@"),
}
_SECRET_WORD = r"(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|secret[_-]?key|private[_-]?key|credentials?)"
_SECRET_NAME = re.compile(rf"(?i){_SECRET_WORD}$")
# NAME=value / NAME: value / --name=value inside a string (shell commands, runtimeEnvYAML).
_ASSIGNMENT = re.compile(r"(?<![\w.-])(-{0,2}[\w.-]+)[ \t]*[=:][ \t]*([\"']?)([^\s\"';&|)]+)")


def find_secrets(doc: Any) -> list[str]:
    """One problem per secret written out in ``doc``, key path first."""
    problems: list[str] = []
    for where, key, value in _walk(doc):
        if key is not None and isinstance(value, str) and is_secret_name(key) and is_literal(value):
            problems.append(f"{where}: looks like a committed secret; take it from the environment or a secret store")
            continue
        if not isinstance(value, str):
            continue
        for what, pattern in SECRET_SHAPES.items():
            if pattern.search(value):
                problems.append(f"{where}: contains {what}; take it from the environment or a secret store")
        for match in _ASSIGNMENT.finditer(value):
            if is_secret_name(match.group(1)) and is_literal(match.group(3)):
                problems.append(f"{where}: {match.group(1)} is set to a literal value; read it from the environment "
                                "or a file that is not committed")
    return problems


def _walk(node: Any, where: str = "", key: str | None = None) -> Iterator[tuple[str, str | None, Any]]:
    """(key path, the name the value goes by, value) for every scalar; an env entry
    ``{name: X, value: V}`` gives V the name X."""
    if isinstance(node, dict):
        env_name = node.get("name") if isinstance(node.get("name"), str) and "value" in node else None
        for k, v in node.items():
            path = f"{where}.{k}" if where else str(k)
            yield from _walk(v, path, env_name if (k == "value" and env_name) else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{where}[{i}]", None)
    else:
        yield where or "<root>", key, node


def is_secret_name(name: str) -> bool:
    """``MLFLOW_TRACKING_PASSWORD``, ``adminPassword``, ``--api-key``; not ``RAY_AUTH_TOKEN_PATH``,
    ``secretName`` or ``HttpTokens``, which name where a secret is or something else."""
    return bool(_SECRET_NAME.search(name.lstrip("-")))


def is_literal(value: str) -> bool:
    """A value written out, not a reference to one (``$VAR``, ``$(cat f)``, ``%s``, ``<fill-in>``, a path)."""
    value = value.strip()
    return len(value) >= 4 and not value.startswith(("$", "%", "<", "{", "~", "/", "./", "*")) and value.lower() not in (
        "null", "none", "true", "false", "changeme", "change-me")
