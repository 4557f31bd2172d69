"""Sample mail for a demo mailbox: ``populate(store, email)`` puts a handful of realistic
messages in the Inbox (plain text, HTML, an attachment, an RFC 2047 subject, an inline
image, a two-message thread), so a phone pointed at ``eas serve`` shows something."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from eas.store.reference import ReferenceStore

# A 1x1 transparent PNG.
_PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")


def sample_messages(to: str, now: datetime | None = None) -> list[bytes]:
    """The sample messages addressed to ``to``, newest last; dates count back from ``now``."""
    now = now or datetime.now(UTC)

    def date(hours: float) -> str:
        return format_datetime((now - timedelta(hours=hours)).replace(microsecond=0))

    png = base64.encodebytes(_PNG).decode("ascii")
    pdf = base64.encodebytes(b"%PDF-1.4\n% a tiny demo file\n%%EOF\n").decode("ascii")
    messages = [
        f"""From: Eas Project <welcome@eas.example>
To: {to}
Subject: Welcome to your ActiveSync mailbox
Date: {date(72)}
Message-ID: <welcome.1@eas.example>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Hello,

this mailbox is served by the eas reference store. Mail, folders and
out-of-office settings you change on your phone are kept here.

-- 
The eas project
""",
        f"""From: "Newsletter" <news@shop.example>
To: {to}
Subject: This week's offers
Date: {date(48)}
Message-ID: <news.42@shop.example>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="alt-1"

--alt-1
Content-Type: text/plain; charset=us-ascii

This week: everything at half price. See the HTML version for pictures.
--alt-1
Content-Type: text/html; charset=utf-8

<html><body><h1>This week</h1><p>Everything at <b>half price</b>.</p></body></html>
--alt-1--
""",
        f"""From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <joerg@example.de>
To: {to}
Subject: =?utf-8?b?R3LDvMOfZSBhdXMgTcO8bmNoZW4g4piA?=
Date: {date(30)}
Message-ID: <gruesse.7@example.de>
MIME-Version: 1.0
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

Sch=F6ne Gr=FC=DFe aus M=FCnchen!
""",
        f"""From: Carol Office <carol@corp.example>
To: {to}
Cc: dave@corp.example
Subject: Quarterly report
Date: {date(20)}
Message-ID: <report.q3@corp.example>
Importance: high
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="mix-1"

--mix-1
Content-Type: text/plain; charset=utf-8

Please find the report attached.
--mix-1
Content-Type: application/pdf; name="report-q3.pdf"
Content-Disposition: attachment; filename="report-q3.pdf"
Content-Transfer-Encoding: base64

{pdf}
--mix-1--
""",
        f"""From: Erin <erin@photos.example>
To: {to}
Subject: Look at this
Date: {date(10)}
Message-ID: <inline.1@photos.example>
MIME-Version: 1.0
Content-Type: multipart/related; boundary="rel-1"

--rel-1
Content-Type: text/html; charset=utf-8

<html><body><p>A tiny picture:</p><img src="cid:dot@photos.example"></body></html>
--rel-1
Content-Type: image/png; name="dot.png"
Content-Disposition: inline; filename="dot.png"
Content-ID: <dot@photos.example>
Content-Transfer-Encoding: base64

{png}
--rel-1--
""",
        f"""From: Frank <frank@example.org>
To: {to}
Subject: Lunch on Friday?
Date: {date(6)}
Message-ID: <lunch.1@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Shall we have lunch on Friday at noon?
""",
        f"""From: Frank <frank@example.org>
To: {to}
Subject: Re: Lunch on Friday?
Date: {date(2)}
Message-ID: <lunch.3@example.org>
In-Reply-To: <lunch.2@example.org>
References: <lunch.1@example.org> <lunch.2@example.org>
X-Priority: 5
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Great, see you at the usual place.

> Friday works for me.
""",
    ]
    return [m.replace("\n", "\r\n").encode("utf-8") for m in messages]


def populate(store: ReferenceStore, email: str) -> list[str]:
    """Deliver the sample messages to ``email``'s Inbox; their item ids."""
    return [store.deliver(email, mime) for mime in sample_messages(email)]
