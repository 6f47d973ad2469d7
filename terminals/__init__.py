"""Terminal simulator: a POS (:mod:`terminals.pos`), its DUKPT PIN pad (:mod:`terminals.pinpad`),
YAML test scenarios (:mod:`terminals.scenario`) and a load generator (:mod:`terminals.load`),
driven from ``cardswitch terminal ...`` (:mod:`terminals.cli`)."""
