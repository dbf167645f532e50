"""events and rsvps: the calendar entries of sent issues, and the answers to them (docs/events.md)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 18:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mailer.models

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=300), nullable=False),
        sa.Column("campaign_slug", sa.String(length=200), nullable=False),
        sa.Column("entry_key", sa.String(length=200), nullable=False),
        sa.Column("network", sa.String(length=64), server_default="", nullable=False),
        sa.Column("regions", sa.Text(), server_default="", nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("starts_at", mailer.models.UTCDateTime(), nullable=False),
        sa.Column("ends_at", mailer.models.UTCDateTime(), nullable=False),
        sa.Column("all_day", sa.Boolean(), nullable=False),
        sa.Column("place", sa.Text(), server_default="", nullable=False),
        sa.Column("online_url", sa.Text(), server_default="", nullable=False),
        sa.Column("sequence", sa.Integer(), server_default="0", nullable=False),
        sa.Column("announced_sequence", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_modified", mailer.models.UTCDateTime(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=True),
        sa.Column("remind_hours", sa.Integer(), server_default="24", nullable=False),
        sa.Column("cancelled_at", mailer.models.UTCDateTime(), nullable=True),
        sa.Column("created_at", mailer.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("uid", name=op.f("uq_events_uid")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_events_campaign_slug"), ["campaign_slug"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_starts_at"), ["starts_at"], unique=False)
    op.create_table(
        "rsvps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("name", sa.String(length=200), server_default="", nullable=False),
        sa.Column("answer", sa.String(length=16), nullable=False),
        sa.Column("answered_at", mailer.models.UTCDateTime(), nullable=False),
        sa.Column("confirmed_at", mailer.models.UTCDateTime(), nullable=True),
        sa.Column("promoted_at", mailer.models.UTCDateTime(), nullable=True),
        sa.Column("promotion_mailed_at", mailer.models.UTCDateTime(), nullable=True),
        sa.Column("link_serial", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", mailer.models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", mailer.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_rsvps_event_id_events"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_rsvps_member_id_members"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rsvps")),
    )
    with op.batch_alter_table("rsvps", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rsvps_event_id"), ["event_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_rsvps_member_id"), ["member_id"], unique=False)
        batch_op.create_index("ix_rsvps_event_member", ["event_id", "member_id"], unique=True)
        batch_op.create_index("ix_rsvps_event_email", ["event_id", "email"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("rsvps", schema=None) as batch_op:
        batch_op.drop_index("ix_rsvps_event_email")
        batch_op.drop_index("ix_rsvps_event_member")
        batch_op.drop_index(batch_op.f("ix_rsvps_member_id"))
        batch_op.drop_index(batch_op.f("ix_rsvps_event_id"))
    op.drop_table("rsvps")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_starts_at"))
        batch_op.drop_index(batch_op.f("ix_events_campaign_slug"))
    op.drop_table("events")
