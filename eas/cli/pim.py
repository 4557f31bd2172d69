"""``eas import`` and ``eas export``: calendars, contacts, tasks and notes of the reference
store from and to iCalendar (.ics) and vCard (.vcf) files.

What a file holds decides where it goes: VEVENTs to Calendar, VTODOs to Tasks, VJOURNALs
to Notes, VCARDs to Contacts (``--folder`` names another folder of that class). An import
is one transaction: a file that fails half way imports nothing. A running server's Pings
wake, as for ``eas mail deliver``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from eas import notify, server
from eas.cli.admin import UsageError, existing_store, known_user

MAX_IMPORT = 64 * 1024 * 1024  # bytes of one file
_DEFAULT_FOLDER = {"VEVENT": "Calendar", "VTODO": "Tasks", "VJOURNAL": "Notes", "VCARD": "Contacts"}


def _read_file(path: str) -> str:
    if path == "-":
        data = sys.stdin.buffer.read(MAX_IMPORT + 1)
    else:
        with open(path, "rb") as f:
            data = f.read(MAX_IMPORT + 1)
    if len(data) > MAX_IMPORT:
        raise UsageError(f"{path}: larger than {MAX_IMPORT} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: not UTF-8 (byte {e.start})") from None
    if not text.strip():
        raise UsageError(f"{path}: empty file")
    return text


def split_vcards(text: str) -> list[str]:
    """The BEGIN:VCARD ... END:VCARD blocks of a file, each kept as written."""
    cards: list[str] = []
    current: list[str] | None = None
    for line in text.splitlines(keepends=True):
        word = line.strip().upper()
        if word == "BEGIN:VCARD":
            if current is not None:
                raise UsageError("a BEGIN:VCARD inside another vCard")
            current = [line]
        elif current is not None:
            current.append(line)
            if word == "END:VCARD":
                cards.append("".join(current))
                current = None
        elif word:
            raise UsageError(f"text outside a vCard: {line.strip()[:60]!r}")
    if current is not None:
        raise UsageError("a vCard without END:VCARD")
    return cards


def _batches(text: str, folder: str | None) -> list[tuple[str, list[str]]]:
    """``(folder, item texts)`` per kind of item in the file."""
    from eas.items import ical

    head = text.lstrip().upper()
    kinds: dict[str, list[str]] = {}
    if head.startswith("BEGIN:VCARD"):
        kinds["VCARD"] = split_vcards(text)
    elif head.startswith("BEGIN:VCALENDAR"):
        try:
            for item in ical.split_ical(text):
                kind = next(k for k in ("VEVENT", "VTODO", "VJOURNAL") if f"\nBEGIN:{k}" in item.replace("\r", ""))
                kinds.setdefault(kind, []).append(item)
        except ical.ICalError as e:
            raise UsageError(str(e)) from None
    else:
        raise UsageError("neither iCalendar (BEGIN:VCALENDAR) nor vCard (BEGIN:VCARD)")
    if not kinds:
        raise UsageError("the file holds no event, task, note or contact")
    if folder is not None and len(kinds) > 1:
        raise UsageError(f"--folder takes one kind of item; the file holds {', '.join(sorted(kinds))}")
    return [(folder or _DEFAULT_FOLDER[kind], items) for kind, items in kinds.items()]


def import_file(args: argparse.Namespace) -> int:
    from eas.backend import BackendError

    store = existing_store(args)
    email = known_user(store, args.user)
    batches = _batches(_read_file(args.file), args.folder)
    notify.publish_changes(store, server.notifier(server.data_dir(args.data_dir)))
    try:
        done = store.import_batches(email, batches)
    except (ValueError, BackendError) as e:  # a bad item, an event there already, an item too large
        raise UsageError(f"nothing imported: {e}") from None
    for (folder, _), ids in zip(batches, done, strict=True):
        print(f"imported {len(ids)} item{'s' if len(ids) != 1 else ''} into {email} {folder}")
    return 0


def export_folder(args: argparse.Namespace) -> int:
    store = existing_store(args)
    email = known_user(store, args.user)
    try:
        cls = store.folder_class(email, args.folder)
        texts = store.export_items(email, args.folder)
    except ValueError as e:
        raise UsageError(str(e)) from None
    # A vCard kept as imported may lack the last line break.
    out = "".join(t if t.endswith("\n") else t + "\r\n" for t in texts) if cls == "Contacts" else merge_ical(texts)
    if args.output in (None, "-"):
        sys.stdout.write(out)
    else:
        with open(args.output, "w", encoding="utf-8", newline="") as f:
            f.write(out)
        print(f"exported {len(texts)} item{'s' if len(texts) != 1 else ''} to {args.output}", file=sys.stderr)
    return 0


def merge_ical(texts: list[str]) -> str:
    """One VCALENDAR holding every stored item's components, each VTIMEZONE once."""
    import icalendar

    from eas.items.ical import PRODID

    merged = icalendar.Calendar()
    merged.add("PRODID", PRODID)
    merged.add("VERSION", "2.0")
    zones: set[str] = set()
    for text in texts:
        for comp in icalendar.Calendar.from_ical(text).subcomponents:
            if comp.name == "VTIMEZONE":
                tzid = str(comp.get("TZID", ""))
                if tzid in zones:
                    continue
                zones.add(tzid)
            merged.add_component(comp)
    merged.add_missing_timezones()  # the store keeps IANA zones by reference
    return str(merged.to_ical().decode())


def add_parsers(verbs: Any, data_dir_parent: argparse.ArgumentParser) -> None:
    """Add ``import`` and ``export`` to the ``eas`` command."""
    imp = verbs.add_parser("import", parents=[data_dir_parent],
                           help="import events, tasks, notes (.ics) or contacts (.vcf) into a user's folders")
    imp.add_argument("user")
    imp.add_argument("file", help="an .ics or .vcf file; - for stdin")
    imp.add_argument("--folder", help="the folder (default: Calendar, Tasks, Notes or Contacts by content)")
    imp.set_defaults(run=import_file)
    exp = verbs.add_parser("export", parents=[data_dir_parent],
                           help="write a calendar, tasks or notes folder as .ics, a contacts folder as .vcf")
    exp.add_argument("user")
    exp.add_argument("folder")
    exp.add_argument("-o", "--output", help="the file to write (default stdout)")
    exp.set_defaults(run=export_folder)
