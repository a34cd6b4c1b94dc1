"""`POST /api/v1/feedback/` and the caller's own search history (`/api/v1/history/`)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, permissions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from insights.models import QueryLog
from insights.selectors import query_log_list_own
from insights.serializers import FeedbackRequestSerializer, FeedbackSerializer, QueryLogSerializer
from insights.services import FeedbackError, feedback_record, query_log_delete_for_user
from ragsite.api.throttles import AnonThrottle, UserThrottle


class FeedbackAnonThrottle(AnonThrottle):
    """Anonymous votes have a budget of their own, per address."""

    scope = "feedback-anon"
    setting = "FEEDBACK_THROTTLE_ANON"


class FeedbackView(APIView):
    """Rate a result of one of your searches (by its document) or its answer as useful or
    not. Signed-in users have one vote per result; voting again replaces it. Anonymous
    visitors rate anonymous searches, throttled by FEEDBACK_THROTTLE_ANON."""

    permission_classes = [permissions.AllowAny]
    throttle_classes = [AnonThrottle, UserThrottle, FeedbackAnonThrottle]

    @extend_schema(
        summary="Rate a search result or an answer",
        request=FeedbackRequestSerializer,
        responses={
            201: FeedbackSerializer,
            400: OpenApiResponse(description="Bad input, or not a result of that search."),
        },
    )
    def post(self, request: Request) -> Response:
        params = FeedbackRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        values = params.validated_data
        try:
            vote = feedback_record(
                user=request.user,
                query_log_id=values["query_log"],
                useful=values["useful"],
                document_id=values.get("document"),
                chunk_id=values.get("chunk"),
                answer=values["answer"],
                comment=values.get("comment", ""),
            )
        except FeedbackError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(FeedbackSerializer(vote).data, status=status.HTTP_201_CREATED)


class HistoryListView(generics.ListAPIView[QueryLog]):
    """Your searches, newest first (kept QUERY_LOG_RETENTION_DAYS days). DELETE clears
    them all."""

    permission_classes = [permissions.IsAuthenticated]
    serializer_class = QueryLogSerializer

    def get_queryset(self) -> QuerySet[QueryLog]:
        return query_log_list_own(user=self.request.user)

    @extend_schema(summary="Your searches, newest first")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Delete all your searches", responses={204: None}, operation_id="history_clear"
    )
    def delete(self, request: Request) -> Response:
        query_log_delete_for_user(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class HistoryDetailView(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(summary="One of your searches", responses={200: QueryLogSerializer})
    def get(self, request: Request, pk: int) -> Response:
        row = query_log_list_own(user=request.user).filter(pk=pk).first()
        if row is None:
            raise Http404
        return Response(QueryLogSerializer(row).data)

    @extend_schema(summary="Delete one of your searches", responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        if not query_log_delete_for_user(user=request.user, pk=pk):
            raise Http404
        return Response(status=status.HTTP_204_NO_CONTENT)
