"""The minutes of a committee sitting: a printable, self-contained HTML page.

Arabic (right to left) by default, English on request. Pure: it renders the
sitting's status (as the application returns it) with the association's pack.
"""

from __future__ import annotations

from html import escape
from typing import Any

from shared.policy import PolicyPack

LABELS: dict[str, dict[str, str]] = {
    "title": {"ar": "محضر جلسة لجنة البحث", "en": "Minutes of the research committee sitting"},
    "held_at": {"ar": "تاريخ الجلسة", "en": "Date of the sitting"},
    "present": {"ar": "الأعضاء الحاضرون", "en": "Members present"},
    "quorum": {"ar": "النصاب", "en": "Quorum"},
    "quorate": {"ar": "النصاب مكتمل", "en": "Quorum reached"},
    "not_quorate": {"ar": "النصاب غير مكتمل", "en": "Quorum not reached"},
    "status": {"ar": "حالة الجلسة", "en": "Sitting"},
    "open": {"ar": "منعقدة", "en": "open"},
    "closed": {"ar": "مغلقة", "en": "closed"},
    "closed_at": {"ar": "أُغلقت في", "en": "closed on"},
    "case": {"ar": "الطلب", "en": "Case"},
    "votes": {"ar": "الأصوات", "en": "Votes"},
    "recusals": {"ar": "التنحي لتعارض المصالح", "en": "Recusals for a conflict of interest"},
    "dissent": {"ar": "آراء المخالفين", "en": "Dissent notes"},
    "decision": {"ar": "القرار", "en": "Decision"},
    "reasons": {"ar": "الأسباب", "en": "Reasons"},
    "deadline": {"ar": "المهلة تنتهي في", "en": "Decision window ends"},
    "within": {"ar": "ضمن المهلة", "en": "within the window"},
    "outside": {"ar": "بعد انقضاء المهلة", "en": "after the window"},
    "undecided": {"ar": "لم يصدر قرار في هذه الجلسة", "en": "No decision at this sitting"},
    "none": {"ar": "لا يوجد", "en": "none"},
    "no_cases": {"ar": "لم تُعرض طلبات في هذه الجلسة", "en": "No case was taken up at this sitting"},
    "board": {"ar": "السياسة معتمدة من", "en": "Policy approved by"},
    "signatures": {"ar": "توقيعات الأعضاء", "en": "Members' signatures"},
    "approved": {"ar": "قبول", "en": "approved"},
    "rejected": {"ar": "رفض", "en": "rejected"},
    "approve": {"ar": "موافق", "en": "approve"},
    "reject": {"ar": "غير موافق", "en": "reject"},
    "abstain": {"ar": "ممتنع", "en": "abstain"},
}

CSS = """
body { font-family: "Noto Naskh Arabic", "Amiri", "Segoe UI", Tahoma, Arial, sans-serif;
       margin: 2rem; color: #111; line-height: 1.6; }
h1 { font-size: 1.5rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.15rem; border-bottom: 1px solid #999; margin-top: 1.6rem; }
table { border-collapse: collapse; width: 100%; margin: 0.5rem 0; }
th, td { border: 1px solid #aaa; padding: 0.3rem 0.5rem; text-align: start; vertical-align: top; }
.meta dt { font-weight: bold; }
.meta dd { margin: 0 0 0.4rem 0; }
.case { page-break-inside: avoid; break-inside: avoid; }
.late { color: #a00; font-weight: bold; }
.signatures td { height: 3rem; }
@media print {
  body { margin: 1.5cm; font-size: 11pt; }
  a { color: inherit; text-decoration: none; }
  h2 { page-break-after: avoid; break-after: avoid; }
}
@page { size: A4; margin: 1.5cm; }
"""


def _status(sitting: dict[str, Any], lang: str, t: Any) -> str:
    """Open, or closed with the time it closed (both calendars)."""
    if not sitting["closed"]:
        return str(t("open"))
    closed_at = sitting.get("closed_at_display")
    when = f" — {t('closed_at')} {escape(closed_at[lang])}" if closed_at else ""
    return f"{t('closed')}{when}"


def render_minutes(sitting: dict[str, Any], pack: PolicyPack, lang: str = "ar") -> str:
    lang = "en" if lang == "en" else "ar"

    def t(key: str) -> str:
        return LABELS[key][lang]

    names = {member.id: getattr(member.name, lang) for member in pack.committee.members}

    def who(member: str) -> str:
        return escape(names.get(member, member))

    held = sitting["held_at_display"]
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{lang}" dir="{"rtl" if lang == "ar" else "ltr"}">',
        '<head><meta charset="utf-8">',
        f"<title>{escape(t('title'))} — {escape(getattr(pack.name, lang))}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{escape(t('title'))}</h1>",
        f"<p><strong>{escape(getattr(pack.name, lang))}</strong></p>",
        '<dl class="meta">',
        f"<dt>{t('held_at')}</dt><dd>{escape(held[lang])}</dd>",
        f"<dt>{t('present')}</dt><dd><ul>"
        + "".join(f"<li>{who(m)}</li>" for m in sitting["members_present"])
        + "</ul></dd>",
        (
            f"<dt>{t('quorum')}</dt><dd>{sitting['quorum']} — "
            f"{t('quorate') if sitting['quorate'] else t('not_quorate')}</dd>"
        ),
        f"<dt>{t('status')}</dt><dd>{_status(sitting, lang, t)}</dd>",
        "</dl>",
    ]
    if not sitting["cases"]:
        parts.append(f"<p>{t('no_cases')}</p>")
    for case in sitting["cases"]:
        parts.append('<section class="case">')
        parts.append(f"<h2>{t('case')} {escape(case['case_ref'] or case['case_id'])}</h2>")
        parts.append(f"<h3>{t('recusals')}</h3>")
        if case["recusals"]:
            parts.append(
                "<ul>"
                + "".join(
                    f"<li>{who(r['member'])}: {escape(r['reason'])}</li>" for r in case["recusals"]
                )
                + "</ul>"
            )
        else:
            parts.append(f"<p>{t('none')}</p>")
        parts.append(f"<h3>{t('votes')}</h3>")
        if case["votes"]:
            parts.append(
                "<table><tbody>"
                + "".join(
                    f"<tr><td>{who(v['member'])}</td><td>{escape(t(v['vote']))}</td></tr>"
                    for v in case["votes"]
                )
                + "</tbody></table>"
            )
        else:
            parts.append(f"<p>{t('none')}</p>")
        decision = case["decision"]
        if decision is None:
            parts.append(f"<p><em>{t('undecided')}</em></p>")
        else:
            window = t("within") if decision["within_window"] else t("outside")
            css = "" if decision["within_window"] else ' class="late"'
            parts.append(
                f"<p><strong>{t('decision')}:</strong> {escape(t(decision['decision']))}"
                f" — <span{css}>{window}</span></p>"
            )
            if decision["deadline_display"]:
                parts.append(
                    f"<p>{t('deadline')}: {escape(decision['deadline_display'][lang])}</p>"
                )
            parts.append(
                f"<p><strong>{t('reasons')}:</strong></p><ul>"
                + "".join(f"<li>{escape(reason)}</li>" for reason in decision["reasons"])
                + "</ul>"
            )
            # By member name; a status from before `dissents` existed has the notes only.
            dissents = decision.get("dissents")
            notes = (
                [f"{who(d['member'])}: {escape(d['note'])}" for d in dissents]
                if dissents is not None
                else [escape(note) for note in decision["dissent_notes"]]
            )
            if notes:
                parts.append(
                    f"<p><strong>{t('dissent')}:</strong></p><ul>"
                    + "".join(f"<li>{note}</li>" for note in notes)
                    + "</ul>"
                )
        parts.append("</section>")
    parts.append(f'<h2>{t("signatures")}</h2><table class="signatures"><tbody>')
    parts.extend(f"<tr><td>{who(m)}</td><td></td></tr>" for m in sitting["members_present"])
    parts.append("</tbody></table>")
    if pack.board_approval is not None:
        approval = pack.board_approval
        parts.append(
            f"<footer><p>{t('board')}: {escape(getattr(approval.body, lang))}"
            f" ({escape(approval.date_as_written)})</p></footer>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)
