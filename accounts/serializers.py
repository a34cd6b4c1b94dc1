from __future__ import annotations

from datetime import datetime

from django.utils import timezone
from rest_framework import serializers

from accounts.models import ApiToken


class TokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    expires = serializers.DateTimeField(required=False, allow_null=True)

    def validate_expires(self, value: datetime | None) -> datetime | None:
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("must be in the future")
        return value


class TokenSerializer(serializers.ModelSerializer):
    is_active = serializers.BooleanField(read_only=True)

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created", "expires", "last_used", "revoked", "is_active"]
        read_only_fields = fields


class TokenCreatedSerializer(TokenSerializer):
    token = serializers.CharField(read_only=True, help_text="The secret; shown only once.")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "token"]
        read_only_fields = fields
