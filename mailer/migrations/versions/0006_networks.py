"""networks and stages (docs/decisions.md, Networks and Stages): the network a campaign speaks
as, the stages of a send, network leaves

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 13:35:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mailer.models

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "campaign_stages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("segment", sa.Text(), nullable=False),
        sa.Column("limit", sa.Integer(), nullable=True),
        sa.Column("new_members", sa.Boolean(), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.Column("created_at", mailer.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_stages_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_stages")),
    )
    with op.batch_alter_table("campaign_stages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_campaign_stages_campaign_id"), ["campaign_id"], unique=False)

    op.create_table(
        "network_leaves",
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("network", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("campaign", sa.String(length=200), nullable=True),
        sa.Column("created_at", mailer.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_network_leaves_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("member_id", "network", name=op.f("pk_network_leaves")),
    )
    with op.batch_alter_table("network_leaves", schema=None) as batch_op:
        batch_op.create_index("ix_network_leaves_network", ["network", "member_id"], unique=False)

    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("network", sa.String(length=64), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("network")
    with op.batch_alter_table("network_leaves", schema=None) as batch_op:
        batch_op.drop_index("ix_network_leaves_network")
    op.drop_table("network_leaves")
    with op.batch_alter_table("campaign_stages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaign_stages_campaign_id"))
    op.drop_table("campaign_stages")
