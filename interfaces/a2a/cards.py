"""An A2A agent's card: fetched from its well-known path, bounded, parsed, its signature checked.

Every fetch goes through the client it is given: the bridge's and the CLI's check each
address (interfaces/a2a/reach.py), so a redirect is followed only to an allowed one.
A card that is signed counts only if one of its signatures verifies (JWS over the card's
canonical form, as `a2a-sdk` signs it) with a key the operator pinned or, without one, the
key its `jku` names; a signed card that does not verify is refused, never used unsigned.
"""

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from a2a.client.card_resolver import parse_agent_card
from a2a.types import AgentCard
from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH
from a2a.utils.signing import SignatureVerificationError, create_signature_verifier
from google.protobuf.json_format import MessageToDict, ParseError
from jwt import PyJWK, PyJWKSet
from jwt.exceptions import PyJWTError
from jwt.utils import base64url_decode

from goalkeeper.errors import GoalkeeperError
from interfaces.a2a.reach import MAX_REDIRECTS, AddressRefused

MAX_CARD_BYTES = 256 * 1024
"""Larger cards are refused: a card is a page of metadata, not a payload."""
FETCH_SECONDS = 10.0
ALGORITHMS = ["EdDSA", "ES256", "ES384", "RS256", "PS256"]
"""The asymmetric algorithms a card's signature may use: never HS*, whose key is shared."""


class CardRefused(GoalkeeperError):
    """An agent card that cannot be used: unreachable, malformed, or wrongly signed."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"agent card at {url} refused: {reason}")
        self.url, self.reason = url, reason


@dataclass(frozen=True)
class Card:
    """A card as fetched: the parsed card, its JSON, and whether a signature verified."""

    url: str
    card: AgentCard
    document: dict[str, Any]
    signed: bool

    @property
    def skills(self) -> list[str]:
        """The card's skills as Goalkeeper skills: each skill's id and its tags."""
        found = [s.id for s in self.card.skills if s.id]
        found += [tag for s in self.card.skills for tag in s.tags]
        return list(dict.fromkeys(t.strip() for t in found if t.strip()))


def card_url(url: str) -> str:
    """The card's address: `url` itself if it names a .json, else its well-known path."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CardRefused(url, "expected an http(s) URL of an A2A agent")
    if parts.path.endswith(".json"):
        return url
    return url.rstrip("/") + AGENT_CARD_WELL_KNOWN_PATH


async def fetch_card(
    url: str, http: httpx.AsyncClient, pinned_key: dict[str, Any] | None = None
) -> Card:
    """Fetch, parse and verify the card of the agent at `url`; `CardRefused` says why not.

    `pinned_key` (a public JWK) is the key the card must be signed with: given, an
    unsigned card is refused too.
    """
    where = card_url(url)
    body = await _get(where, http)
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CardRefused(where, f"expected a JSON agent card, got {body[:80]!r}: {exc}") from None
    if not isinstance(document, dict):
        raise CardRefused(where, f"expected a JSON object, got {type(document).__name__}")
    try:
        card = parse_agent_card(json.loads(body))
    except (ParseError, ValueError, TypeError) as exc:
        raise CardRefused(where, f"not an A2A agent card: {exc}") from None
    if not card.name or not card.supported_interfaces:
        raise CardRefused(where, "expected a card with a name and an interface to reach it")
    if not card.skills:
        raise CardRefused(where, "expected at least one skill, got none")
    if not card.signatures and pinned_key is None:
        return Card(where, card, document, signed=False)
    keys = await _keys(where, card, http, pinned_key)
    verify = create_signature_verifier(lambda kid, jku: _key_for(keys, kid, where), ALGORITHMS)
    try:
        verify(card)
    except (SignatureVerificationError, CardRefused) as exc:
        raise CardRefused(where, f"its signature does not verify: {exc}") from None
    return Card(where, card, document, signed=True)


async def _get(url: str, http: httpx.AsyncClient) -> bytes:
    """At most MAX_CARD_BYTES from `url`, or `CardRefused`."""
    try:
        async with http.stream(
            "GET", url, timeout=FETCH_SECONDS, follow_redirects=True
        ) as response:
            if response.status_code != 200:
                raise CardRefused(url, f"expected HTTP 200, got {response.status_code}")
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_CARD_BYTES:
                    raise CardRefused(url, f"expected at most {MAX_CARD_BYTES} bytes, got more")
            return body
    except AddressRefused as exc:
        raise CardRefused(url, str(exc)) from None
    except httpx.TooManyRedirects:
        raise CardRefused(url, f"expected at most {MAX_REDIRECTS} redirects, got more") from None
    except httpx.HTTPError as exc:
        raise CardRefused(url, f"cannot be fetched: {exc or type(exc).__name__}") from None


async def _keys(
    where: str, card: AgentCard, http: httpx.AsyncClient, pinned: dict[str, Any] | None
) -> list[PyJWK]:
    """The keys the card's signatures may be checked with: the pinned one, else its `jku`s."""
    try:
        if pinned is not None:
            return [PyJWK(pinned)]
        found: list[PyJWK] = []
        for signature in card.signatures:
            header = json.loads(base64url_decode(signature.protected.encode()))
            jku = header.get("jku") if isinstance(header, dict) else None
            if isinstance(jku, str) and jku:
                try:
                    body = await _get(jku, http)
                except CardRefused as exc:
                    raise CardRefused(where, f"its key set (jku) {exc.reason}") from None
                found += PyJWKSet.from_dict(json.loads(body)).keys
        return found
    except (PyJWTError, ValueError, TypeError) as exc:
        raise CardRefused(where, f"its signing key cannot be read: {exc}") from None


def _key_for(keys: list[PyJWK], kid: str | None, where: str) -> PyJWK:
    for key in keys:
        if kid is None or key.key_id in (None, kid):
            return key
    raise CardRefused(where, f"no key {kid!r} to check its signature with")


def card_json(card: AgentCard) -> dict[str, Any]:
    """The card as JSON, as stored beside its agent."""
    return MessageToDict(card)
