"""Judgment sets: filled from uploaded qrels (the files `evaluate --collection` reads) or
from the query log and its feedback, and read back as the queries and qrels that
search.evaluation's evaluate() scores. Judged by document: chunk ids change when a
document is re-processed."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from django.db import transaction
from django.db.models import QuerySet

from documents.models import Collection, Document
from insights.models import Feedback, Judgment, JudgmentSet, QueryLog
from search.evaluation import DatasetError, load_qrels, load_queries, resolve_qrels


class JudgmentError(ValueError):
    """Judgments that cannot be stored; the message says why (a form error)."""


@dataclass(frozen=True)
class Added:
    added: int  # judgments created or regraded
    skipped: int  # votes/rows that gave no judgment (not useful, no text, other collection)


Parsed = dict[tuple[str, int], int]  # (query text, document id) -> grade


def _grade(score: int) -> int | None:
    """qrels scores: 0 (or less) is "not relevant" and not stored; above 2 counts as 2."""
    if score <= 0:
        return None
    return min(score, Judgment.Grade.HIGHLY_RELEVANT)


def _store(judgment_set: JudgmentSet, judgments: Parsed) -> int:
    """Upsert (query, document) -> grade; a higher grade wins over a lower one."""
    for (query, document_id), grade in judgments.items():
        found = Judgment.objects.filter(
            judgment_set=judgment_set, query=query, document_id=document_id
        ).first()
        if found is None:
            Judgment.objects.create(
                judgment_set=judgment_set, query=query, document_id=document_id, grade=grade
            )
        elif found.grade < grade:
            found.grade = grade
            found.save(update_fields=["grade"])
    return len(judgments)


def _read_upload(upload: IO[bytes], folder: Path, name: str) -> Path:
    path = folder / name
    path.write_bytes(upload.read())
    return path


def judgments_parse(
    *, collection: Collection, queries_file: IO[bytes], qrels_file: IO[bytes]
) -> tuple[Parsed, int]:
    """Uploaded judgments, checked: queries as JSON lines ({"_id", "text"}) and qrels as
    TSV (query-id, corpus-id, score), corpus-ids being a document's metadata `id` or its
    file name in `collection`, exactly as `evaluate --collection` reads them. Returns the
    judgments and how many rows were skipped (score 0: not relevant)."""
    with tempfile.TemporaryDirectory(prefix="judgments-") as folder:
        try:
            queries = load_queries(_read_upload(queries_file, Path(folder), "queries.jsonl"))
            raw = load_qrels(_read_upload(qrels_file, Path(folder), "qrels.tsv"))
            unknown = sorted(set(raw) - set(queries))
            if unknown:
                raise DatasetError(f"qrels name unknown query id(s), e.g. {unknown[0]!r}")
            resolved = resolve_qrels(collection, raw)
        except (DatasetError, UnicodeDecodeError) as exc:
            # The temporary file names mean nothing to whoever uploaded them.
            raise JudgmentError(str(exc).replace(folder + "/", "")) from exc
    judgments: Parsed = {}
    skipped = 0
    for qid, documents in resolved.items():
        for document_id, score in documents.items():
            grade = _grade(score)
            if grade is None:
                skipped += 1
                continue
            key = (queries[qid], int(document_id))
            judgments[key] = max(grade, judgments.get(key, 0))
    return judgments, skipped


@transaction.atomic
def judgment_set_store(*, judgment_set: JudgmentSet, judgments: Parsed) -> int:
    """Add parsed judgments to the set (a higher grade wins over a lower one)."""
    return _store(judgment_set, judgments)


def _in_collection(judgment_set: JudgmentSet) -> set[int]:
    return set(
        Document.objects.filter(collection_id=judgment_set.collection_id).values_list(
            "pk", flat=True
        )
    )


@transaction.atomic
def judgment_set_add_feedback(*, judgment_set: JudgmentSet, feedback: QuerySet[Feedback]) -> Added:
    """Each "useful" vote on a result becomes grade 2 for its query and document. "Not
    useful" votes, votes on answers, anonymous searches without text and documents of
    other collections are skipped."""
    documents = _in_collection(judgment_set)
    judgments: Parsed = {}
    skipped = 0
    for vote in feedback.select_related("query_log"):
        query = vote.query_log.query.strip()
        if not (vote.useful and vote.document_id in documents and query):
            skipped += 1
            continue
        judgments[(query, int(vote.document_id))] = Judgment.Grade.HIGHLY_RELEVANT
    return Added(_store(judgment_set, judgments), skipped)


@transaction.atomic
def judgment_set_add_queries(*, judgment_set: JudgmentSet, rows: QuerySet[QueryLog]) -> Added:
    """Logged queries: the results voted useful become grade 2; a query nobody voted
    useful gives its top result as grade 1 (whoever picks the query vouches for it; the
    grades can be edited in the admin)."""
    documents = _in_collection(judgment_set)
    useful = set(
        Feedback.objects.filter(
            query_log__in=rows, useful=True, target=Feedback.Target.RESULT
        ).values_list("query_log_id", "document_id")
    )
    judgments: Parsed = {}
    skipped = 0
    for row in rows:
        query = row.query.strip()
        found = [
            (int(r["document"]), 2 if (row.pk, r["document"]) in useful else 0)
            for r in row.results
            if r.get("document") in documents
        ]
        voted = [(document, grade) for document, grade in found if grade]
        picked = voted or [(document, 1) for document, _ in found[:1]]
        if not (query and picked):
            skipped += 1
            continue
        for document, grade in picked:
            key = (query, document)
            judgments[key] = max(grade, judgments.get(key, 0))
    return Added(_store(judgment_set, judgments), skipped)


@dataclass(frozen=True)
class LoadedSet:
    collection: Collection
    queries: dict[str, str]  # query id -> text
    qrels: dict[str, dict[str, int]]  # query id -> document id (as text) -> grade


def judgment_set_load(*, name: str) -> LoadedSet:
    """The set as evaluate() takes it. A judgment whose document was deleted stays as a
    relevant document no search can return (`deleted-<judgment id>`)."""
    judgment_set = JudgmentSet.objects.select_related("collection").filter(name=name).first()
    if judgment_set is None:
        raise JudgmentError(f"no judgment set named {name!r}")
    queries: dict[str, str] = {}
    ids: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for pk, query, document_id, grade in judgment_set.judgments.order_by("pk").values_list(
        "pk", "query", "document_id", "grade"
    ):
        qid = ids.setdefault(query, f"q{len(ids) + 1}")
        queries[qid] = query
        key = str(document_id) if document_id is not None else f"deleted-{pk}"
        qrels.setdefault(qid, {})[key] = int(grade)
    if not qrels:
        raise JudgmentError(f"judgment set {name!r} has no judgments yet")
    return LoadedSet(judgment_set.collection, queries, qrels)
