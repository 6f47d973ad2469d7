"""Alembic environment for the HSM's tables (run by ``cardswitch.db.upgrade(url, "hsm_sim")``)."""

from cardswitch.db import run_env
from hsm_sim.keystore import Base

run_env(Base.metadata)
