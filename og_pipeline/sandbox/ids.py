"""Deterministic identifiers and per-row attributes derived from (seed, kind, row).

Storing a million emails, names and 32-char ids would dominate memory, so they are derived on
demand from a 64-bit mix of the seed and the row number. Public ids start with the row in hex,
fixed width, so their string order equals row order: ordering the index by (updated, row) is then
ordering by (updated, primary key), and an id maps back to its row without a lookup table.
"""

from __future__ import annotations

_M64 = (1 << 64) - 1

KIND_SUBSCRIPTION = 1
KIND_ORDER = 2
KIND_ITEM = 3
KIND_CUSTOMER = 4
KIND_PAYMENT = 6
KIND_ADDRESS = 7
KIND_COMPONENT = 8

CUSTOMER_ID_BASE = 10_000_000


def mix64(x: int) -> int:
    """splitmix64 finaliser: cheap, well-distributed, deterministic across runs and platforms."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def row_hash(seed: int, kind: int, row: int) -> int:
    return mix64((seed * 1_000_003 + kind) * 0x100000001 + row)


def public_id(seed: int, kind: int, row: int) -> str:
    h = row_hash(seed, kind, row)
    return f"{row:08x}{h:016x}{mix64(h) >> 32:08x}"


def row_of_public_id(seed: int, kind: int, pid: str) -> int | None:
    """The row a public id names, or None when it is not one this store minted."""
    if len(pid) != 32:
        return None
    try:
        row = int(pid[:8], 16)
    except ValueError:
        return None
    return row if public_id(seed, kind, row) == pid else None


def customer_id(row: int) -> str:
    # Fixed width so string order equals row order (10,000,000 .. 99,999,999).
    return str(CUSTOMER_ID_BASE + row)


def row_of_customer_id(cid: str) -> int | None:
    if len(cid) != 8 or not cid.isdigit():
        return None
    return int(cid) - CUSTOMER_ID_BASE


# fmt: off
FIRST_NAMES = (
    "Ava", "Liam", "Mia", "Noah", "Emma", "Lucas", "Olivia", "Mateo", "Sofia", "Ethan",
    "Isla", "Leo", "Zoe", "Omar", "Chloe", "Ravi", "Grace", "Kenji", "Lena", "Diego",
)
LAST_NAMES = (
    "Smith", "Garcia", "Nguyen", "Okafor", "Miller", "Rossi", "Kowalski", "Haddad", "Tanaka",
    "Brown", "Silva", "Novak", "Dubois", "Jensen", "Patel", "Moreau", "Khan", "Larsen",
)
# fmt: on


def share_hit(h: int, shift: int, share: float) -> bool:
    """A deterministic Bernoulli draw from bits of a row hash."""
    return ((h >> shift) & 0xFFFF) < int(share * 0x10000)
