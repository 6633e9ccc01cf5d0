"""The board report: one self-contained HTML file, CSV files and a JSON file of the same figures.

    python -m audit report --from 2026-10-01 --to 2026-11-30 [--lang ar|en] [--out DIR] [--as-of MOMENT | --hijri DAY]

Arabic (right to left) by default, English with `--lang en`; printable; every
date in the Hijri and the Gregorian calendars; charts are inline SVG, and the
file refers to no external resource, so it opens without a network. The figures
come from the integration events of the KHIDMA stream (`audit.figures`), the
compliance exceptions from `audit.compliance.run_checks` over each case's
timeline from the services' stores and the stream together (the stream alone
when no store can be read: the report then names the checks it could not run),
against the policy packs. The timelines of the listed exceptions' cases are
embedded in the HTML (`#case-<id>`), so the evidence reads offline.

The report stands at one moment, stated in both calendars: the end of the
period, or `--as-of` when that is earlier (default: the clock, so a report of a
period not yet over counts the backlog's ages now). Events after the moment are
not read, neither for the figures nor for the checks, whose clock (a referral's
age, the grace of a survey invitation) is that moment too: the same command
with the same `--as-of` writes the same report later, whatever was recorded
since. An exception belongs to the period when what proves it happened in the
period (`ComplianceException.proven_at`: a late decision taken in it, whatever
the date its request was received), the rule the figures of the period's
activity follow.

One module per job: `text` (the words, in Arabic and English), `exceptions`
(the listed exceptions and their timelines), `html` (the page, from the Jinja2
templates in `templates/`), `exports` (CSV and JSON), `build` (the files from
the figures and the exceptions) and `cli` (the command). The names below are
the package's interface, importable from `audit.report` as before.
"""

from audit.report.build import (
    ReportFiles,
    compliance_exceptions,
    figures_and_exceptions,
    stream_events,
    write_report,
)
from audit.report.cli import parse_day, register_commands, run_report_command
from audit.report.exceptions import MAX_LISTED, EvidenceTimelines, ExceptionList
from audit.report.exports import CSV_FILES, EXCEPTION_COLUMNS, csv_tables, report_json
from audit.report.html import render_html
from audit.report.text import TEXT, Names, t

__all__ = [
    "CSV_FILES",
    "EXCEPTION_COLUMNS",
    "MAX_LISTED",
    "TEXT",
    "EvidenceTimelines",
    "ExceptionList",
    "Names",
    "ReportFiles",
    "compliance_exceptions",
    "csv_tables",
    "figures_and_exceptions",
    "parse_day",
    "register_commands",
    "render_html",
    "report_json",
    "run_report_command",
    "stream_events",
    "t",
    "write_report",
]
