"""event_mails: the reminders and change mails the workers send, each once (docs/events.md)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 18:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mailer.models

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_mails",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("rsvp_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("claimed_by", sa.String(length=200), nullable=False),
        sa.Column("claimed_at", mailer.models.UTCDateTime(), nullable=False),
        sa.Column("sent_at", mailer.models.UTCDateTime(), nullable=True),
        sa.Column("detail", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_event_mails_event_id_events"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["rsvp_id"], ["rsvps.id"], name=op.f("fk_event_mails_rsvp_id_rsvps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_mails")),
    )
    with op.batch_alter_table("event_mails", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_event_mails_event_id"), ["event_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_event_mails_rsvp_id"), ["rsvp_id"], unique=False)
        batch_op.create_index("ix_event_mails_once", ["event_id", "rsvp_id", "kind", "sequence"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("event_mails", schema=None) as batch_op:
        batch_op.drop_index("ix_event_mails_once")
        batch_op.drop_index(batch_op.f("ix_event_mails_rsvp_id"))
        batch_op.drop_index(batch_op.f("ix_event_mails_event_id"))
    op.drop_table("event_mails")
