"""The database tables, as SQLAlchemy 2.0 typed models, one module per part of the system.

``base`` holds the declarative base and the UTC timestamp type; ``audience``, ``sending``,
``inbound``, ``desk``, ``events`` and ``rights`` hold their tables. Every table is importable from
here, and importing this package registers them all on ``Base.metadata`` (which the migrations and
``create_all`` read).
"""

from __future__ import annotations

from mailer.models.audience import (
    ConsentEvent,
    Interest,
    Member,
    MemberChoice,
    MemberField,
    MemberInterest,
    NetworkLeave,
    Region,
    Suppression,
)
from mailer.models.base import NAMING, Base, UTCDateTime, utcnow
from mailer.models.desk import (
    Approval,
    ApprovalAsk,
    AuditEntry,
    Contribution,
    DeskSession,
    IssueEdit,
    LoginAttempt,
    SignInLink,
    User,
    UserRole,
)
from mailer.models.eventmail import EventMail, OrganiserMessage
from mailer.models.events import EventRow, Rsvp
from mailer.models.inbound import BounceEvent, InboundMessage, ReplyRequest
from mailer.models.rights import AddressKeyState
from mailer.models.sending import (
    Campaign,
    CampaignStage,
    ChoreRun,
    Delivery,
    RateBucket,
    RateHit,
    Variant,
    WorkerRow,
)

__all__ = [
    "NAMING",
    "AddressKeyState",
    "Approval",
    "ApprovalAsk",
    "AuditEntry",
    "Base",
    "BounceEvent",
    "Campaign",
    "CampaignStage",
    "ChoreRun",
    "ConsentEvent",
    "Contribution",
    "Delivery",
    "DeskSession",
    "EventMail",
    "EventRow",
    "InboundMessage",
    "Interest",
    "IssueEdit",
    "LoginAttempt",
    "Member",
    "MemberChoice",
    "MemberField",
    "MemberInterest",
    "NetworkLeave",
    "OrganiserMessage",
    "RateBucket",
    "RateHit",
    "Region",
    "ReplyRequest",
    "Rsvp",
    "SignInLink",
    "Suppression",
    "UTCDateTime",
    "User",
    "UserRole",
    "Variant",
    "WorkerRow",
    "utcnow",
]
