"""Start-up re-using persistent identities, the last step (issue 9): stored identities read by
the device process before it forks the API child, which takes each once and hands back only
what it changed; the armour checks' one-regex path accepts what the full checks accept; the
`.json` read as str; the forked child's collector leaves the inherited objects alone."""

from __future__ import annotations

import base64
import gc
import json
import pickle
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetsim.control.journal import JOURNAL_FILE, Entry, _line_prefixes, read_entries
from fleetsim.device.identity import (
    DeviceIdentity,
    IdentityDamaged,
    IdentityStore,
    _armoured_certificates,
    _armoured_key,
    _looks_like_certificates,
    _looks_like_key,
)
from fleetsim.engine.context import Device
from fleetsim.engine.forked import in_child
from fleetsim.engine.preloaded import NOT_PRELOADED, Preloaded, collector_paused, preload
from fleetsim.engine.reconcile import Ledger
from fleetsim.engine.split import KEPT, Handover
from fleetsim.metrics.recorder import Metrics
from fleetsim.pki import CertificateAuthority, certificate_pem, generate_key, private_key_pem
from fleetsim.scenario.model import Fleet

FLEET = Fleet(name="f", prefix="d", count=4, identities="persistent")
CERT = certificate_pem(CertificateAuthority.create("test CA").cert)


def _pem(label: bytes, der: bytes, width: int = 64, newline: bytes = b"\n") -> bytes:
    body = base64.b64encode(der)
    lines = [body[i:i + width] for i in range(0, len(body), width)]
    return (b"-----BEGIN " + label + b"-----" + newline + newline.join(lines) + newline
            + b"-----END " + label + b"-----" + newline)


# A byte anywhere replaced by one a damaged file might hold, or the file cut short.
DAMAGE = st.one_of(st.none(), st.tuples(st.integers(0, 2000), st.sampled_from(
    [b"=", b"\n", b"A", b"-", b" ", b"\r", b"*", b"==", b""])), st.integers(0, 2000))


def _damaged(pem: bytes, damage: object) -> bytes:
    if isinstance(damage, tuple):
        at, byte = damage
        at %= len(pem)
        return pem[:at] + byte + pem[at + 1:]
    if isinstance(damage, int):
        return pem[:damage % len(pem)]
    return pem


@given(st.binary(min_size=1, max_size=400), st.sampled_from([64, 76, 48, 1000]),
       st.sampled_from([b"\n", b"\r\n"]), st.sampled_from([b"EC PRIVATE KEY", b"PRIVATE KEY",
                                                        b"RSA PRIVATE KEY"]), DAMAGE)
def test_the_one_regex_key_check_accepts_what_the_full_check_accepts(
        der: bytes, width: int, newline: bytes, label: bytes, damage: object) -> None:
    pem = _damaged(_pem(label, der, width, newline), damage)
    assert _looks_like_key(pem) == _armoured_key(pem)


@given(st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=3),
       st.sampled_from([64, 76]), DAMAGE)
def test_the_one_regex_certificate_check_accepts_what_the_full_check_accepts(
        ders: list[bytes], width: int, damage: object) -> None:
    pem = _damaged(b"".join(_pem(b"CERTIFICATE", der, width) for der in ders), damage)
    assert _looks_like_certificates(pem) == _armoured_certificates(pem)


def test_what_fleetsim_writes_takes_the_one_regex_path() -> None:
    from fleetsim.device import identity

    key = private_key_pem(generate_key("ec-p256"))
    assert identity._CANONICAL_KEY.fullmatch(key) is not None
    assert identity._CANONICAL_CERTS.fullmatch(CERT + CERT) is not None


def _save(store: IdentityStore, name: str, index: int = 0) -> DeviceIdentity:
    key = private_key_pem(generate_key("ec-p256"))
    cert_id = f"{index:02d}" * 32
    return store.save(DeviceIdentity(store.fleet, index, name, "ec-p256", key, CERT, cert_id,
                                     f"arn:aws:iot:r:1:cert/{cert_id}"))


def test_a_json_index_that_is_a_bool_is_damaged_and_utf16_json_still_reads(
        tmp_path: Path) -> None:
    store = IdentityStore(tmp_path, "f")
    _save(store, "d-0")
    meta = store.directory / "d-0.json"
    info = json.loads(meta.read_text())
    meta.write_text(json.dumps({**info, "index": True}))
    with pytest.raises(IdentityDamaged, match="has no valid 'index'"):
        store.load_if_stored("d-0")
    meta.write_bytes(json.dumps(info).encode("utf-16"))
    loaded = store.load_if_stored("d-0")
    assert loaded is not None and loaded.certificate_id == info["certificate_id"]
    meta.write_bytes(b"\xff\xfe{")
    with pytest.raises(IdentityDamaged, match="is not valid JSON"):
        store.load_if_stored("d-0")


def _devices() -> dict[str, list[Device]]:
    return {"f": [Device(FLEET, i, f"d-{i}") for i in range(4)]}


def test_preload_reads_each_stored_identity_and_hands_it_out_once(tmp_path: Path) -> None:
    store = IdentityStore(tmp_path, "f")
    _save(store, "d-0", 0)
    _save(store, "d-1", 1)
    (store.directory / "d-1.key").write_bytes(b"-----BEGIN EC PRIVATE KEY-----\nAAA")  # damaged
    _save(store, "d-2", 2)
    (store.directory / "d-2.json").unlink()  # half stored: nothing, as load_if_stored says
    devices = _devices()
    preloaded = preload(tmp_path, devices)
    first = preloaded.take("f", "d-0")
    assert isinstance(first, DeviceIdentity) and first.certificate_id == "00" * 32
    assert preloaded.take("f", "d-0") is NOT_PRELOADED  # once: later loads read the files
    damaged = preloaded.take("f", "d-1")  # its key is read where it is used, and named there
    assert isinstance(damaged, DeviceIdentity) and damaged.in_memory() == (None, None)
    with pytest.raises(IdentityDamaged, match=r"d-1\.key is not a readable PEM private key"):
        damaged.check_files()
    assert preloaded.take("f", "d-2") is None
    assert preloaded.take("f", "d-3") is None  # never stored
    assert preload(tmp_path / "none", devices).take("f", "d-0") is None


def _ctx(devices: dict[str, list[Device]], preloaded: Preloaded) -> Any:
    """What Handover reads and writes of a run's context."""
    return SimpleNamespace(devices=devices, preloaded=preloaded, metrics=Metrics(),
                           reconcile=Ledger(), values={}, jobs={}, journaled=set())


def test_only_what_the_child_changed_crosses_the_pipe(tmp_path: Path) -> None:
    store = IdentityStore(tmp_path, "f")
    for i in range(4):
        _save(store, f"d-{i}", i)
    devices = _devices()
    ctx = _ctx(devices, preload(tmp_path, devices))
    stored = dict(ctx.preloaded.identities["f"])

    def api_steps() -> Handover:
        # The child: d-0 and d-1 keep their stored identities, d-2 gets a new one (its
        # certificate was revoked), d-3 fails.
        for d in devices["f"]:
            identity = ctx.preloaded.take("f", d.thing_name)
            assert isinstance(identity, DeviceIdentity)
            d.identity, d.certificate_id = identity, identity.certificate_id
            d.certificate_arn = identity.certificate_arn
        d2 = devices["f"][2]
        d2.identity = _save(store, "d-2", 9)
        d2.certificate_id, d2.certificate_arn = "09" * 32, "arn:aws:iot:r:1:cert/" + "09" * 32
        devices["f"][3].failed = "connect refused"
        return Handover.of(ctx, False, False)

    handover = in_child(api_steps)
    states = handover.devices["f"]
    assert states[:2] == [KEPT, KEPT] and states[2] != KEPT and states[3] != KEPT
    assert len(pickle.dumps(states[:2])) < 40  # no PEMs, no ARNs
    handover.apply(ctx)
    d0, _, d2, d3 = devices["f"]
    kept = stored["d-0"]
    assert kept is not None and d0.certificate_arn == kept.certificate_arn
    assert d0.identity is kept and d0.certificate_id == "00" * 32
    assert d2.identity is not None and d2.identity is not stored["d-2"]
    assert d2.certificate_id == "09" * 32 and d2.identity.certificate_id == "09" * 32
    assert d3.failed == "connect refused" and d3.identity is not None


def test_the_child_leaves_the_parents_objects_to_the_parent() -> None:
    assert gc.get_freeze_count() == 0
    assert in_child(gc.get_freeze_count) > 0
    assert gc.get_freeze_count() == 0


def test_the_collector_is_paused_only_while_asked() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # left as it was found
    finally:
        gc.enable()


# Journal lines as `Journal._write` writes them, and lines a crash tore.
LINE = st.one_of(
    st.builds(lambda kind, thing, extra: json.dumps({"kind": kind, "thing": thing,
                                                     "principal": "arn:p", **extra}),
              st.sampled_from(["thing_principal", "thing", "policy_attachment"]),
              st.sampled_from(["a", "b\u2028", 'q"']), st.sampled_from([{}, {"n": [1]}])),
    st.builds(lambda of: json.dumps({"kind": "void", "of": of, "thing": "a",
                                     "principal": "arn:p"}),
              st.sampled_from(["thing_principal", "thing"])),
    st.builds(lambda cut: '{"kind": "thing_principal", "thing": "a", "principal": "arn:p"}'
              [:cut], st.integers(0, 60)),
    st.just(""))


def _entries_line_by_line(path: Path, prefixes: tuple[str, ...] | None) -> list[Entry]:
    """How the journal was read before: every line split, filtered, parsed one by one."""
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if prefixes is not None and not line.startswith(prefixes):
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError:
            continue
        entries.append(Entry(raw.pop("kind"), raw))
    return entries


@given(st.lists(LINE, max_size=12), st.sampled_from([None, ("thing_principal",)]))
def test_journal_lines_picked_and_parsed_at_once_are_those_read_line_by_line(
        lines: list[str], kinds: tuple[str, ...] | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        text = "".join(line + "\n" for line in lines)
        (run_dir / JOURNAL_FILE).write_text(text, encoding="utf-8")
        prefixes = None if kinds is None else _line_prefixes(kinds)
        expected = _entries_line_by_line(run_dir / JOURNAL_FILE, prefixes)
        assert read_entries(run_dir, kinds) == expected
