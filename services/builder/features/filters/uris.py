"""UriPart: the parts of a URI as System.Uri reads and escapes them."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from services.builder.features.filters.dotnet import DOTNET_WHITESPACE, scalar

_DEFAULT_PORTS = {
    "http": 80,
    "https": 443,
    "ws": 80,
    "wss": 443,
    "ftp": 21,
    "gopher": 70,
    "nntp": 119,
    "news": -1,
    "telnet": 23,
    "ldap": 389,
    "mailto": 25,
    "net.tcp": 808,
    "net.pipe": -1,
    "file": -1,
}
_DNS_SCHEMES = {"http", "https", "ws", "wss", "ftp", "gopher", "nntp", "telnet", "ldap", "file"}
_SLASH_SCHEMES = {"http", "https", "ws", "wss", "ftp", "file"}
_RELATIVE_ERROR = "This operation is not supported for a relative URI."
_URI_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
_URI_QUERY_SAFE = _URI_PATH_SAFE + "?/"


@dataclass(frozen=True, slots=True)
class _Uri:
    """The parts of an absolute System.Uri, escaped as it escapes them."""

    scheme: str
    user_info: str
    host: str  # IPv6 in brackets
    port: int  # -1: none
    explicit_port: bool
    path: str
    query: str
    fragment: str
    authority: bool  # written with "//"
    host_type: str


def _parse_uri(text: str) -> _Uri | str | None:
    """``Uri.TryCreate(text, UriKind.RelativeOrAbsolute)``: an absolute URI, "relative",
    or None when it is neither."""
    text = text.strip(DOTNET_WHITESPACE)
    if re.match(r"[A-Za-z]:[\\/]", text):  # a DOS path is a file URI
        text = "file:///" + text.replace("\\", "/")
    scheme_match = re.match(r"([A-Za-z][A-Za-z0-9+.\-]*):", text)
    if scheme_match is None or len(scheme_match.group(1)) < 2:
        return "relative"
    scheme = scheme_match.group(1).lower()
    rest = text[scheme_match.end() :]
    if scheme in _SLASH_SCHEMES:
        rest = rest.replace("\\", "/")
    rest, hash_mark, fragment = rest.partition("#")
    rest, question, query = rest.partition("?")
    user_info, host, port, explicit, host_type = "", "", _DEFAULT_PORTS.get(scheme, -1), False, ""
    authority = rest.startswith("//")
    if authority:
        end = next((i for i, c in enumerate(rest[2:], 2) if c == "/"), len(rest))
        server, path = rest[2:end], rest[end:]
        if "@" in server:
            user_info, _, server = server.rpartition("@")
        host_port = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[^:]*)(?::([0-9]*))?", server)
        if host_port is None:
            return None
        host = host_port.group(1).lower()
        if host_port.group(2):
            port, explicit = int(host_port.group(2)), True
            if port > 65535:
                return None
        host_type = _host_type(host, scheme)
        if host_type == "" or (not host and scheme in _DNS_SCHEMES - {"file"}):
            return None
        if not path and scheme in _DNS_SCHEMES:
            path = "/"
    else:
        path = rest
        if scheme in _DEFAULT_PORTS and scheme not in ("mailto", "news"):
            return "relative"  # "http:x" is not absolute; as a relative reference it is fine
        host_type = "Unknown"
    if scheme in _SLASH_SCHEMES:
        path = _remove_dot_segments(path)
    return _Uri(
        scheme=scheme,
        user_info=_escaped(user_info, ";:&=+$,!~*'()-._"),
        host=host,
        port=port,
        explicit_port=explicit,
        path=_escaped(path, _URI_PATH_SAFE),
        query=question + _escaped(query, _URI_QUERY_SAFE),
        fragment=hash_mark + _escaped(fragment, _URI_QUERY_SAFE + "#"),
        authority=authority,
        host_type=host_type,
    )


_PERCENT = re.compile(r"%(?:([0-9A-Fa-f]{2}))?")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _escaped(text: str, safe: str) -> str:
    """``text`` as System.Uri escapes a component: what is not ``safe`` as UTF-8 ``%XX``; an
    escape of an unreserved character (``%41``) is that character, other escapes stay as
    written, and a ``%`` that starts no escape is ``%25``."""
    pieces: list[str] = []
    position = 0
    for match in _PERCENT.finditer(text):
        pieces.append(urllib.parse.quote(scalar(text[position : match.start()]), safe=safe))
        code = match.group(1)
        if code is None:
            pieces.append("%25")
        elif chr(int(code, 16)) in _UNRESERVED:
            pieces.append(chr(int(code, 16)))
        else:
            pieces.append(match.group())
        position = match.end()
    pieces.append(urllib.parse.quote(scalar(text[position:]), safe=safe))
    return "".join(pieces)


_DNS_NAME = re.compile(r"(?=.{1,255}$)[a-z0-9_](?:[a-z0-9_\-]*[a-z0-9_])?(?:\.[a-z0-9_\-]+)*\.?")


def _host_type(host: str, scheme: str) -> str:
    if host.startswith("["):
        return "IPv6"
    if re.fullmatch(r"(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)", host):
        return "IPv4"
    if _DNS_NAME.fullmatch(host) or _international_name(host):
        return "Dns"
    if not host:
        return "Basic"
    if scheme in _DNS_SCHEMES or re.search(r"[\s<>\"{}|^`\\]", host):
        return ""
    return "Basic"


def _international_name(host: str) -> bool:
    """A host name with letters outside ASCII that IDNA can write (``bücher.example``):
    System.Uri keeps it, lower case, as written."""
    if host.isascii() or len(host) > 255:
        return False
    try:
        ascii_form = host.rstrip(".").encode("idna").decode("ascii")
    except UnicodeError:
        return False
    return _DNS_NAME.fullmatch(ascii_form) is not None


def _remove_dot_segments(path: str) -> str:
    output: list[str] = []
    segments = path.split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == ".":
            if last:
                output.append("")
        elif segment == "..":
            if len(output) > 1:
                output.pop()
            if last:
                output.append("")
        else:
            output.append(segment)
    return "/".join(output)


def _uri_text(uri: _Uri, part: str) -> str:
    default_port = _DEFAULT_PORTS.get(uri.scheme, -1)
    shown_port = f":{uri.port}" if uri.explicit_port and uri.port != default_port else ""
    server = uri.host + shown_port
    user = uri.user_info + "@" if uri.user_info else ""
    separator = "://" if uri.authority else ":"
    if part == "absolutepath":
        return uri.path
    if part == "absoluteuri":
        return f"{uri.scheme}{separator}{user}{server}{uri.path}{uri.query}{uri.fragment}"
    if part == "authority":
        return server
    if part == "dnssafehost":
        return uri.host.strip("[]")
    if part == "fragment":
        return uri.fragment
    if part == "host":
        return uri.host
    if part == "hostandport":
        return uri.host + (f":{uri.port}" if uri.port >= 0 else "")
    if part == "hostnametype":
        return uri.host_type
    if part == "isabsoluteuri":
        return "true"
    if part == "isdefaultport":
        return "true" if uri.port == default_port else "false"
    if part == "isfile":
        return "true" if uri.scheme == "file" else "false"
    if part == "isloopback":
        loopback = uri.host in ("localhost", "[::1]", "") or uri.host.startswith("127.")
        return "true" if loopback and (uri.host or uri.scheme == "file") else "false"
    if part == "isunc":
        return "true" if uri.scheme == "file" and uri.host not in ("", "localhost") else "false"
    if part == "path":
        return urllib.parse.unquote(uri.path)
    if part == "pathandquery":
        return uri.path + uri.query
    if part == "port":
        return str(uri.port)
    if part == "query":
        return uri.query
    if part == "scheme":
        return uri.scheme
    if part == "schemeandserver":
        return f"{uri.scheme}{separator}{server}"
    if part == "userinfo":
        return uri.user_info
    raise KeyError(part)


_URI_PARTS = {
    "absolutepath", "absoluteuri", "authority", "dnssafehost", "fragment", "host",
    "hostandport", "hostnametype", "isabsoluteuri", "isdefaultport", "isfile", "isloopback",
    "isunc", "path", "pathandquery", "port", "query", "scheme", "schemeandserver", "userinfo",
}  # fmt: skip


def uri_part(value: str | None, args: tuple[str, ...]) -> str | None:
    """``UriPart Part``; what goes wrong is written out, as the deployment server does."""
    if value is None:
        return None
    if not args:
        return "[UriPart error: no argument given]"
    uri = _parse_uri(value)
    if uri is None:
        return value
    part = args[0].lower()
    if part not in _URI_PARTS:
        return f"[UriPart {args[0]} error: argument '{args[0]}' not supported]"
    if isinstance(uri, str):
        if part == "isabsoluteuri":
            return "false"
        return f"[UriPart {args[0]} error: {_RELATIVE_ERROR}]"
    return _uri_text(uri, part)
