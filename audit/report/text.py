"""The report's words in Arabic and English, and how its names, dates and figures read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from shared.dates import arabic_digits, day_in_words
from shared.suppression import MINIMUM_GROUP_SIZE

TEXT: dict[str, dict[str, str]] = {
    "title": {
        "ar": "تقرير مجلس الإدارة: تطبيق سياسة خدمة المستفيدين",
        "en": "Board report: how the service policy was applied",
    },
    "period": {"ar": "الفترة", "en": "Period"},
    "from": {"ar": "من", "en": "From"},
    "to": {"ar": "إلى", "en": "To"},
    "generated": {"ar": "أُعدّ في", "en": "Generated"},
    "as_of": {"ar": "التقرير كما كان السجل في", "en": "As the records stood on"},
    "as_of_early": {
        "ar": "لم تكن الفترة قد انتهت في هذه اللحظة: لا يُحتسب ما سُجّل بعدها.",
        "en": "The period had not ended at this moment: nothing recorded after it is counted.",
    },
    "associations": {"ar": "الجمعيات", "en": "Associations"},
    "approved_by": {"ar": "اعتمد السياسة", "en": "Policy approved by"},
    "meeting": {"ar": "اجتماع", "en": "meeting"},
    "summary": {"ar": "الخلاصة", "en": "Summary"},
    "requests": {"ar": "الطلبات", "en": "Requests"},
    "requests_total": {"ar": "الطلبات المستلمة في الفترة", "en": "Requests received in the period"},
    "by_channel": {"ar": "الطلبات حسب قناة الاستقبال", "en": "Requests by channel"},
    "by_service": {"ar": "الطلبات حسب الخدمة", "en": "Requests by service"},
    "association": {"ar": "الجمعية", "en": "Association"},
    "channel": {"ar": "القناة", "en": "Channel"},
    "service": {"ar": "الخدمة", "en": "Service"},
    "count": {"ar": "العدد", "en": "Count"},
    "total": {"ar": "المجموع", "en": "Total"},
    "funnel": {
        "ar": "مسار الطلبات من الاستلام إلى التقييم",
        "en": "The funnel from received to surveyed",
    },
    "cohort_note": {
        "ar": "الطلبات المستلمة في الفترة كما كانت في لحظة التقرير.",
        "en": "Requests received in the period, as they stood at the report's moment.",
    },
    "activity_note": {
        "ar": "ما جرى خلال الفترة أيًّا كان تاريخ استلام الطلب.",
        "en": "What happened during the period, whatever the date the request was received.",
    },
    "stage": {"ar": "المرحلة", "en": "Stage"},
    "share": {"ar": "النسبة من المستلم", "en": "Share of received"},
    "outcomes": {"ar": "نتائج التحقق من البيانات", "en": "Verification outcomes"},
    "outcome": {"ar": "النتيجة", "en": "Outcome"},
    "rates": {"ar": "نسب الإحالة والقبول", "en": "Referral and approval rates"},
    "metric": {"ar": "المؤشر", "en": "Measure"},
    "numerator": {"ar": "البسط", "en": "Of which"},
    "denominator": {"ar": "المقام", "en": "Out of"},
    "rate": {"ar": "النسبة", "en": "Rate"},
    "referral_rate": {
        "ar": "نسبة الإحالة إلى الباحث الاجتماعي",
        "en": "Referral rate to the social researcher",
    },
    "approval_rate": {
        "ar": "نسبة القبول من قرارات اللجنة",
        "en": "Approval rate of the committee's decisions",
    },
    "window_share": {
        "ar": "نسبة القرارات ضمن المهلة",
        "en": "Share of decisions within the window",
    },
    "ttd": {"ar": "مدة البت في الطلب مقارنة بالمهلة", "en": "Time to decision against the window"},
    "decisions": {"ar": "قرارات اللجنة في الفترة", "en": "Committee decisions in the period"},
    "within": {"ar": "ضمن المهلة", "en": "Within the window"},
    "median_days": {"ar": "الوسيط (أيام)", "en": "Median (days)"},
    "days_hist": {"ar": "توزيع المدة بالأيام", "en": "Days to decision"},
    "days": {"ar": "أيام", "en": "days"},
    "slowest": {"ar": "أبطأ الطلبات", "en": "The slowest cases"},
    "case": {"ar": "الطلب", "en": "Case"},
    "duration": {"ar": "المدة (أيام)", "en": "Duration (days)"},
    "window": {"ar": "المهلة (أيام)", "en": "Window (days)"},
    "decided_on": {"ar": "تاريخ القرار", "en": "Decided on"},
    "yes": {"ar": "نعم", "en": "yes"},
    "no": {"ar": "لا", "en": "no"},
    "timeline": {"ar": "السجل الزمني", "en": "timeline"},
    "backlog": {
        "ar": "الطلبات المفتوحة حسب العمر في لحظة التقرير",
        "en": "Open backlog by age at the report's moment",
    },
    "age": {"ar": "العمر (أيام)", "en": "Age (days)"},
    "policy_versions": {
        "ar": "إصدارات السياسة النافذة في الفترة",
        "en": "Policy versions in force in the period",
    },
    "policy_versions_note": {
        "ar": "يحكم كلَّ طلب إصدارُ السياسة النافذ يوم استلامه، ولا يغيّره إصدار لاحق. "
        "العدد: طلبات الفترة التي حكمها كل إصدار.",
        "en": "Each request is governed by the version of the policy in force when it was "
        "received; a later version never changes it. The count: the period's requests "
        "each version governed.",
    },
    "version": {"ar": "الإصدار", "en": "Version"},
    "takes_effect": {"ar": "نافذ منذ", "en": "In force from"},
    "approval": {"ar": "موافقة المجلس", "en": "Board approval"},
    "cases_governed": {"ar": "الطلبات التي حكمها", "en": "Requests governed"},
    "since_always": {"ar": "منذ البداية", "en": "From the start"},
    "version_not_held": {
        "ar": "ليس في سياسات المراجعة",
        "en": "Not among the audit's policies",
    },
    "erasures": {
        "ar": "محو البيانات الشخصية في الفترة",
        "en": "Erasures of personal data in the period",
    },
    "erasures_note": {
        "ar": "كل محو أُتلفت فيه مفاتيح صاحب البيانات (نظام حماية البيانات الشخصية)، "
        "من سجل المفاتيح، حسب الجمعية.",
        "en": "Each erasure destroyed a data subject's keys (PDPL), as the keyring "
        "records it, by association.",
    },
    "erasures_not_counted": {
        "ar": "لم يُقرأ سجل المفاتيح (لا يوجد ملف المفتاح الرئيسي): لم يُحصَ المحو.",
        "en": "The keyring was not read (no master key file): erasures are not counted.",
    },
    "awaiting_verification": {"ar": "بانتظار التحقق", "en": "Awaiting verification"},
    "awaiting_decision": {"ar": "بانتظار قرار اللجنة", "en": "Awaiting the decision"},
    "awaiting_delivery": {"ar": "بانتظار تقديم الخدمة", "en": "Awaiting delivery"},
    "satisfaction": {"ar": "اتجاه رضا المستفيدين", "en": "Satisfaction trend"},
    "sat_by_service": {"ar": "الرضا حسب الخدمة", "en": "Satisfaction by service"},
    "sat_by_channel": {"ar": "الرضا حسب القناة", "en": "Satisfaction by channel"},
    "sat_note": {
        "ar": f"متوسط الرضا من ١ إلى ٥. تُحجب كل مجموعة تقل إجاباتها عن {MINIMUM_GROUP_SIZE} حفاظًا على خصوصية المجيبين، وكذلك كل مجموعة يمكن أن يُستنتج منها ما حُجب. نتائج التقييم للتحسين، ولا تُستخدم لمحاسبة أي موظف أو التشهير به.",
        "en": f"Mean satisfaction from 1 to 5. A group with fewer than {MINIMUM_GROUP_SIZE} answers is suppressed to protect those who answered, and so is any group from which a suppressed one could be worked out. The results are for improvement, never for blaming or shaming any member of staff.",
    },
    "bucket": {"ar": "الفترة الفرعية", "en": "Period"},
    "answers": {"ar": "عدد الإجابات", "en": "Answers"},
    "mean": {"ar": "متوسط الرضا", "en": "Mean satisfaction"},
    "suppressed": {
        "ar": f"محجوب (أقل من {arabic_digits(str(MINIMUM_GROUP_SIZE))} إجابات)",
        "en": f"suppressed (fewer than {MINIMUM_GROUP_SIZE} answers)",
    },
    "exceptions": {"ar": "الاستثناءات من السياسة", "en": "Compliance exceptions"},
    "no_exceptions": {"ar": "لم يُرصد أي استثناء.", "en": "No exception was found."},
    "exceptions_rule": {
        "ar": "يُنسب الاستثناء إلى الفترة إذا وقع فيها ما يثبته، أيًّا كان تاريخ استلام الطلب: قرار متأخر صدر "
        "في الفترة مثلًا، أو مهلة انقضت فيها؛ وهي القاعدة نفسها التي تُحسب بها قرارات الفترة. "
        "ويُقرأ السجل كما كان في لحظة التقرير.",
        "en": "An exception belongs to the period when what proves it happened in the period, whatever the date "
        "the request was received: a late decision taken in the period, for example, or a window that ran "
        "out in it; the same rule as the period's decisions. The records are read as they stood at the "
        "report's moment.",
    },
    "proven_at": {"ar": "ثبت في", "en": "Proven on"},
    "exceptions_missing": {
        "ar": "لم يُجرَ فحص الالتزام لهذا التقرير.",
        "en": "The compliance checks were not run for this report.",
    },
    "checks_not_run": {
        "ar": "لم تُجرَ هذه الفحوص لأن ما تحتاجه لم يُقرأ، فلا يعني غيابها من القائمة أنه لا استثناء فيها:",
        "en": "These checks were not run, because what they need was not read; their absence from the list does not mean there is no exception:",
    },
    "needs_store": {"ar": "يحتاج مخزن خدمة {service}", "en": "needs the {service} service's store"},
    "needs_packs": {"ar": "يحتاج حزم السياسات", "en": "needs the policy packs"},
    "case_timeline": {"ar": "السجل الزمني للطلب", "en": "The case's timeline"},
    "events": {"ar": "أحداث", "en": "events"},
    "when": {"ar": "التاريخ", "en": "When"},
    "event": {"ar": "الحدث", "en": "Event"},
    "by_whom": {"ar": "من", "en": "By"},
    "source": {"ar": "المصدر", "en": "Source"},
    "revision": {"ar": "النسخة", "en": "revision"},
    "open_in_api": {"ar": "في واجهة التدقيق", "en": "in the audit API"},
    "check": {"ar": "الفحص", "en": "Check"},
    "finding": {"ar": "الملاحظة", "en": "Finding"},
    "evidence": {"ar": "الأحداث المثبتة", "en": "Events that prove it"},
    "evidence_title": {"ar": "أدلة الاستثناءات", "en": "Evidence of the exceptions"},
    "listed_first": {
        "ar": "تُعرض هنا أول {shown} استثناءات من {total}؛ القائمة الكاملة في ملف exceptions CSV.",
        "en": "The first {shown} of {total} exceptions are listed here; the exceptions CSV file has them all.",
    },
    "events_read": {"ar": "الأحداث المقروءة من السجل", "en": "Events read from the stream"},
    "source_note": {
        "ar": "كل الأرقام محسوبة من أحداث التكامل في سجل KHIDMA وحدها.",
        "en": "Every figure is computed from the integration events of the KHIDMA stream alone.",
    },
    "none": {"ar": "لا يوجد", "en": "none"},
}

OUTCOME_NAMES = {
    "verified": {"ar": "بيانات مطابقة", "en": "verified"},
    "discrepancies": {"ar": "فروقات في البيانات", "en": "discrepancies"},
    "ineligible": {"ar": "غير مستحق", "en": "ineligible"},
}
STAGE_NAMES = {
    "received": {"ar": "مستلم", "en": "received"},
    "verified": {"ar": "تم التحقق", "en": "verified"},
    "decided": {"ar": "صدر القرار", "en": "decided"},
    "approved": {"ar": "مقبول", "en": "approved"},
    "delivered": {"ar": "قُدمت الخدمة", "en": "delivered"},
    "surveyed": {"ar": "قُيّمت الخدمة", "en": "surveyed"},
}
CHANNEL_NAMES = {
    "interview": {"ar": "المقابلة الشخصية", "en": "interview"},
    "phone": {"ar": "الاتصال الهاتفي", "en": "phone call"},
    "social_media": {"ar": "وسائل التواصل الاجتماعي", "en": "social media"},
    "letter": {"ar": "الخطابات", "en": "letters"},
    "help_request": {"ar": "خدمة طلب المساعدة", "en": "help-request service"},
    "volunteering": {"ar": "خدمة التطوع", "en": "volunteering service"},
    "website": {"ar": "موقع الجمعية", "en": "the association's website"},
    "branch_office": {"ar": "مندوبو الفروع", "en": "branch-office representatives"},
}


def t(key: str, lang: str) -> str:
    return TEXT[key][lang]


@dataclass
class Names:
    packs: Mapping[str, Any]
    lang: str
    several: bool = False  # the report covers several associations

    def association(self, association_id: str) -> str:
        pack = self.packs.get(association_id)
        return getattr(pack.name, self.lang) if pack else association_id

    def service(self, association_id: str, code: str) -> str:
        pack = self.packs.get(association_id)
        service = pack.service(code) if pack else None
        return getattr(service.name, self.lang) if service else code

    def channel(self, code: str) -> str:
        return CHANNEL_NAMES.get(code, {}).get(self.lang, code)


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def num(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"


def date_text(day: date | datetime, lang: str) -> str:
    return day_in_words(day, lang)


def round4(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def short(names: Names, association: str, label: str) -> str:
    """A chart label: the association's name only when the report has several."""
    return f"{association} · {label}" if names.several else label


def approval_text(pack: Any, lang: str) -> str:
    approval = getattr(pack, "board_approval", None) if pack else None
    if not approval:
        return ""
    meeting = f" {t('meeting', lang)} {approval.meeting}" if approval.meeting else ""
    day = date_text(approval.gregorian, lang) if approval.gregorian else approval.date_as_written
    return f" — {t('approved_by', lang)}: {getattr(approval.body, lang)}{meeting}, {day}"


def check_title(code: str, lang: str) -> str:
    from audit.compliance import REGISTRY

    check = REGISTRY.get(code)
    return check.title.get(lang, code) if check else code


def not_run_text(code: str, lang: str) -> str:
    """A check that could not run, with what it needs."""
    from audit.compliance import REGISTRY

    check = REGISTRY.get(code)
    needs = []
    if check is not None:
        needs += [t("needs_store", lang).format(service=service) for service in check.needs_stores]
        if check.needs_packs:
            needs.append(t("needs_packs", lang))
    return f"{check_title(code, lang)} ({code})" + (
        f" — {'، '.join(needs) if lang == 'ar' else '; '.join(needs)}" if needs else ""
    )
