"""Messages: MIME built once per variant, per-recipient slots filled in by splicing bytes.

- :mod:`mailer.message.template`: ``MessageTemplate.build`` encodes a variant once; ``fill`` and
  ``fill_wire`` make one recipient's message in microseconds (the layout and its invariants are
  described there);
- :mod:`mailer.message.encoding`: quoted-printable bodies and folded RFC 5322 headers;
- :mod:`mailer.message.dkim`: DKIM signatures with OpenSSL (RSA and Ed25519, dual), prepared once per
  variant; the keys from the settings and their DNS records;
- :mod:`mailer.message.reference`: the same message built with the ``email`` package, for tests.
"""

from mailer.message.dkim import DkimKey, DkimStatus, dkim_keys, dkim_status, dns_records
from mailer.message.reference import reference_message
from mailer.message.template import (
    MessageParts,
    MessageTemplate,
    Recipient,
    delivery_id_from_verp,
    list_id,
    message_id,
    verp_address,
)

__all__ = [
    "DkimKey",
    "DkimStatus",
    "MessageParts",
    "MessageTemplate",
    "Recipient",
    "delivery_id_from_verp",
    "dkim_keys",
    "dkim_status",
    "dns_records",
    "list_id",
    "message_id",
    "reference_message",
    "verp_address",
]
