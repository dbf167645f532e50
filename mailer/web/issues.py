"""The sent issues the pages show are ``mailer.archive``'s; ``STARTED`` is re-exported here for
the desk's pages, which import it from this module."""

from __future__ import annotations

from mailer.archive import STARTED as STARTED
