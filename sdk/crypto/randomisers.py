"""Paillier randomisers r^n mod n^2: standard, short-exponent, and a precomputed pool.

A ciphertext is (1 + n*m) * R mod n^2 with R an n-th residue. Computing R is
almost all of the cost of encryption:

- standard: R = r^n for r uniform in Z_n* (one full exponentiation);
- short-exponent (Damgard, Jurik and Nielsen): R = h_s^a with h_s = h^n fixed
  per key and a uniform in [0, 2^(key_bits/2)); a fixed-base table makes it a
  few hundred multiplications. Its security rests on an extra assumption:
  that h_s^a with such a short exponent cannot be told apart from a uniform
  n-th residue;
- pool: randomisers computed ahead (while idle or charging) and stored in a
  file; each is removed from the file (fsync) before it is handed out, so none
  is ever used twice, even across restarts.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Protocol

import gmpy2

from sdk.crypto.errors import CodecError, PoolExhaustedError
from sdk.crypto.keys import PublicKey


class RandomiserSource(Protocol):
    def take(self, count: int) -> list: ...


def _unit_below(n) -> gmpy2.mpz:
    while True:
        r = gmpy2.mpz(secrets.randbelow(int(n) - 1) + 1)
        if gmpy2.gcd(r, n) == 1:
            return r


class StandardRandomiser:
    """R = r^n mod n^2 with r uniform in Z_n*."""

    def __init__(self, public: PublicKey) -> None:
        self.public = public

    def take(self, count: int) -> list:
        n, n2 = self.public.n, self.public.n_square
        return [gmpy2.powmod(_unit_below(n), n, n2) for _ in range(count)]


class ShortExponentRandomiser:
    """R = h_s^a mod n^2, a short random exponent, through a fixed-base table.

    The table holds h_s^(j * 2^(w*i)) for every window i and digit j, so R is
    one multiplication per window of the exponent.
    """

    def __init__(self, public: PublicKey, window_bits: int = 8, exponent_bits: int | None = None):
        self.public = public
        self.window_bits = window_bits
        self.exponent_bits = exponent_bits or public.bits // 2
        n, n2 = public.n, public.n_square
        base = gmpy2.powmod(_unit_below(n), n, n2)
        self._table = []
        windows = -(-self.exponent_bits // window_bits)
        for _ in range(windows):
            row = [gmpy2.mpz(1), base]
            for _ in range(2, 1 << window_bits):
                row.append(row[-1] * base % n2)
            self._table.append(row)
            base = row[-1] * base % n2  # base^(2^w)

    def take(self, count: int) -> list:
        n2 = self.public.n_square
        mask, w = (1 << self.window_bits) - 1, self.window_bits
        out = []
        for _ in range(count):
            a = secrets.randbits(self.exponent_bits)
            r = gmpy2.mpz(1)
            for row in self._table:
                digit = a & mask
                if digit:
                    r = r * row[digit] % n2
                a >>= w
            out.append(r)
        return out


_POOL_MAGIC = b"FWRP\x02"  # version 2: bound to the version-2 key fingerprint


class RandomiserPool:
    """Randomisers stored ahead of use in one file, bound to one public key.

    The file is the device's alone: a copy restored from a backup, or a cloned
    device image, would hand out randomisers a second time.
    """

    def __init__(self, path: str | Path, public: PublicKey) -> None:
        self.path = Path(path)
        self.public = public
        self._width = 2 * ((public.bits + 7) // 8)
        self._header = _POOL_MAGIC + public.fingerprint()
        if self.path.exists():
            with open(self.path, "rb") as fh:
                head = fh.read(len(self._header))
            if head[:4] == _POOL_MAGIC[:4] and head[4:5] != _POOL_MAGIC[4:]:
                raise CodecError(f"{self.path}: randomiser pool of an older SDK; delete it and fill a new one")
            if head != self._header:
                raise CodecError(f"{self.path}: randomiser pool of another key or not a pool file")
            if (self.path.stat().st_size - len(self._header)) % self._width:
                raise CodecError(f"{self.path}: randomiser pool has a truncated record")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(self._header)
                fh.flush()
                os.fsync(fh.fileno())

    def __len__(self) -> int:
        return (self.path.stat().st_size - len(self._header)) // self._width

    def fill(self, count: int, source: RandomiserSource | None = None) -> None:
        """Computes `count` more randomisers (standard ones by default) and appends them."""
        source = source or StandardRandomiser(self.public)
        with open(self.path, "ab") as fh:
            for r in source.take(count):
                fh.write(int(r).to_bytes(self._width, "big"))
            fh.flush()
            os.fsync(fh.fileno())

    def take(self, count: int) -> list:
        """Removes `count` randomisers from the end of the file and returns them."""
        available = len(self)
        if count > available:
            raise PoolExhaustedError(f"randomiser pool holds {available}, {count} needed: fill it first")
        keep = len(self._header) + (available - count) * self._width
        with open(self.path, "r+b") as fh:
            fh.seek(keep)
            data = fh.read(count * self._width)
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())
        w = self._width
        return [gmpy2.mpz(int.from_bytes(data[i * w : (i + 1) * w], "big")) for i in range(count)]


def make_randomiser(mode: str, public: PublicKey) -> RandomiserSource:
    """The live randomiser for a CryptoParams.randomiser mode."""
    if mode == "standard":
        return StandardRandomiser(public)
    if mode == "short-exponent":
        return ShortExponentRandomiser(public)
    raise CodecError(f"unknown randomiser mode {mode!r}")
