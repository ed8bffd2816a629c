"""The `aws-chunked` content encoding of a streamed upload ("Signature Calculations for the
Authorization Header: Transferring Payload in Multiple Chunks", and its unsigned variant with
trailing checksums): `<hex size>[;chunk-signature=...]\\r\\n<data>\\r\\n` ... a zero-size chunk,
then optional trailer lines. Local core does not verify signatures or checksums."""

from __future__ import annotations


class ChunkedError(ValueError):
    pass


def is_aws_chunked(content_encoding: str, content_sha256: str) -> bool:
    encodings = [e.strip() for e in content_encoding.lower().split(",")]
    return "aws-chunked" in encodings or content_sha256.startswith("STREAMING-")


def decode(body: bytes) -> bytes:
    out = bytearray()
    pos = 0
    while True:
        eol = body.find(b"\r\n", pos)
        if eol < 0:
            raise ChunkedError("a chunk header is not terminated by CRLF")
        header = body[pos:eol].split(b";", 1)[0].strip()
        try:
            size = int(header, 16)
        except ValueError:
            raise ChunkedError(f"chunk size {header[:20]!r} is not hexadecimal") from None
        start = eol + 2
        if size == 0:
            return bytes(out)
        end = start + size
        if body[end:end + 2] != b"\r\n":
            raise ChunkedError("a chunk is shorter than its declared size")
        out += body[start:end]
        pos = end + 2
