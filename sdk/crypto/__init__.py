"""Packed Paillier encryption of model updates (quantise, pack, encrypt, add, decrypt)."""
