from __future__ import annotations

from typing import cast

from django.contrib.auth.models import User
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import authentication, mixins, permissions, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.authentication import BearerTokenAuthentication, TokenEndpointBasicAuthentication
from accounts.models import ApiToken
from accounts.serializers import TokenCreatedSerializer, TokenCreateSerializer, TokenSerializer
from accounts.services import token_create, token_revoke


@extend_schema_view(
    list=extend_schema(summary="List your API tokens"),
    retrieve=extend_schema(summary="Get one of your API tokens"),
    destroy=extend_schema(summary="Revoke an API token"),
)
class TokenViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Your own API tokens. DELETE revokes a token (it stays listed, inactive).

    Besides a bearer token or a session, this endpoint (and only this one) takes HTTP
    basic auth with your username and password, so a script can get its first token. A
    token created with a token expires no later than that token.
    """

    authentication_classes = [
        BearerTokenAuthentication,
        TokenEndpointBasicAuthentication,
        authentication.SessionAuthentication,
    ]
    serializer_class = TokenSerializer
    permission_classes = [permissions.IsAuthenticated]
    queryset = ApiToken.objects.none()  # for the schema; get_queryset scopes to the caller

    def get_queryset(self) -> QuerySet[ApiToken]:
        return ApiToken.objects.filter(user=self._user())

    @extend_schema(
        summary="Create an API token (the secret is shown once)",
        request=TokenCreateSerializer,
        responses={201: TokenCreatedSerializer},
    )
    def create(self, request: Request) -> Response:
        data = TokenCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        parent = request.auth if isinstance(request.auth, ApiToken) else None
        token, secret = token_create(user=self._user(), parent=parent, **data.validated_data)
        token.token = secret  # type: ignore[attr-defined]
        return Response(TokenCreatedSerializer(token).data, status=status.HTTP_201_CREATED)

    def _user(self) -> User:
        return cast(User, self.request.user)  # IsAuthenticated: never anonymous here

    def perform_destroy(self, instance: ApiToken) -> None:
        token_revoke(token=instance)
