"""Functions of cryptography's bundled OpenSSL that its bindings do not declare, located in the
extension's symbol table (`fleetsim.openssl_unbound`)."""

from __future__ import annotations

import ctypes
from pathlib import Path

from OpenSSL import SSL

from fleetsim import openssl_unbound


def test_a_located_function_acts_on_the_bindings_objects():
    set_tickets = openssl_unbound.function("SSL_CTX_set_num_tickets", ctypes.c_int,
                                           ctypes.c_void_p, ctypes.c_size_t)
    get_tickets = openssl_unbound.function("SSL_CTX_get_num_tickets", ctypes.c_size_t,
                                           ctypes.c_void_p)
    assert set_tickets is not None and get_tickets is not None
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    address = openssl_unbound.pointer(ctx._context)
    assert get_tickets(address) == 2  # OpenSSL's default
    assert set_tickets(address, 5) == 1
    assert get_tickets(address) == 5


def test_an_unknown_function_is_none():
    assert openssl_unbound.function("SSL_no_such_function", None) is None


def test_a_file_that_is_not_elf_locates_nothing(tmp_path: Path):
    other = tmp_path / "not-elf.so"
    other.write_bytes(b"#!/bin/sh\n" + bytes(200))
    assert openssl_unbound._function_values(str(other), ("SSL_new",)) == {}
