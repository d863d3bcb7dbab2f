"""Which addresses Goalkeeper may reach for an A2A agent, checked on every request.

A registered agent's card URL, its `jku`, each redirect and each interface URL the bridge
calls come from whoever registers the agent or from the agent itself: without a check
they could make Goalkeeper call its own network (cloud metadata at 169.254.169.254, an
admin port on loopback, internal services). Every request of the A2A client goes
through `GuardedTransport`, which resolves the host, refuses it unless each address is
public or the operator listed it (GOALKEEPER_A2A_ALLOWED_HOSTS), and connects to the
address it checked, so a name cannot resolve elsewhere between the check and the call.
"""

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Any

import httpx

from goalkeeper.errors import GoalkeeperError

SETTING = "GOALKEEPER_A2A_ALLOWED_HOSTS"
MAX_REDIRECTS = 3
"""Redirects followed to reach a card or its keys, each to an address checked again."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAME = re.compile(r"([a-z0-9]([a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\])(:[0-9]{1,5})?")


class AddressRefused(GoalkeeperError):
    """A URL an A2A agent's card or its operator named that Goalkeeper may not call."""

    def __init__(self, url: str, reason: str, *, listable: bool = True) -> None:
        hint = f"; to call it, list it in {SETTING} (a name, name:port or CIDR range)"
        super().__init__(f"refused to call {url}: {reason}{hint if listable else ''}")
        self.url, self.reason = url, reason


@dataclass(frozen=True)
class Reach:
    """The non-public hosts the operator lets Goalkeeper call: names (any port, or one
    port) and address ranges. Public addresses are always allowed."""

    names: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: tuple[str, ...] | list[str], setting: str = SETTING) -> "Reach":
        """Entries as the setting gives them; ValueError naming the one that is none of
        a host name, `name:port`, an address or a CIDR range."""
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            if not _NAME.fullmatch(entry):
                raise ValueError(
                    f"{setting} must be host names, name:port, addresses or CIDR ranges "
                    f"(comma-separated), got {raw!r}"
                )
            names.add(entry)
        return cls(frozenset(names), tuple(networks))

    def allows_name(self, host: str, port: int) -> bool:
        """Whether the host was listed by name, at any port or this one."""
        host = host.lower()
        shown = f"[{host}]" if ":" in host else host
        return bool({host, shown, f"{shown}:{port}"} & self.names)

    def allows_address(self, address: IPAddress) -> bool:
        """Whether an address may be called: a public one, or one in a listed range."""
        if any(address in network for network in self.networks):
            return True
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            return self.allows_address(address.ipv4_mapped)
        return address.is_global and not address.is_multicast


async def addresses_of(host: str, port: int) -> list[IPAddress]:
    """The addresses `host` resolves to (itself if it is one)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    found = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in found))


async def checked_addresses(url: httpx.URL, reach: Reach) -> list[IPAddress] | None:
    """The addresses to call `url` at, once checked; None where its host is listed by name
    (then it is called as the system resolves it). `AddressRefused` says why not."""
    if url.scheme not in ("http", "https"):
        raise AddressRefused(
            str(url), f"expected an http(s) URL, got scheme {url.scheme!r}", listable=False
        )
    host = url.host
    port = url.port or (443 if url.scheme == "https" else 80)
    if not host:
        raise AddressRefused(str(url), "expected a host in the URL, got none", listable=False)
    if reach.allows_name(host, port):
        return None
    try:
        found = await addresses_of(host, port)
    except OSError as exc:
        raise AddressRefused(str(url), f"its host {host!r} does not resolve: {exc}") from None
    refused = [a for a in found if not reach.allows_address(a)]
    if refused or not found:
        named = [str(a) for a in refused] != [host]  # a name, not an address itself
        where = f" (resolving to {', '.join(str(a) for a in refused) or 'nothing'})" * named
        raise AddressRefused(
            str(url),
            f"{host}{where} is not a public address: loopback, private, link-local, "
            "multicast and reserved ones are refused unless listed",
        )
    return found


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that checks each request's address against `reach` before it
    is sent (redirects included: each hop is a request of its own), and connects to the
    checked address (TLS still verifies the URL's host name)."""

    def __init__(self, reach: Reach, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.reach = reach
        self.inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        addresses = await checked_addresses(request.url, self.reach)
        if addresses is None or [str(a) for a in addresses] == [request.url.host]:
            return await self.inner.handle_async_request(request)
        failure: httpx.ConnectError | None = None
        for address in addresses:  # in the resolver's order, as a client would try them
            extensions: dict[str, Any] = {"sni_hostname": request.url.host, **request.extensions}
            pinned = httpx.Request(
                request.method,
                request.url.copy_with(host=str(address)),
                headers=request.headers,  # its Host header still names the URL's host
                stream=request.stream,  # not yet read: a refused connection sends nothing
                extensions=extensions,
            )
            try:
                return await self.inner.handle_async_request(pinned)
            except httpx.ConnectError as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def aclose(self) -> None:
        await self.inner.aclose()


def guarded_client(reach: Reach) -> httpx.AsyncClient:
    """An httpx client that calls only what `reach` allows. It takes no proxy from the
    environment: a proxy's transport would bypass the check."""
    return httpx.AsyncClient(
        transport=GuardedTransport(reach), trust_env=False, max_redirects=MAX_REDIRECTS
    )
