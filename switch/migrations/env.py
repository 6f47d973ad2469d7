from cardswitch.db import run_env
from switch.models import Base

run_env(Base.metadata)
