"""Which background engines run: ``eas service list|start|stop|restart``.

Each engine has a setting here saying whether it runs. A stopped engine costs nothing
per request: the ABQ engine stopped allows every device without reading its rules (as
the Disabled mode does), the notifier sends no mail. The rate jail (``anti-dos``) keeps
its own switch, ``jail.enabled``. A running server reads these through the engines'
short caches, so a change reaches it within a second or two; ``restart`` goes over the
notify socket (``eas.server.restart_service``).
"""

from __future__ import annotations

from typing import Any

from eas.access import register


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("expected true or false")
    return value


# service name -> the setting that says whether it runs
SERVICES: dict[str, str] = {
    "abq": "service.abq",
    "anti-dos": "jail.enabled",
    "notifier": "service.notifier",
}

register("service.abq", _bool, True, "run the ABQ engine (false: every device allowed, no rules read)")
register("service.notifier", _bool, True, "run the notifier that mails administrators (eas.access.notifier)")
