"""A device's identity (thing name, private key, certificate) and its storage on disk.

Files per device in `<root>/<fleet>/`: `<thing>.key` (0600), `<thing>.crt`, `<thing>.json`
(everything else). Key material is never part of a repr, a log line or the JSON file.

An identity loaded from its files at start-up (`IdentityStore.load_if_stored`) holds its key and
certificate in their files, not in memory: each use reads the file (and checks its PEM armour).
A run re-using 10,000 stored identities reads their `.json` files at start-up and each
device's key and certificate as it connects (once per connect, ~20 us), and such a device keeps
no PEM (issue 9: start-up CPU, RSS per device).
"""

from __future__ import annotations

import asyncio
import binascii
import itertools
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from fleetsim import pki  # cryptography, imported at the first use of its names
from fleetsim.errors import UserError
from fleetsim.pki.key_type import KeyType

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

_THING_NAME = re.compile(r"^[a-zA-Z0-9:_-]{1,128}$")  # AWS IoT's thing-name pattern
# The known key types, each as its one string object (a loaded identity takes it, not the JSON
# decoder's copy).
_KEY_TYPES: dict[str, KeyType] = {"ec-p256": "ec-p256", "rsa-2048": "rsa-2048"}


class IdentityDamaged(UserError):
    """A stored identity file is missing, unreadable or not what it should be."""

    def __init__(self, path: Path, problem: str):
        super().__init__(f"stored identity file {path} {problem}: delete the files of "
                         f"{path.stem} in {path.parent} (or run `fleetsim cleanup`) to "
                         "provision that device again")
        self.path = path


class _StoredPem:
    """A PEM member of `DeviceIdentity`, over its slot (`slot`): the bytes it was given, or,
    given None, its stored file's (`suffix`, in the identity's `folder`) read and checked at
    each use, never kept. The check is the PEM armour and base64 only: OpenSSL parses the key
    and certificate at connect (parsing them here cost ~60 us a device at start-up;
    bench/startup.py)."""

    def __init__(self, slot: Any, suffix: str, looks_right: Callable[[bytes], bool],
                 problem: str, required: bool):
        self._slot, self._suffix = slot, suffix
        self._looks_right, self._problem, self._required = looks_right, problem, required

    def held(self, identity: DeviceIdentity) -> bytes | None:
        pem: bytes | None = self._slot.__get__(identity)
        return pem

    def __get__(self, identity: DeviceIdentity | None, owner: type | None = None) -> Any:
        if identity is None:  # the class asking
            return self
        pem = self.held(identity)
        if pem is not None:
            return pem
        name = identity.stored_file(self._suffix)
        if name is None:
            if self._required:
                raise ValueError(f"{identity.thing_name} has neither a key nor a key file")
            return None
        pem = _read(name)
        if not self._looks_right(pem):
            raise IdentityDamaged(Path(name), self._problem)
        return pem

    def __set__(self, identity: DeviceIdentity, pem: bytes | None) -> None:
        self._slot.__set__(identity, pem)


@dataclass(eq=False, repr=False, slots=True)
class DeviceIdentity:
    """`private_key_pem` and `certificate_pem` given as None with `folder` set (and
    `certificate_stored`, for the certificate): read from the identity's files there at each
    use (a stored identity, see the module's docstring); `in_memory` tells which. In slots,
    with its folder one string shared by a store's identities (a 10,000-device start-up makes
    10,000 of them: ~0.45 KB each less than with a dict and two paths of its own)."""

    fleet: str
    index: int
    thing_name: str
    key_type: KeyType
    private_key_pem: bytes  # None given (a stored key): read from its file at each use
    certificate_pem: bytes | None = None
    certificate_id: str | None = None
    certificate_arn: str | None = None
    # The folder of the stored files (`<thing_name>.key`, `.crt`), and whether the
    # certificate is stored there: `key_path` and `cert_path` are the files.
    folder: str | None = None
    certificate_stored: bool = False

    def __repr__(self) -> str:  # no key material, and no file read for it
        return (f"DeviceIdentity(fleet={self.fleet!r}, index={self.index!r}, "
                f"thing_name={self.thing_name!r}, key_type={self.key_type!r}, "
                f"certificate_id={self.certificate_id!r}, "
                f"certificate_arn={self.certificate_arn!r})")

    def in_memory(self) -> tuple[bytes | None, bytes | None]:
        """The key and certificate PEMs this identity holds (None: read from its file)."""
        return _KEY_PEM_SLOT.held(self), _CERTIFICATE_PEM_SLOT.held(self)

    def check_files(self) -> None:
        """Read the key and certificate (IdentityDamaged naming a damaged or missing file)."""
        _ = self.private_key_pem, self.certificate_pem

    def stored_file(self, suffix: str) -> str | None:
        """The stored file `<thing_name><suffix>` (".key", ".crt"), if it is stored."""
        if self.folder is None or (suffix == ".crt" and not self.certificate_stored):
            return None
        return f"{self.folder}/{self.thing_name}{suffix}"

    @property
    def key_path(self) -> Path | None:
        name = self.stored_file(".key")
        return None if name is None else Path(name)

    @property
    def cert_path(self) -> Path | None:
        name = self.stored_file(".crt")
        return None if name is None else Path(name)

    def __post_init__(self) -> None:
        if not _THING_NAME.match(self.thing_name):
            raise ValueError(f"invalid thing name {self.thing_name!r}: use 1-128 of "
                             "a-z A-Z 0-9 : _ -")

    def csr_pem(self, common_name: str | None = None) -> bytes:
        return pki.build_csr(pki.load_private_key(self.private_key_pem),
                             common_name or self.thing_name)

    def with_certificate(self, pem: bytes | str, arn: str | None = None) -> DeviceIdentity:
        """This identity holding `pem` (e.g. from create-certificate-from-csr); the id is
        computed as AWS IoT computes it."""
        data = pem.encode() if isinstance(pem, str) else pem
        from cryptography.hazmat.primitives.serialization import Encoding

        der = pki.load_certificate(data).public_bytes(Encoding.DER)
        return replace(self, certificate_pem=data, certificate_id=pki.certificate_id(der),
                       certificate_arn=arn, certificate_stored=False)


def _over_slot(name: str, suffix: str, looks_right: Callable[[bytes], bool], problem: str,
               required: bool) -> _StoredPem:
    """`DeviceIdentity`'s member `name` made a `_StoredPem` over its slot."""
    stored = _StoredPem(vars(DeviceIdentity)[name], suffix, looks_right, problem, required)
    setattr(DeviceIdentity, name, stored)
    return stored


_KEY_PEM_SLOT = _over_slot("private_key_pem", ".key", lambda pem: _looks_like_key(pem),
                           "is not a readable PEM private key", required=True)
_CERTIFICATE_PEM_SLOT = _over_slot(
    "certificate_pem", ".crt", lambda pem: _looks_like_certificates(pem),
    "is not a readable certificate", required=False)


def _key_pem(key_type: KeyType) -> bytes:
    return pki.private_key_pem(pki.generate_key(key_type))


class KeyFactory:
    """New private keys as PEM: EC P-256 inline (24 µs); RSA-2048 (~65 ms each) in a process
    pool so that neither the event loop nor the GIL carries it."""

    def __init__(self, workers: int | None = None):
        self._workers = workers
        self._pool: ProcessPoolExecutor | None = None

    async def new_key_pem(self, key_type: KeyType) -> bytes:
        if key_type == "ec-p256":
            return _key_pem(key_type)
        if self._pool is None:
            # Imported here: only RSA fleets need it (~0.45 MB of a device process's RSS).
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn: forking a process that runs an event loop and paho threads is unsafe.
            self._pool = ProcessPoolExecutor(self._workers,
                                             mp_context=multiprocessing.get_context("spawn"))
        return await asyncio.get_running_loop().run_in_executor(self._pool, _key_pem, key_type)

    async def new_identity(self, fleet: str, index: int, thing_name: str,
                           key_type: KeyType = "ec-p256") -> DeviceIdentity:
        return DeviceIdentity(fleet, index, thing_name, key_type,
                              await self.new_key_pem(key_type))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> KeyFactory:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class IdentityStore:
    """Identities of one fleet on disk, so later runs reuse them (persistent identities)."""

    def __init__(self, root: Path, fleet: str):
        if not _THING_NAME.match(fleet):
            raise ValueError(f"invalid fleet name {fleet!r}: use a-z A-Z 0-9 : _ -")
        self.fleet = fleet
        self.directory = root / fleet
        self._folder = str(self.directory)  # shared by the identities loaded from it

    def _paths(self, thing_name: str) -> tuple[Path, Path, Path]:
        base = f"{self.directory}/{thing_name}"  # a thing name has no "/" (_THING_NAME)
        return Path(f"{base}.key"), Path(f"{base}.crt"), Path(f"{base}.json")

    def save(self, identity: DeviceIdentity) -> DeviceIdentity:
        """Write the identity; returns it with `key_path` (and `cert_path`) set."""
        if identity.fleet != self.fleet:
            raise ValueError(f"identity of fleet {identity.fleet!r} saved to {self.fleet!r}")
        key, crt, meta = self._paths(identity.thing_name)
        pki.write_private(key, identity.private_key_pem)
        if identity.certificate_pem is not None:
            crt.write_bytes(identity.certificate_pem)
        else:
            crt.unlink(missing_ok=True)
        meta.write_text(json.dumps({
            "fleet": identity.fleet, "index": identity.index,
            "thing_name": identity.thing_name, "key_type": identity.key_type,
            "certificate_id": identity.certificate_id,
            "certificate_arn": identity.certificate_arn,
        }, indent=1) + "\n")
        # The PEMs stay in memory too: the files may be written again meanwhile (the
        # observer's, by another shard of the run) and this identity must keep its own.
        return replace(identity, folder=self._folder,
                       certificate_stored=identity.certificate_pem is not None)

    def load(self, thing_name: str) -> DeviceIdentity:
        """The stored identity; IdentityDamaged names the file when one is missing or
        corrupt (FileNotFoundError when nothing is stored for `thing_name`)."""
        identity = self._load(thing_name, strict=True)
        assert identity is not None
        return identity

    def load_if_stored(self, thing_name: str) -> DeviceIdentity | None:
        """The stored identity, None when its key or `.json` is missing (what `exists`
        says), IdentityDamaged when its `.json` is corrupt. Its key and certificate are read
        (and a damaged one named) where they are used: a 10,000-device start-up loads
        10,000, reading one file and making one stat each."""
        return self._load(thing_name, strict=False)

    def _load(self, thing_name: str, strict: bool) -> DeviceIdentity | None:
        base = f"{self._folder}/{thing_name}"  # a thing name has no "/" (_THING_NAME)
        key, crt, meta = f"{base}.key", f"{base}.crt", f"{base}.json"
        try:
            info = _read_meta(meta, thing_name)
        except IdentityDamaged as e:
            if not isinstance(e.__cause__, FileNotFoundError):
                raise
            if not strict:
                return None
            if not os.path.exists(key):
                raise FileNotFoundError(f"no stored identity for {thing_name!r} in "
                                        f"{self.directory}") from None
            raise
        if not strict and not os.path.exists(key):
            return None
        has_certificate = info["certificate_id"] is not None or os.path.exists(crt)
        # The caller's thing name, the store's fleet and the key type's constant, not the
        # copies the JSON decoder made (~170 bytes a device at a 10,000-device start-up).
        fleet = self.fleet if info["fleet"] == self.fleet else info["fleet"]
        stored = DeviceIdentity(fleet, info["index"], thing_name, _KEY_TYPES[info["key_type"]],
                                None, None, info["certificate_id"],  # type: ignore[arg-type]
                                info["certificate_arn"], self._folder, has_certificate)
        if not strict and info["certificate_id"] is not None:
            return stored  # its key and certificate read where they are used
        # Read (and checked) now, and kept.
        return replace(stored, private_key_pem=stored.private_key_pem,
                       certificate_pem=stored.certificate_pem)

    def exists(self, thing_name: str) -> bool:
        base = f"{self.directory}/{thing_name}"
        return os.path.exists(f"{base}.key") and os.path.exists(f"{base}.json")

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.directory.glob("*.json"))

    def load_all(self) -> list[DeviceIdentity]:
        return sorted((self.load(n) for n in self.names()), key=lambda i: i.index)

    def delete(self, thing_name: str) -> None:
        for p in self._paths(thing_name):
            p.unlink(missing_ok=True)


_KEY_PEM = re.compile(rb"-----BEGIN ((?:EC |RSA )?PRIVATE KEY)-----\s+([A-Za-z0-9+/=\s]+?)"
                      rb"-----END \1-----\s*")


_CERT_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\s+([A-Za-z0-9+/=\s]+?)"
                       rb"-----END CERTIFICATE-----\s*")


# The same checks as one regex each, for the PEM as fleetsim (and OpenSSL, and AWS IoT) write
# it: lines of 64 base64 characters (at least one: more than 32 bytes), a shorter last one
# padded right, "\n" line ends. What matches is what the checks below accept (strict base64
# of whole 4-character groups, padding at the end only); anything else (CRLF, other line
# lengths) is checked by them. One match instead of a split, join and decode: ~10 us less a
# device at a 10,000-device start-up (bench/startup.py).
_B64_LINES = (rb"(?:[A-Za-z0-9+/]{64}\n)+"
              rb"(?:(?:[A-Za-z0-9+/]{4}){0,15}"
              rb"(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)\n)?")
_CANONICAL_KEY = re.compile(rb"-----BEGIN ((?:EC |RSA )?PRIVATE KEY)-----\n" + _B64_LINES
                            + rb"-----END \1-----\s*")
_CANONICAL_CERTS = re.compile(rb"(?:-----BEGIN CERTIFICATE-----\n" + _B64_LINES
                              + rb"-----END CERTIFICATE-----\s*)+")


def _looks_like_key(pem: bytes) -> bool:
    """Whole PEM armour around valid base64: what a truncated or overwritten file fails. The
    key itself is parsed once, by OpenSSL as the device connects (parsing it here as well cost
    ~0.3 ms a device, most of a 10,000-device start-up)."""
    return _CANONICAL_KEY.fullmatch(pem) is not None or _armoured_key(pem)


def _armoured_key(pem: bytes) -> bool:
    """`_looks_like_key` for any layout of the PEM."""
    match = _KEY_PEM.fullmatch(pem)
    return match is not None and _base64(match.group(2))


def _looks_like_certificates(pem: bytes) -> bool:
    """One or more whole certificate blocks (a chain), each valid base64, checked as the key
    is: OpenSSL parses them at connect."""
    return _CANONICAL_CERTS.fullmatch(pem) is not None or _armoured_certificates(pem)


def _armoured_certificates(pem: bytes) -> bool:
    """`_looks_like_certificates` for any layout of the PEMs."""
    at = 0
    while at < len(pem):
        match = _CERT_PEM.match(pem, at)
        if match is None or not _base64(match.group(1)):
            return False
        at = match.end()
    return at > 0


def _base64(body: bytes) -> bool:
    """More than 32 bytes of base64, padded right, once its whitespace is taken out."""
    try:
        return len(binascii.a2b_base64(b"".join(body.split()), strict_mode=True)) > 32
    except binascii.Error:
        return False


_READ_SIZE = 1 << 16  # an identity file is a few KB at most (a certificate chain)


def _read(name: str) -> bytes:
    """The file's bytes: one open, read and close (Python's buffered `open` makes six system
    calls more; three files a device at start-up)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError as e:
        raise IdentityDamaged(Path(name), "is missing") from e
    except OSError as e:
        raise IdentityDamaged(Path(name), f"cannot be read ({e.strerror or e})") from e
    try:
        chunks = [os.read(fd, _READ_SIZE)]
        while len(chunks[-1]) == _READ_SIZE:  # larger than one read: read on to the end
            chunks.append(os.read(fd, _READ_SIZE))
    except OSError as e:
        raise IdentityDamaged(Path(name), f"cannot be read ({e.strerror or e})") from e
    finally:
        os.close(fd)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


_META_FIELDS: dict[str, tuple[type, ...]] = {
    "fleet": (str,), "index": (int,), "thing_name": (str,), "key_type": (str,),
    "certificate_id": (str, type(None)), "certificate_arn": (str, type(None))}
# Every combination of the members' types `_read_meta` accepts.
_META_TYPES = frozenset(itertools.product(*_META_FIELDS.values()))


def _read_meta(name: str, thing_name: str) -> dict[str, Any]:
    """The `.json` of an identity, checked field by field."""
    raw = _read(name)
    try:
        # As str: json.loads of bytes first guesses their encoding (~1.5 us a device); bytes
        # that are not UTF-8 (UTF-16 or -32, which json.loads also reads) go to it as bytes.
        info = json.loads(raw.decode() if raw.isascii() else raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise IdentityDamaged(Path(name), "is not valid JSON") from e
    if type(info) is not dict:
        raise IdentityDamaged(Path(name), "is not a JSON object")
    # All members of the right type, in one look (json.loads makes exact types: a bool is
    # not an int here); else the first that is not, named.
    if tuple(map(type, map(info.get, _META_FIELDS))) not in _META_TYPES:
        for member, types in _META_FIELDS.items():
            if type(info.get(member)) not in types:
                raise IdentityDamaged(Path(name), f"has no valid {member!r}")
    if info["thing_name"] != thing_name or info["key_type"] not in _KEY_TYPES:
        raise IdentityDamaged(Path(name),
                              f"does not describe {thing_name} with a known key type")
    return info


def remove_identity(base: Path, certificate_id: str) -> bool:
    """Remove the identity stored at `base` (`base`.key/.crt/.json) if it holds the certificate
    `certificate_id`, or if its .json is missing or unreadable (a save cut short): the files of
    an identity re-provisioned since, holding another certificate, stay. Empty folders left
    behind go too. True if removed."""
    meta = base.with_suffix(".json")
    try:
        held = json.loads(meta.read_text()).get("certificate_id")
    except (OSError, ValueError, AttributeError):
        held = None
    if held not in (None, certificate_id):
        return False
    for suffix in (".key", ".crt", ".json"):
        base.with_suffix(suffix).unlink(missing_ok=True)
    folder = base.parent
    for _ in range(2):  # the fleet's folder, then the scenario's
        try:
            folder.rmdir()
        except OSError:
            break
        folder = folder.parent
    return True
