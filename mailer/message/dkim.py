"""DKIM signatures (RFC 6376) made with OpenSSL through ``cryptography``: rsa-sha256 and
ed25519-sha256 (RFC 8463), either or both (dual signatures: one DKIM-Signature header each),
relaxed/relaxed canonicalisation.

The work is split as the message is (see :mod:`mailer.message.template`): a variant's message is
static byte chunks with per-recipient slots between them, so ``SigningPlan.build`` does once per
variant everything that does not depend on the recipient:

- the header hash: the signed headers are hashed in ``h=`` order, and that order puts every header
  without a slot first (From, Subject, Reply-To, MIME-Version, Content-Type, the List-* headers…),
  so their canonical bytes go into a SHA-256 state once; per message the state is copied and fed
  only the canonical To, Date, Message-ID and List-Unsubscribe headers, then the signature header;
- the body hash: the static chunks are canonicalised once (every chunk is whole lines, because
  each slot sits on lines of its own), and the body up to the first slot goes into a state once;
  per message the state is copied and fed the slot values and the canonical chunks between them;
- the ``DKIM-Signature`` header's static tags (``v a c d s h``), folded and canonicalised.

Per message: one body hash update over the bytes after the first slot, a few short header
updates, and one signature per key (OpenSSL's RSA-2048 or Ed25519). Over-signed headers (listed in
``h=`` once more than they occur) contribute no bytes to the hash (RFC 6376 5.4.2) but make a second
copy of them break the signature; a header the message lacks (Sender, Cc), listed once, is signed as
absent, so adding one breaks it. Neither adds work per message: only the static ``h=`` grows.

Keys come from the workspace (``dkim_keys(settings)``); ``txt_record`` and ``dns_records`` give the
DNS TXT records that publish their public halves (``mailer dkim dns``).
"""

from __future__ import annotations

import base64
import hashlib
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from mailer.errors import ConfigError
from mailer.settings import Settings

RSA = "rsa-sha256"
ED25519 = "ed25519-sha256"
ALGORITHMS = (RSA, ED25519)
MIN_RSA_BITS = 1024  # RFC 8301: verifiers must refuse smaller keys; 2048 is what to use

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_SELECTOR = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_WSP = re.compile(rb"[ \t]+")
_TRAILING_WSP = re.compile(rb" \r\n")


@dataclass(frozen=True)
class DkimKey:
    """A DKIM signing key: ``private_key`` is PEM (PKCS#1 or PKCS#8) for rsa-sha256; PEM (PKCS#8)
    or the base64 32-byte seed for ed25519-sha256. The public key is published at
    ``{selector}._domainkey.{domain}``."""

    selector: str
    domain: str
    private_key: bytes
    algorithm: str = RSA


PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def load_private_key(key: DkimKey) -> PrivateKey:
    """The key as a ``cryptography`` object, or ConfigError saying what is wrong with it."""
    if key.algorithm not in ALGORITHMS:
        raise ConfigError(
            f"unknown DKIM algorithm {key.algorithm!r}",
            field="dkim_algorithms",
            hint="use rsa-sha256 or ed25519-sha256",
        )
    if not _SELECTOR.fullmatch(key.selector) or not _SELECTOR.fullmatch(key.domain) or "." not in key.domain:
        raise ConfigError(
            f"DKIM selector {key.selector!r} or domain {key.domain!r} is not a DNS name",
            field="dkim_selector",
            hint="selectors are letters, digits and hyphens (e.g. mailer-rsa); the domain is the From domain",
        )
    loaded: Any = None
    data = key.private_key.strip()
    try:
        if data.startswith(b"-----"):
            loaded = serialization.load_pem_private_key(data, password=None)
        elif key.algorithm == ED25519:
            seed = base64.b64decode(data, validate=True)
            if len(seed) in (32, 64):  # dkimpy's seed, or libsodium's seed + public key
                loaded = ed25519.Ed25519PrivateKey.from_private_bytes(seed[:32])
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise _bad_key(key, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
    if key.algorithm == RSA and isinstance(loaded, rsa.RSAPrivateKey):
        if loaded.key_size < MIN_RSA_BITS:
            raise _bad_key(key, f"an RSA key of {loaded.key_size} bits is refused by receivers (RFC 8301)")
        return loaded
    if key.algorithm == ED25519 and isinstance(loaded, ed25519.Ed25519PrivateKey):
        return loaded
    raise _bad_key(key, "not a private key of that kind")


def _bad_key(key: DkimKey, why: str) -> ConfigError:
    return ConfigError(
        f"cannot sign with the DKIM key for {key.algorithm} (selector {key.selector}): {why}",
        field="dkim",
        hint="give a PEM private key (RSA 2048 bits for rsa-sha256; Ed25519 for ed25519-sha256), "
        "or make new ones with `mailer dkim keys`",
    )


class Signer:
    """One key, loaded once: signs a SHA-256 digest of the header data."""

    def __init__(self, key: DkimKey) -> None:
        self.key = key
        self.algorithm = key.algorithm
        self._private = load_private_key(key)
        self._rsa = self._private if isinstance(self._private, rsa.RSAPrivateKey) else None
        self._ed = self._private if isinstance(self._private, ed25519.Ed25519PrivateKey) else None
        self._padding = padding.PKCS1v15()
        self._prehashed = Prehashed(hashes.SHA256())

    def sign(self, digest: bytes) -> bytes:
        """The signature over the header hash ``digest``: RSASSA-PKCS1-v1_5 of the SHA-256 digest, or
        PureEdDSA over the digest itself (RFC 8463 3)."""
        if self._rsa is not None:
            return self._rsa.sign(digest, self._padding, self._prehashed)
        assert self._ed is not None
        return self._ed.sign(digest)

    def txt_record(self) -> str:
        return txt_record(self._private)


_SIGNERS: dict[DkimKey, Signer] = {}


def signer_for(key: DkimKey) -> Signer:
    """The signer of ``key``, its key loaded once per process: loading and checking an RSA key
    costs ~30 ms, which every variant's template (and every filling process) would pay again."""
    signer = _SIGNERS.get(key)
    if signer is None:
        signer = _SIGNERS[key] = Signer(key)
    return signer


# -- canonicalisation (RFC 6376 3.4.2 and 3.4.4) ---------------------------------------------------------


def relaxed_header(field: bytes) -> bytes:
    """``Name: value CRLF`` (possibly folded) in relaxed form: ``name:value CRLF``."""
    name, _, value = field.partition(b":")
    value = _WSP.sub(b" ", value.replace(b"\r\n", b"")).strip(b" ")
    return name.rstrip(b" \t").lower() + b":" + value + b"\r\n"


def relaxed_lines(chunk: bytes) -> bytes:
    """Whole body lines in relaxed form: runs of white space become one space, none ends a line."""
    return _TRAILING_WSP.sub(b"\r\n", _WSP.sub(b" ", chunk))


def _needs_relaxing(value: bytes) -> bool:
    return b"  " in value or b"\t" in value or b" \r\n" in value


# -- the per-variant plan ---------------------------------------------------------------------------------


class SigningPlan:
    """What signing a variant's messages needs, prepared once per variant (see the module docstring).

    ``chunks`` and ``slots`` are the template's; ``whole_fields`` maps the position of each slot that
    is a whole header field to its name (To, Date); every other slot in the header must be a value
    with no white space in a header field (a delivery id, a token). ``headers`` are the names to sign,
    ``oversigned`` the names signed once more than they occur."""

    def __init__(
        self,
        signers: Sequence[Signer],
        chunks: Sequence[bytes],
        slots: Sequence[tuple[int, str]],
        whole_fields: dict[int, str],
        headers: Sequence[str],
        oversigned: Sequence[str],
    ) -> None:
        self.signers = list(signers)
        slot_positions = {position for position, _ in slots}
        header_end, body_start = _header_end(chunks, slot_positions)
        fields = _header_fields(chunks, slot_positions, whole_fields, header_end, body_start)
        static: list[bytes] = []
        dynamic: list[int | list[bytes | int]] = []
        static_names: list[str] = []
        dynamic_names: list[str] = []
        used: set[int] = set()
        for name in headers:
            found = [i for i, (n, _) in enumerate(fields) if n == name.lower() and i not in used]
            if not found:
                continue
            used.add(found[-1])  # the last instance first, as verifiers pick them (RFC 6376 5.4.2)
            pieces = fields[found[-1]][1]
            if isinstance(pieces, int) or any(isinstance(p, int) for p in pieces):
                dynamic.append(pieces)
                dynamic_names.append(name.lower())
            else:
                static.append(b"".join(p for p in pieces if isinstance(p, bytes)))
                static_names.append(name.lower())
        self.signed_headers = static_names + dynamic_names + [n.lower() for n in oversigned]
        self._header_static = b"".join(static)
        self._header_state = hashlib.sha256(self._header_static)
        self._dynamic = dynamic
        self._body_prefix, self._body_rest = _body_plan(chunks, slot_positions, header_end, body_start)
        self._body_state = hashlib.sha256(self._body_prefix)
        self._prefixes = [self._signature_prefix(s) for s in self.signers]

    def _signature_prefix(self, signer: Signer) -> tuple[bytes, bytes]:
        """The DKIM-Signature header's static tags as written (folded) and as hashed (relaxed)."""
        key = signer.key
        tags = [
            "v=1;",
            f"a={key.algorithm};",
            "c=relaxed/relaxed;",
            f"d={key.domain};",
            f"s={key.selector};",
        ]
        names = [n + ":" for n in self.signed_headers]
        names[0], names[-1] = "h=" + names[0], names[-1][:-1] + ";"
        units = [(" ", tag) for tag in tags] + [(" ", names[0])] + [("", n) for n in names[1:]]
        lines, line = [], "DKIM-Signature:"
        for sep, word in units:  # fold before a tag, or between header names, to stay within 78
            if len(line) + len(sep) + len(word) > 78:
                lines.append(line)
                line = " " + word
            else:
                line += sep + word
        lines.append(line)
        wire = "\r\n".join(lines).encode("ascii")
        return wire, relaxed_header(wire + b"\r\n")[:-2]

    def __getstate__(self) -> dict[str, Any]:
        """For a process pool: the keys and the prepared bytes; hash states and loaded keys are made
        again on the other side (``__setstate__``)."""
        state = self.__dict__.copy()
        for name in ("_header_state", "_body_state", "signers"):
            del state[name]
        state["keys"] = [s.key for s in self.signers]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        keys = state.pop("keys")
        self.__dict__.update(state)
        self.signers = [signer_for(key) for key in keys]
        self._header_state = hashlib.sha256(self._header_static)
        self._body_state = hashlib.sha256(self._body_prefix)

    def sign(self, out: Sequence[bytes], timestamp: int) -> bytes:
        """The DKIM-Signature header(s), ready to go before the message whose chunks are ``out`` (the
        template's chunks with this recipient's slot values in place)."""
        body = self._body_state.copy()
        for piece in self._body_rest:
            if isinstance(piece, int):
                value = out[piece]
                body.update(relaxed_lines(value) if _needs_relaxing(value) else value)
            else:
                body.update(piece)
        bh = base64.b64encode(body.digest())
        head = self._header_state.copy()
        for field in self._dynamic:
            if isinstance(field, int):  # a whole field: To, Date
                head.update(relaxed_header(out[field]))
            else:
                head.update(b"".join(out[p] if isinstance(p, int) else p for p in field))
        tail = b" t=%d; bh=%s; b=" % (timestamp, bh)
        wire_tail = b"\r\n t=%d; bh=%s;\r\n b=" % (timestamp, bh)
        headers = []
        last = len(self.signers) - 1
        for i, (signer, (wire, hashed)) in enumerate(zip(self.signers, self._prefixes, strict=True)):
            state = head if i == last else head.copy()
            state.update(hashed + tail)
            b = base64.b64encode(signer.sign(state.digest()))
            folded = b"\r\n ".join(b[j : j + 74] for j in range(0, len(b), 74))
            headers.append(wire + wire_tail + folded + b"\r\n")
        return b"".join(headers)


def _header_end(chunks: Sequence[bytes], slots: set[int]) -> tuple[int, int]:
    """(chunk index, offset in it) where the body starts, after the header's blank line."""
    for i, chunk in enumerate(chunks):
        at = chunk.find(b"\r\n\r\n")
        if i not in slots and at >= 0:
            return i, at + 4
    raise AssertionError("the message has no end of header")


def _header_fields(
    chunks: Sequence[bytes],
    slots: set[int],
    whole_fields: dict[int, str],
    header_end: int,
    body_start: int,
) -> list[tuple[str, int | list[bytes | int]]]:
    """The header fields as (lower-case name, relaxed pieces: static bytes and slot positions), or
    (name, position) for a slot that is a whole field."""
    text = []
    for i in range(header_end + 1):
        if i in whole_fields:
            text.append(b"\x00W%d\x00\r\n" % i)
        elif i in slots:
            text.append(b"\x00I%d\x00" % i)
        else:
            text.append(chunks[i] if i < header_end else chunks[i][: body_start - 2])
    fields: list[tuple[str, int | list[bytes | int]]] = []
    for field in re.split(rb"\r\n(?![ \t])", b"".join(text)):
        if not field:
            continue
        whole = re.fullmatch(rb"\x00W(\d+)\x00", field)
        if whole:
            position = int(whole[1])
            fields.append((whole_fields[position].lower(), position))
            continue
        relaxed = relaxed_header(field + b"\r\n")
        pieces: list[bytes | int] = []
        for j, piece in enumerate(re.split(rb"\x00I(\d+)\x00", relaxed)):
            if j % 2:
                pieces.append(int(piece))
            elif piece:
                pieces.append(piece)
        name = relaxed.partition(b":")[0].decode("ascii")
        fields.append((name, pieces))
    return fields


def _body_plan(
    chunks: Sequence[bytes], slots: set[int], header_end: int, body_start: int
) -> tuple[bytes, list[bytes | int]]:
    """The relaxed body up to the first slot (hashed once), and the rest: relaxed static chunks and
    slot positions (each slot and each static chunk is whole lines, so each relaxes alone)."""
    pieces: list[bytes | int] = []
    for i in range(header_end, len(chunks)):
        if i in slots:
            pieces.append(i)
            continue
        chunk = chunks[i][body_start:] if i == header_end else chunks[i]
        assert not chunk or chunk.endswith(b"\r\n"), "a static body chunk must be whole lines"
        pieces.append(relaxed_lines(chunk))
    last = pieces[-1]
    assert isinstance(last, bytes), "the body must end with static text"
    pieces[-1] = last.rstrip(b"\r\n") + b"\r\n"  # no empty lines at the end (RFC 6376 3.4.4)
    first = next((j for j, p in enumerate(pieces) if isinstance(p, int)), len(pieces))
    prefix = b"".join(p for p in pieces[:first] if isinstance(p, bytes))
    rest: list[bytes | int] = []
    for piece in pieces[first:]:
        if isinstance(piece, bytes) and rest and isinstance(rest[-1], bytes):
            rest[-1] += piece
        elif piece != b"":
            rest.append(piece)
    return prefix, rest


# -- keys from settings, and their DNS records -----------------------------------------------------------


def dkim_domain(settings: Settings) -> str:
    """The signing domain (d=): ``dkim_domain``, else the From address's domain."""
    return (settings.dkim_domain or settings.from_address.rpartition("@")[2]).strip().lower()


def configured(settings: Settings) -> list[tuple[str, str, Path]]:
    """(algorithm, selector, key file) of each algorithm the settings name, whether its key exists
    or not: ``dkim_algorithms`` "auto" names both (each used when its selector is set and its key
    file exists), "off" none, else the comma-separated list."""
    choice = settings.dkim_algorithms.strip().lower()
    if choice in ("off", "none", ""):
        return []
    names = ALGORITHMS if choice == "auto" else tuple(a.strip() for a in choice.split(",") if a.strip())
    out = []
    for name in names:
        if name not in ALGORITHMS:
            raise ConfigError(
                f"unknown DKIM algorithm {name!r}",
                field="dkim_algorithms",
                hint='use "auto", "off", "rsa-sha256", "ed25519-sha256" or "rsa-sha256,ed25519-sha256"',
            )
        if name == RSA:
            out.append((name, settings.dkim_selector.strip(), settings.workspace / settings.dkim_key_file))
        else:
            out.append(
                (
                    name,
                    settings.dkim_ed25519_selector.strip(),
                    settings.workspace / settings.dkim_ed25519_key_file,
                )
            )
    return out


def dkim_keys(settings: Settings) -> list[DkimKey]:
    """The keys to sign with. With ``dkim_algorithms = "auto"`` an algorithm whose selector is empty
    or whose key file does not exist is left out (``dkim_status`` says so); when it names the
    algorithms, each must have its selector and key file. A key file readable by others is refused."""
    auto = settings.dkim_algorithms.strip().lower() == "auto"
    domain = dkim_domain(settings)
    keys = []
    for algorithm, selector, path in configured(settings):
        if auto and (not selector or not path.exists()):
            continue
        if not selector:
            raise ConfigError(
                f"dkim_algorithms names {algorithm} but its selector is empty",
                field="dkim_selector" if algorithm == RSA else "dkim_ed25519_selector",
                hint="set the selector, or leave the algorithm out of dkim_algorithms",
            )
        if not path.exists():
            raise ConfigError(
                f"dkim_algorithms names {algorithm} but there is no private key",
                path=path,
                hint="make one with `mailer dkim keys`, then publish `mailer dkim dns`",
            )
        if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                "the DKIM key file is readable by others", path=path, hint=f"run: chmod 600 {path}"
            )
        keys.append(
            DkimKey(selector=selector, domain=domain, private_key=path.read_bytes(), algorithm=algorithm)
        )
    return keys


@dataclass(frozen=True)
class DkimStatus:
    """Whether a send from these settings is signed, and by what; ``warning`` says what to fix."""

    algorithms: list[str]
    domain: str
    selectors: list[str]
    relay_signs: bool
    missing: list[str]
    aligned: bool

    @property
    def signed(self) -> bool:
        return bool(self.algorithms)

    @property
    def warning(self) -> str | None:
        """A loud line for a send to members, or None when all is well."""
        if not self.signed and not self.relay_signs:
            return (
                "messages will NOT be DKIM-signed: Gmail and Yahoo put unsigned bulk mail in spam "
                "or refuse it"
                + (f" ({'; '.join(self.missing)})" if self.missing else "")
                + ". Fix: `mailer dkim keys`, publish the records of `mailer dkim dns`, or set "
                "relay_signs_dkim = true if your relay signs for " + self.domain
            )
        if self.signed and not self.aligned:
            return (
                f"the DKIM domain {self.domain} is not the From address's domain nor a parent of it: "
                "DMARC will not count the signature (set dkim_domain to the From domain)"
            )
        return None

    @property
    def summary(self) -> str:
        if self.signed:
            return f"DKIM: signed by {self.domain} with {', '.join(self.algorithms)}"
        if self.relay_signs:
            return "DKIM: not signed by mailer; the relay signs (relay_signs_dkim = true)"
        return "DKIM: NOT SIGNED"

    def as_dict(self) -> dict[str, Any]:
        return {
            "signed": self.signed,
            "algorithms": self.algorithms,
            "domain": self.domain,
            "selectors": self.selectors,
            "relay_signs": self.relay_signs,
            "missing": self.missing,
            "aligned": self.aligned,
            "warning": self.warning,
        }


def dkim_status(settings: Settings) -> DkimStatus:
    """What a send from ``settings`` will carry; raises ConfigError where ``dkim_keys`` would."""
    keys = dkim_keys(settings)
    for key in keys:
        load_private_key(key)
    missing = []
    have = {k.algorithm for k in keys}
    for algorithm, selector, path in configured(settings):
        if algorithm not in have:
            missing.append(f"no {algorithm} selector" if not selector else f"no key file {path.name}")
    if not configured(settings):
        missing.append("dkim_algorithms is off")
    domain = dkim_domain(settings)
    from_domain = settings.from_address.rpartition("@")[2].strip().lower()
    aligned = (
        from_domain == domain or from_domain.endswith("." + domain) or domain.endswith("." + from_domain)
    )
    return DkimStatus(
        algorithms=[k.algorithm for k in keys],
        domain=domain,
        selectors=[k.selector for k in keys],
        relay_signs=settings.relay_signs_dkim,
        missing=missing,
        aligned=aligned,
    )


def txt_record(private: PrivateKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey) -> str:
    """The DKIM TXT record of a key: ``v=DKIM1; k=rsa; p=<SubjectPublicKeyInfo>`` or
    ``v=DKIM1; k=ed25519; p=<the raw 32-byte key>`` (RFC 8463 4), base64."""
    public = (
        private.public_key()
        if isinstance(private, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey)
        else private
    )
    if isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return "v=DKIM1; k=ed25519; p=" + base64.b64encode(raw).decode("ascii")
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode("ascii")


def txt_strings(value: str, size: int = 255) -> list[str]:
    """A TXT value cut into character-strings of at most 255 bytes (RFC 1035 3.3.14); resolvers
    join them back without separators (RFC 6376 3.6.2.2)."""
    return [value[i : i + size] for i in range(0, len(value), size)] or [""]


@dataclass(frozen=True)
class DnsRecord:
    """One TXT record to publish: ``name`` (fully qualified) and its ``value``."""

    algorithm: str
    selector: str
    domain: str
    value: str

    @property
    def name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def strings(self) -> list[str]:
        return txt_strings(self.value)

    def zone_line(self) -> str:
        """The record as a zone-file line: ``NAME. IN TXT "…" "…"``."""
        return f"{self.name}. IN TXT " + " ".join(f'"{s}"' for s in self.strings)

    def as_dict(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm,
            "domain": self.domain,
            "name": self.name,
            "type": "TXT",
            "value": self.value,
            "strings": self.strings,
            "zone": self.zone_line(),
        }


def dns_records(settings: Settings, domains: Sequence[str] = ()) -> list[DnsRecord]:
    """The TXT record of every key the settings sign with, for the settings' signing domain, or for
    each of ``domains`` (the signing domains of the workspace's networks), each domain once."""
    from dataclasses import replace

    records = []
    for domain in dict.fromkeys(d.strip().lower() for d in domains or [dkim_domain(settings)]):
        for key in dkim_keys(replace(settings, dkim_domain=domain)):
            records.append(
                DnsRecord(key.algorithm, key.selector, key.domain, txt_record(load_private_key(key)))
            )
    return records
