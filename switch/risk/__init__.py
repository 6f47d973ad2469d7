"""Real-time risk: rules as YAML data, velocity counters fed from the journal, one engine and
the pipeline step that applies it (see docs/risk.md)."""

from switch.risk.engine import Assessment, FiredRule, RiskEngine
from switch.risk.rules import RuleError, RuleSet, load, load_default
from switch.risk.step import RiskCheck
from switch.risk.velocity import VelocityStore

__all__ = ["Assessment", "FiredRule", "RiskCheck", "RiskEngine", "RuleError", "RuleSet",
           "VelocityStore", "load", "load_default"]
