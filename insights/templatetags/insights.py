"""`{% result_feedback card.result %}` and `{% answer_feedback %}` on the search page: a
"useful / not useful" form that works without JavaScript (static/js/feedback.js sends
it to the API instead and stays on the page)."""

from __future__ import annotations

from typing import Any

from django import template

from insights.selectors import evaluation_alerts, feedback_votes

register = template.Library()


def _votes(context: Any) -> dict[Any, bool]:
    """The signed-in user's votes on this search, read once per page."""
    cache = context.render_context
    if "insights_votes" not in cache:
        request = context.get("request")
        user = getattr(request, "user", None)
        log_id = context.get("query_log_id")
        cache["insights_votes"] = (
            feedback_votes(query_log_id=log_id, user=user) if user is not None else {}
        )
    votes: dict[Any, bool] = cache["insights_votes"]
    return votes


def _just_voted(request: Any, key: Any) -> bool | None:
    """The vote the no-JavaScript form just sent (`voted=<key>:yes|no` on the way back),
    which is all an anonymous visitor's page knows of it."""
    voted = request.GET.get("voted", "") if request is not None else ""
    name, _, useful = voted.partition(":")
    if name != str(key) or useful not in ("yes", "no"):
        return None
    return useful == "yes"


def _form(context: Any, *, key: Any, document_id: int | None, title: str) -> dict[str, Any]:
    request = context.get("request")
    vote = _votes(context).get(key)
    return {
        "query_log_id": context.get("query_log_id"),
        "document_id": document_id,
        "answer": document_id is None,
        "vote": _just_voted(request, key) if vote is None else vote,
        "next": request.get_full_path() if request is not None else "/",
        "title": title,
        "csrf_token": context.get("csrf_token"),
    }


@register.inclusion_tag("insights/_feedback.html", takes_context=True)
def result_feedback(context: Any, result: Any) -> dict[str, Any]:
    return _form(
        context,
        key=result.document_id,
        document_id=result.document_id,
        title=result.document_title,
    )


@register.inclusion_tag("insights/_feedback.html", takes_context=True)
def answer_feedback(context: Any) -> dict[str, Any]:
    return _form(context, key="answer", document_id=None, title="the answer")


@register.inclusion_tag("admin/insights/_evaluation_alerts.html", takes_context=True)
def evaluation_alert_banner(context: Any) -> dict[str, Any]:
    """The admin's banner: judgment sets whose last run dropped (insights/evaluation.py)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    staff = user is not None and user.is_active and user.is_staff
    return {"alerts": evaluation_alerts(user=user) if staff else []}
