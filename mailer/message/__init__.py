"""Messages: MIME built once per variant, per-recipient slots filled in by splicing bytes.

- :mod:`mailer.message.template`: ``MessageTemplate.build`` encodes a variant once; ``fill`` and
  ``fill_wire`` make one recipient's message in microseconds (the layout and its invariants are
  described there);
- :mod:`mailer.message.encoding`: quoted-printable bodies and folded RFC 5322 headers;
- :mod:`mailer.message.reference`: the same message built with the ``email`` package, for tests.
"""

from mailer.message.reference import reference_message
from mailer.message.template import (
    DkimKey,
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
    "MessageParts",
    "MessageTemplate",
    "Recipient",
    "delivery_id_from_verp",
    "list_id",
    "message_id",
    "reference_message",
    "verp_address",
]
