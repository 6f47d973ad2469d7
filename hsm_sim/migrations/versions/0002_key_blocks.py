"""hsm_keys: keys as TR-31 key blocks under the LMK, with usage, mode of use and exportability.

Existing rows keep their AES-GCM ``wrapped_key`` until the HSM next starts with the LMK and
rewrites each as a key block (a migration has no LMK to do it with).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("hsm_keys") as batch:
        batch.add_column(sa.Column("key_block", sa.Text(), nullable=True))
        batch.add_column(sa.Column("usage", sa.String(2), nullable=False, server_default=""))
        batch.add_column(sa.Column("mode_of_use", sa.String(1), nullable=False,
                                   server_default=""))
        batch.add_column(sa.Column("exportability", sa.String(1), nullable=False,
                                   server_default=""))
        batch.alter_column("wrapped_key", existing_type=sa.LargeBinary(), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("hsm_keys") as batch:
        batch.alter_column("wrapped_key", existing_type=sa.LargeBinary(), nullable=False)
        batch.drop_column("exportability")
        batch.drop_column("mode_of_use")
        batch.drop_column("usage")
        batch.drop_column("key_block")
