"""consent_log: the network a sign-up was to, the form it came from and the version of its wording

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 18:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("consent_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("network", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("form", sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column("wording_version", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("consent_log", schema=None) as batch_op:
        batch_op.drop_column("wording_version")
        batch_op.drop_column("form")
        batch_op.drop_column("network")
