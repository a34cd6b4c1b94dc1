"""The search page's form: its state lives in GET parameters so a search can be shared."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import forms
from django.conf import settings
from django.http import QueryDict
from django.utils.datastructures import MultiValueDict

from documents.models import Collection
from search.rerank import rerank_configured
from search.retrieval import MODES

ALL_COLLECTIONS = "all"
# Search ranks at most a few hundred candidates, so no real search has more pages.
MAX_PAGE = 100
MODE_LABELS = {"hybrid": "Hybrid", "keyword": "Keyword", "semantic": "Semantic"}
MODE_HINTS = {"hybrid": "words + meaning", "keyword": "exact words", "semantic": "meaning"}


class CollectionSelect(forms.Select):
    """A single select on the page; repeated `collection` parameters also work, so a link
    built by hand can name several collections."""

    def value_from_datadict(self, data: Any, files: Any, name: str) -> list[str]:
        values = data.getlist(name) if isinstance(data, MultiValueDict) else [data.get(name)]
        return [v for v in values if v and v != ALL_COLLECTIONS]


class SearchForm(forms.Form):
    q = forms.CharField(label="Search query", required=False, strip=True)
    mode = forms.ChoiceField(
        label="Mode",
        required=False,
        choices=[(mode, MODE_LABELS[mode]) for mode in MODES],
        initial="hybrid",
        error_messages={"invalid_choice": "Choose hybrid, keyword or semantic search."},
    )
    collection = forms.MultipleChoiceField(
        label="Collection",
        required=False,
        widget=CollectionSelect,
        error_messages={"invalid_choice": "There is no collection “%(value)s” you can read."},
    )
    rerank = forms.BooleanField(
        label="Rerank",
        required=False,
        help_text="Reorder the best candidates with the reranker (slower, often better).",
    )
    page = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_PAGE,
        error_messages={
            "invalid": "The page must be a whole number.",
            "min_value": "The page must be 1 or more.",
            "max_value": f"The page must be {MAX_PAGE} or less.",
        },
    )

    def __init__(
        self,
        data: QueryDict | None = None,
        *,
        collections: Iterable[Collection],
        initial: dict[str, Any] | None = None,
    ) -> None:
        if data is not None and not data.get("mode"):
            data = data.copy()
            data["mode"] = "hybrid"  # a shared link may leave it out
        super().__init__(data, initial=initial)
        collection = self.fields["collection"]
        assert isinstance(collection, forms.MultipleChoiceField)
        collection.choices = [(ALL_COLLECTIONS, "All collections")] + [
            (c.slug, c.name) for c in collections
        ]
        # Offered only when a reranker is configured (RERANK_BACKEND); checked by default
        # when RERANK_DEFAULT is on. A checkbox cannot say "no", so unchecked means off.
        if rerank_configured():
            self.fields["rerank"].initial = settings.RERANK_DEFAULT
        else:
            del self.fields["rerank"]

    def clean_q(self) -> str:
        query: str = self.cleaned_data["q"]
        if not query:
            raise forms.ValidationError("Type a few words to search for.")
        limit = settings.SEARCH_MAX_QUERY_CHARS
        if len(query) > limit:
            raise forms.ValidationError(
                f"The query is {len(query)} characters long; the limit is {limit}."
            )
        return query

    def clean_mode(self) -> str:
        return self.cleaned_data["mode"] or "hybrid"

    def clean_page(self) -> int:
        return self.cleaned_data["page"] or 1

    def rerank_choice(self) -> bool | None:
        """The search's `rerank`: the checkbox when offered, else the default (None)."""
        if "rerank" not in self.fields:
            return None
        return bool(self.cleaned_data.get("rerank"))

    def mode_options(self) -> list[dict[str, Any]]:
        """The modes as radio buttons with a hint each (rendered by hand for the layout)."""
        current = self["mode"].value() or "hybrid"
        return [
            {
                "value": mode,
                "label": MODE_LABELS[mode],
                "hint": MODE_HINTS[mode],
                "checked": mode == current,
            }
            for mode in MODES
        ]
