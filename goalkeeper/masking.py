"""Secrets kept out of output and logs: passwords in URLs, webhook paths, keys and tokens.

What is secret comes from the environment (`secrets_of`): the password of any URL in
it, the path and query of the alert webhook, and the values of variables named like a
key, token, secret or password. `mask` hides those wherever they appear, and any URL's
password even when nobody named it; `SecretFilter` does the same to log records.
"""

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote

MASK = "****"

MIN_SECRET_LENGTH = 8
"""Shorter values turn up by chance in ordinary text, so they are masked only where they
stand in a URL (as its password) or after `password=`."""

WEBHOOK_VARIABLE = "GOALKEEPER_ALERT_WEBHOOK"

_SECRET_NAME = re.compile(r"(KEYS?|TOKENS?|SECRETS?|PASSWORD|PASSWD|CREDENTIALS?)$", re.I)
"""Environment variables whose whole value is a secret (API keys, codec keys, PGPASSWORD)."""

_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]{0,30}://[^\s:/@]*:)([^\s/]*)(?=@)")
"""`scheme://user:` and the password after it; greedy up to the authority's last `@`, as
URL parsers read it, so an unescaped `@` in a password does not leave its tail shown.
Repeats are bounded where a long run of letters could make matching slow."""

_PASSWORD_SETTING = re.compile(r"(?i)(\b\w{0,30}?passw(?:or)?d=['\"]?)([^\s&;,'\")]+)")
"""`password=...` in a libpq connection string, a query string or a repr."""

_SECRET_PARAMETER = re.compile(
    r"(?i)([?&;][\w.-]{0,30}?(?:passw(?:or)?d|secret|token|key)[\w.-]{0,30}=)([^&#\s]*)"
)
"""A URL's query parameter that holds a secret (`?sslpassword=`, `&token=`)."""

_WEB_SCHEMES = ("http", "https")


def mask_url(url: str) -> str:
    """`url` fit to print: its password masked and, for a web URL (the alert webhook),
    everything after the host, since a webhook's path and query are what grant access.

    `postgresql://goalkeeper:****@db:5432/goalkeeper`, `https://hooks.slack.com/****`.
    """
    parts = _split(url)
    if parts is None:
        return mask(url)
    scheme, userinfo, host, tail = parts
    user, _, password = userinfo.removesuffix("@").partition(":")
    if password:
        userinfo = f"{user}:{MASK}@"
    if scheme.lower() in _WEB_SCHEMES:
        tail = f"/{MASK}" if tail.strip("/") else tail
    else:
        tail = _SECRET_PARAMETER.sub(lambda m: m[1] + (MASK if m[2] else ""), tail)
    return f"{scheme}://{userinfo}{host}{tail}"


def _split(url: str) -> tuple[str, str, str, str] | None:
    """`url` as its scheme, its userinfo with the `@` (or ""), its host and port, and the
    rest; None if it is no URL. Read as URL parsers do: the host follows the last `@`
    before the path, so a password with an unescaped `@` stays whole."""
    scheme, sep, rest = url.strip().partition("://")
    if not sep:
        return None
    head, slash, path = rest.partition("/")
    userinfo, at, host = head.rpartition("@")
    cut = min((host.find(c) for c in "?#" if c in host), default=len(host))
    return scheme, userinfo + at, host[:cut], host[cut:] + slash + path


def mask(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every one of `secrets` replaced by the mask, longest first, and every
    URL's password and every `password=` value masked as well."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(lambda m: m[1] + (MASK if m[2] else ""), text)
    return _PASSWORD_SETTING.sub(lambda m: m[1] + MASK, text)


def mask_values(value: Any, secrets: Iterable[str] = ()) -> Any:
    """`value` (JSON: dicts, lists, text, numbers) with every text in it masked as `mask`
    does; walked without recursion, so any depth, and never as one string, so masking
    cannot break the JSON apart."""
    root: list[Any] = [value]
    pending: list[tuple[Any, Any]] = [(root, 0)]
    while pending:
        holder, key = pending.pop()
        item = holder[key]
        if isinstance(item, str):
            holder[key] = mask(item, secrets)
        elif isinstance(item, dict):
            copy = dict(item)
            holder[key] = copy
            pending.extend((copy, k) for k in copy)
        elif isinstance(item, list):
            copy_list = list(item)
            holder[key] = copy_list
            pending.extend((copy_list, n) for n in range(len(copy_list)))
    return root[0]


def secrets_of(env: Mapping[str, str]) -> tuple[str, ...]:
    """The secret values an environment holds, to mask wherever they turn up."""
    found: set[str] = set()
    for name, value in env.items():
        if name == WEBHOOK_VARIABLE:
            found.update(_webhook_secrets(value))
        elif _SECRET_NAME.search(name):
            found.update(_named_secrets(value))
        if "://" in value:
            found.update(_url_secrets(value))
    return tuple(sorted(s for s in found if len(s) >= MIN_SECRET_LENGTH))


def _webhook_secrets(url: str) -> set[str]:
    """A webhook's path and query (`services/T0/B0/XXXX`): mask them and the URL prints as
    `https://hooks.slack.com/****`."""
    parts = _split(url)
    tail = parts[3].lstrip("/") if parts else ""
    return {tail, unquote(tail)} if tail else set()


def _named_secrets(value: str) -> set[str]:
    """A secret variable's value, and each of its entries (`ID:KEY, ID:KEY`) and keys."""
    found = {value.strip()}
    for entry in re.split(r"[,\s]+", value.strip()):
        found |= {entry, entry.partition(":")[2]}
    return found


def _url_secrets(url: str) -> set[str]:
    """A URL's password, as written and decoded; one that is also the URL's user or
    database (docker-compose's `goalkeeper:goalkeeper`) is masked only in its place in a
    URL, since masking it everywhere would hide the names that output must show."""
    parts = _split(url)
    if parts is None:
        return set()
    _, userinfo, _, tail = parts
    user, _, password = userinfo.removesuffix("@").partition(":")
    database = tail.lstrip("/").partition("?")[0]
    shown = {user, unquote(user), database, unquote(database)}
    return {password, unquote(password)} - shown - {""}


class SecretFilter(logging.Filter):
    """Masks secrets in a log record's message, arguments, traceback and stack; drops none.

    Args:
        secrets: values to mask wherever they appear (see `secrets_of`); any URL's
            password is masked whether named here or not.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(secrets)

    def mask(self, text: str) -> str:
        return mask(text, self.secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # logging reports the bad format itself, later
            return True
        masked = self.mask(message)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and not record.exc_text:
            text = logging.Formatter().formatException(record.exc_info)
            if self.mask(text) != text:  # else the handler's formatter formats it, as ever
                record.exc_text = self.mask(text)
        elif record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        return True
