"""The one logger setup: one line per event to stderr and ``var/logs/<service>.log``.

A filter masks anything that looks like a PAN before it is written, as a last line of defence;
code must still never log a clear PAN, PIN or key.
"""

from __future__ import annotations

import logging
import os
import sys

from cardswitch.cards import mask_pans_in
from cardswitch.config import var_dir


class PanMaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        masked = mask_pans_in(msg)
        if masked != msg:
            record.msg, record.args = masked, None
        return True


def setup(service: str, level: str | None = None) -> logging.Logger:
    """Configures the root logger for a service process and returns the service's logger."""
    level = level or os.environ.get("CARDSWITCH_LOG_LEVEL", "INFO")
    fmt = logging.Formatter(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s")
    logs = var_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    handlers: list[logging.Handler] = [
        logging.StreamHandler(sys.stderr),
        logging.FileHandler(logs / f"{service}.log"),
    ]
    root = logging.getLogger()
    root.handlers.clear()
    for h in handlers:
        h.setFormatter(fmt)
        h.addFilter(PanMaskingFilter())
        root.addHandler(h)
    root.setLevel(level)
    return logging.getLogger(service)
