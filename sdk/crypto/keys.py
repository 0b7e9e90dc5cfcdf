"""Paillier keys: generation, public-key JSON, private-key files (mode 0600)."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gmpy2
from phe import paillier

from sdk.crypto.errors import CodecError

KEY_FINGERPRINT_MAGIC = b"FWPK"


class PublicKey:
    """A Paillier public key (g = n + 1) with gmpy2 numbers for the hot path."""

    def __init__(self, n: int) -> None:
        self.n = gmpy2.mpz(n)
        self.n_square = self.n * self.n
        self.bits = int(self.n.bit_length())

    @property
    def phe(self) -> paillier.PaillierPublicKey:
        return paillier.PaillierPublicKey(int(self.n))

    def fingerprint_input(self) -> bytes:
        """`FWPK` | u16 key bits | n big-endian in key_bits / 8 bytes (docs/encrypted-updates.md)."""
        n_bytes = int(self.n).to_bytes((self.bits + 7) // 8, "big")
        return KEY_FINGERPRINT_MAGIC + struct.pack(">H", self.bits) + n_bytes

    def fingerprint(self) -> bytes:
        """SHA-256 of `fingerprint_input()`."""
        return hashlib.sha256(self.fingerprint_input()).digest()

    def to_json(self) -> str:
        return json.dumps({"n": format(int(self.n), "x")})

    @staticmethod
    def from_json(text: str) -> "PublicKey":
        try:
            n = int(json.loads(text)["n"], 16)
        except (ValueError, KeyError, TypeError) as exc:
            raise CodecError(f"not a public key: {exc!r}") from exc
        if n < 3 or n % 2 == 0:
            raise CodecError("not a public key: n must be an odd integer")
        return PublicKey(n)

    def __eq__(self, other) -> bool:
        return isinstance(other, PublicKey) and self.n == other.n

    def __repr__(self) -> str:
        return f"PublicKey({self.bits} bits, fingerprint {self.fingerprint().hex()[:16]})"


def _decrypt_modulo(bases: list, prime: int, square: int, h: int) -> list:
    """Paillier decryption modulo one prime factor: L(c^(prime-1) mod prime^2) * h mod prime, for every c."""
    prime, h = gmpy2.mpz(prime), gmpy2.mpz(h)
    return [(x - 1) // prime * h % prime for x in gmpy2.powmod_base_list(bases, prime - 1, gmpy2.mpz(square))]


class PrivateKey:
    """A Paillier private key; its repr never shows p or q."""

    def __init__(self, public: PublicKey, p: int, q: int) -> None:
        if gmpy2.mpz(p) * gmpy2.mpz(q) != public.n:
            raise CodecError("private key does not match the public key")
        self.public = public
        self._phe = paillier.PaillierPrivateKey(public.phe, int(p), int(q))

    @property
    def phe(self) -> paillier.PaillierPrivateKey:
        return self._phe

    def raw_decrypt(self, ciphertext: int) -> int:
        """The plaintext integer of one ciphertext (CRT, gmpy2 through phe)."""
        return self._phe.raw_decrypt(int(ciphertext))

    def raw_decrypt_many(self, ciphertexts: list[int]) -> list[int]:
        """The plaintexts of many ciphertexts: the same CRT as `raw_decrypt`, with the powers modulo p^2 and
        q^2 computed on two threads (gmpy2 releases the GIL for a list of bases)."""
        key = self._phe
        bases = [gmpy2.mpz(c) for c in ciphertexts]
        with ThreadPoolExecutor(2) as pool:
            halves = [pool.submit(_decrypt_modulo, bases, prime, square, h)
                      for prime, square, h in ((key.p, key.psquare, key.hp), (key.q, key.qsquare, key.hq))]
            mp, mq = (half.result() for half in halves)
        p, q, p_inverse = gmpy2.mpz(key.p), gmpy2.mpz(key.q), gmpy2.mpz(key.p_inverse)
        return [int(a + (b - a) * p_inverse % q * p) for a, b in zip(mp, mq)]

    def save(self, path: str | Path) -> None:
        """Writes the key to a new file readable by its owner only (0600)."""
        path = Path(path)
        data = json.dumps({"n": format(int(self.public.n), "x"), "p": format(self._phe.p, "x"),
                           "q": format(self._phe.q, "x")})
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    @staticmethod
    def load(path: str | Path) -> "PrivateKey":
        path = Path(path)
        mode = path.stat().st_mode & 0o077
        if mode:
            raise CodecError(f"{path}: private key file is readable by others (chmod 600 it)")
        try:
            raw = json.loads(path.read_text())
            public = PublicKey(int(raw["n"], 16))
            return PrivateKey(public, int(raw["p"], 16), int(raw["q"], 16))
        except (ValueError, KeyError, TypeError) as exc:
            raise CodecError(f"{path}: not a private key file") from exc

    def __repr__(self) -> str:
        return f"PrivateKey(<hidden>, public={self.public!r})"


def generate_keypair(bits: int = 2048) -> tuple[PublicKey, PrivateKey]:
    """A fresh key pair; n has exactly `bits` bits."""
    phe_public, phe_private = paillier.generate_paillier_keypair(n_length=bits)
    public = PublicKey(phe_public.n)
    return public, PrivateKey(public, phe_private.p, phe_private.q)
