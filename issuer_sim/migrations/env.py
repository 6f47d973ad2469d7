from cardswitch.db import run_env
from issuer_sim.models import Base

run_env(Base.metadata)
