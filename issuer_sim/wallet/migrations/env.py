from cardswitch.db import run_env
from issuer_sim.wallet.models import Base

run_env(Base.metadata)
