"""Exchange ActiveSync (EAS 2.5 to 16.1) for any mail server.

``eas.wbxml`` is the WBXML codec, ``eas.tags`` the code page constants.
"""

from __future__ import annotations

__version__ = "0.1.0"
