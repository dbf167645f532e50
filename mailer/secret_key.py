"""The token key: how strong a key must be, and the secret file that holds the keys.

Links, return paths and Message-IDs are signed with these keys (docs/decisions.md, Trust
boundaries); settings load them (``mailer.settings.load``) and refuse weak ones here.
"""

from __future__ import annotations

import os
import secrets as _secrets
from itertools import pairwise
from pathlib import Path

from mailer.errors import ConfigError

# The strength of a key.
#
# A key must look like random material, because anyone holding one token can try keys offline: a
# 4-character key was found from one token in 0.4 s. Each key (MAILER_SECRET is comma-separated;
# .mailer-secret one per line) must have
#   - at least SECRET_MIN_LENGTH (32) characters and SECRET_MIN_DISTINCT (12) different ones;
#   - at least SECRET_MIN_BITS (128) bits by a Shannon estimate: its length times the entropy of its
#     own character frequencies (so "aaaa…" scores 0 and "abab…" 1 bit a character);
#   - and must not read like words: refused when letters of one case make up 60% of it, 30% of its
#     letters are vowels and 20% of its letter pairs are among the commonest English bigrams.
# Random keys pass: secrets.token_urlsafe(48) (what `mailer secret new` writes) always, a hex or
# base64 encoding of 32 random bytes all but never.

SECRET_MIN_LENGTH = 32
SECRET_MIN_DISTINCT = 12
SECRET_MIN_BITS = 128
SECRET_HOW_TO = (
    "generate one with `mailer secret new` (writes .mailer-secret, mode 600), or "
    'python -c "import secrets; print(secrets.token_urlsafe(48))"'
)
_BIGRAMS = "thheineranreonatenndtiesorteofedisitalarsttontngsehaasouiolevecomedehiriroicneearace"
_COMMON_BIGRAMS = frozenset(_BIGRAMS[i : i + 2] for i in range(0, len(_BIGRAMS), 2))


def new_secret() -> str:
    """A new random token key: 48 bytes, URL-safe base64 (64 characters)."""
    return _secrets.token_urlsafe(48)


def secret_weakness(key: str) -> str | None:
    """Why ``key`` is too weak to sign links with, or None when it looks random enough."""
    import math
    from collections import Counter

    if len(key) < SECRET_MIN_LENGTH:
        return f"it is {len(key)} characters long; a key needs at least {SECRET_MIN_LENGTH}"
    counts = Counter(key)
    if len(counts) < SECRET_MIN_DISTINCT:
        return f"it uses only {len(counts)} different characters; a key needs at least {SECRET_MIN_DISTINCT}"
    bits = -sum(n * math.log2(n / len(key)) for n in counts.values())
    if bits < SECRET_MIN_BITS:
        return f"it holds about {bits:.0f} bits of randomness; a key needs at least {SECRET_MIN_BITS}"
    one_case = max(sum(c.islower() for c in key), sum(c.isupper() for c in key)) / len(key)
    letters = [c for c in key.lower() if c.isalpha()]
    vowels = sum(c in "aeiouy" for c in letters) / max(len(letters), 1)
    pairs = [key[i : i + 2].lower() for i in range(len(key) - 1) if key[i : i + 2].isalpha()]
    common = sum(p in _COMMON_BIGRAMS for p in pairs) / max(len(pairs), 1)
    digits = sum(c.isdigit() for c in key) / len(key)  # random hex is ~37 % digits; phrases have few
    if one_case >= 0.6 and vowels >= 0.3 and common >= 0.2 and digits < 0.25:
        return "it reads like words, and phrases are guessable"
    patterned = _pattern_bits(key, bits / len(key))
    if patterned < SECRET_MIN_BITS:
        return (
            f"it is built of runs or repeats (such as 0123… or abcabc…) and holds about {patterned:.0f} "
            f"bits of randomness; a key needs at least {SECRET_MIN_BITS}"
        )
    return None


def _pattern_bits(key: str, per_character: float) -> float:
    """A second estimate of a key's randomness that sees through runs and repeats: a character
    continuing a run of equal steps (``abc``, ``246``, ``aaa``) or a walk along a keyboard row
    (``qwer``) costs 1 bit, a stretch of 4 or more characters that already occurred (in either case)
    costs what pointing back at it does, any other character ``per_character`` (its share of the
    Shannon estimate)."""
    import math

    n = len(key)
    folded = key.lower()
    pointer = 2 * math.log2(n)
    bits, i = 0.0, 0
    while i < n:
        copied = 0
        for length in range(n - i, 3, -1):
            if folded[i : i + length] in folded[:i]:
                copied = length
                break
        if copied:
            bits += pointer
            i += copied
            continue
        steps = i >= 2 and ord(key[i]) - ord(key[i - 1]) == ord(key[i - 1]) - ord(key[i - 2])
        walk = i >= 2 and _next_key(folded[i - 2], folded[i - 1]) and _next_key(folded[i - 1], folded[i])
        bits += 1.0 if steps or walk else per_character
        i += 1
    return bits


_KEYBOARD_ROWS = ("`1234567890-=", "qwertyuiop[]\\", "asdfghjkl;'", "zxcvbnm,./")
_BESIDE = frozenset(pair for row in _KEYBOARD_ROWS for a, b in pairwise(row) for pair in ((a, b), (b, a)))


def _next_key(a: str, b: str) -> bool:
    """Whether ``b`` is beside ``a`` on a keyboard row (qwerty, asdf, 1234…)."""
    return (a, b) in _BESIDE


def check_secrets(secret: str, *, path: Path | None = None, what: str = "the key for signed links") -> None:
    """Raise ``ConfigError`` when a key in ``secret`` (comma-separated) is too weak, saying why and
    how to make a strong one; the key itself is never shown. ``path`` is the secret file it came
    from (else it came from MAILER_SECRET)."""
    keys = [k.strip() for k in secret.split(",") if k.strip()]
    for index, key in enumerate(keys, 1):
        reason = secret_weakness(key)
        if reason is not None:
            which = f"key {index} of {len(keys)}{what.removeprefix('the key')}" if len(keys) > 1 else what
            raise ConfigError(
                f"{which} is too weak: {reason}",
                path=path,
                field=None if path else ("MAILER_SECRET" if "signed links" in what else "MAILER_ADDRESS_KEY"),
                hint=SECRET_HOW_TO,
            )


def read_secret_file(path: Path) -> list[str]:
    """The keys in a secret file (one a line, newest first; ``#`` lines are comments); [] if none.
    Refused when the file is readable by others."""
    import stat

    if not path.exists():
        return []
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError("the secret file is readable by others", path=path, hint=f"run: chmod 600 {path}")
    lines = path.read_text(encoding="utf-8").splitlines()
    return [k.strip() for line in lines if not line.startswith("#") for k in line.split(",") if k.strip()]


def write_private_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 600 from the start (written beside it, then renamed)."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_secret_file(path: Path, keys: list[str], *, what: str = "the key for signed links") -> None:
    """Write ``keys`` (newest first) to the secret file ``path``, mode 600: the keys for signed
    links (.mailer-secret), or ``what`` else (the suppression hash's, .mailer-address-key)."""
    if "signed links" in what:
        header = (
            "# mailer's keys for signed links, newest first: the first signs, any verifies. Keep private.\n"
        )
    else:
        header = (
            "# mailer's keys of the suppression hash (HMAC-SHA256 of an address), newest first: the\n"
            "# first hashes, the others are still checked for suppressions of people erased under\n"
            "# them. Keep private; back it up with the database (without it no erased person's\n"
            "# suppression can be matched).\n"
        )
    write_private_file(path, header + "".join(k + "\n" for k in keys))


# --- the suppression hash's keys (docs/data.md, The suppression hash) ------------------------------

ADDRESS_KEYS_INFO = "mailer.address_keys"  # where a session's ``info`` holds them (mailer.db)


class AddressKeys:
    """The keys of the suppression hash, newest first (``Settings.address_keys``), as an open
    database carries them in its sessions' ``info``; and whether its members are hashed under the
    newest yet (checked once per open database: mailer/audience/rehash.py). The hash itself is made
    in ``mailer.audience.addresses``."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = tuple(k.encode("utf-8") for k in keys if k)
        self.up_to_date = False

    @property
    def fingerprint(self) -> str:
        """Names the newest key without revealing it (an HMAC of a fixed text)."""
        import hmac

        return hmac.new(self.keys[0], b"mailer-address-key-id", "sha256").hexdigest()[:16]
