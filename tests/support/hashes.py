"""The suppression hash as the tests' workspaces make it: every test workspace is a copy of one
made by ``mailer init`` whose ``.mailer-address-key`` holds ``TEST_ADDRESS_KEY`` (conftest.py), so
a test can name a member's hash without a session. The hash itself is the library's
(``mailer.audience.addresses.keyed_hash``)."""

from __future__ import annotations

from pathlib import Path

from mailer.audience import addresses
from mailer.secret_key import write_secret_file
from mailer.settings import ADDRESS_KEY_FILE, ADDRESS_KEY_WHAT

# A strong key (mailer refuses weak ones): test-only, never for a real workspace.
TEST_ADDRESS_KEY = "Zq4vR8pW2nLx7TbKs9GmYc3HjD6fAe5uQo1iVw0ErNtB_-UyPkXgMhCzJaOdSlF"


def address_hash(normalised: str) -> str:
    """The hash of ``normalised`` (a normalised address) in a test workspace."""
    return addresses.keyed_hash(TEST_ADDRESS_KEY.encode("utf-8"), normalised)


def hash_of(address: str) -> str:
    """Normalise ``address`` and return its hash in a test workspace."""
    return address_hash(addresses.normalise(address))


def use_test_key(workspace: Path) -> None:
    """Give a workspace ``mailer init`` made the tests' key of the suppression hash."""
    write_secret_file(workspace / ADDRESS_KEY_FILE, [TEST_ADDRESS_KEY], what=ADDRESS_KEY_WHAT)
