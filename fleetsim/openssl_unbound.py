"""OpenSSL functions that cryptography's bindings leave out, called in the OpenSSL those
bindings run on.

cryptography links OpenSSL statically into its `_rust` extension and exports none of its
symbols; its cffi bindings declare a subset of OpenSSL's API, without e.g.
`SSL_CTX_set_num_tickets`. The extension keeps its ELF symbol table, though, so a function's
address is the extension's load address plus the function's value in that table. The load
address is derived from two functions the bindings do declare (cffi gives the addresses of its
wrappers of them, `_cffi_d_<name>` in the table), and both must agree, and fall on a page
boundary, before anything is called: a stripped or unusual build, another binary
format or a mismatch gives None, and callers fall back to what the bindings offer.
"""

from __future__ import annotations

import ctypes
import mmap
import struct
from collections.abc import Callable
from typing import Any

# SSL_MODE_NO_AUTO_CHAIN (ssl.h), which neither the bindings nor pyOpenSSL name: a context's
# certificate is sent with the chain it was given, not one OpenSSL builds for it from the trust
# store at every handshake (a full X509_verify_cert each time).
MODE_NO_AUTO_CHAIN = 0x00000008

# Declared by the bindings: the addresses of their cffi wrappers place the extension in memory.
_ANCHORS = ("SSL_CTX_set_options", "SSL_new")
_WRAPPER = "_cffi_d_{}"
_ELF64_LE = b"\x7fELF\x02\x01"
_SHT_SYMTAB = 2
_STT_FUNC = 2


def _binding() -> tuple[Any, Any, str]:
    from cryptography.hazmat.bindings import _rust

    return _rust._openssl.ffi, _rust._openssl.lib, _rust.__file__


def _function_values(path: str, names: tuple[str, ...]) -> dict[str, int]:
    """The symbol-table value (offset from the load address) of each function `names` holds
    that the ELF file at `path` defines. Names and entries are searched for in the mapped file
    (a scan of every entry in Python took ~10 ms per call)."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as elf:
        if elf[:6] != _ELF64_LE:
            return {}
        shoff, = struct.unpack_from("<Q", elf, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", elf, 0x3A)
        sections = [struct.unpack_from("<IIQQQQIIQQ", elf, shoff + i * shentsize)
                    for i in range(shnum)]
        symtab = next((s for s in sections if s[1] == _SHT_SYMTAB), None)
        if symtab is None:
            return {}
        strtab = sections[symtab[6]]
        strings_at, strings_end = strtab[4], strtab[4] + strtab[5]
        table_at, table_end, entry = symtab[4], symtab[4] + symtab[5], symtab[9]
        found: dict[str, int] = {}
        for name in names:
            at = elf.find(b"\0" + name.encode() + b"\0", strings_at, strings_end)
            if at < 0:
                continue
            key = struct.pack("<I", at + 1 - strings_at)  # the entry's st_name
            pos = elf.find(key, table_at, table_end)
            while pos >= 0:
                if entry and (pos - table_at) % entry == 0:
                    _name, st_info, _other, shndx, value, _size = struct.unpack_from(
                        "<IBBHQQ", elf, pos)
                    if st_info & 0xF == _STT_FUNC and shndx != 0 and value:
                        found[name] = value
                pos = elf.find(key, pos + 1, table_end)
        return found


def _addresses(names: tuple[str, ...]) -> dict[str, int]:
    try:
        ffi, lib, path = _binding()
        wrappers = tuple(_WRAPPER.format(anchor) for anchor in _ANCHORS)
        values = _function_values(path, (*wrappers, *names))
        bases = {int(ffi.cast("uintptr_t", ffi.addressof(lib, anchor))) - values[wrapper]
                 for anchor, wrapper in zip(_ANCHORS, wrappers, strict=True)}
    except (ImportError, OSError, ValueError, KeyError, AttributeError, struct.error):
        return {}
    base = bases.pop()
    if bases or base % mmap.PAGESIZE:  # not the layout assumed here
        return {}
    return {name: base + values[name] for name in names if name in values}


_located: dict[str, int | None] = {}


def locate(*names: str) -> None:
    """Look up every function of `names` in one pass over the symbol table (each pass costs
    a few ms), for `function` to find them later."""
    missing = tuple(name for name in names if name not in _located)
    if missing:
        found = _addresses(missing)
        _located.update((name, found.get(name)) for name in missing)


def function(name: str, restype: Any, *argtypes: Any) -> Callable[..., Any] | None:
    """OpenSSL's `name` in cryptography's bundled OpenSSL, as a ctypes function with this
    signature, or None where it cannot be located safely."""
    locate(name)
    address = _located[name]
    if address is None:
        return None
    return ctypes.CFUNCTYPE(restype, *argtypes)(address)


def pointer(cdata: Any) -> int:
    """The address a cffi pointer of the bindings (an SSL_CTX*, an SSL*) holds."""
    ffi, _lib, _path = _binding()
    return int(ffi.cast("uintptr_t", cdata))


def set_cert_verify_callback(ctx: Any, callback: Any) -> bool:
    """SSL_CTX_set_cert_verify_callback(ctx, callback, NULL) on a pyOpenSSL `Context`:
    `callback`, a cffi callback `int(X509_STORE_CTX *, void *)` its caller keeps alive, then
    decides every peer chain in place of X509_verify_cert. False where it cannot be located."""
    setter = function("SSL_CTX_set_cert_verify_callback", None,
                      ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
    if setter is None:
        return False
    setter(pointer(ctx._context), pointer(callback), None)
    return True
