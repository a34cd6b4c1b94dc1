"""API-wide conventions, one module per thing DRF's settings name.

DRF imports the classes its settings name while `rest_framework.views` (or `generics`) is
still loading: the throttle, authentication and permission classes in APIView's class
body, the pagination class in GenericAPIView's. So those modules (`throttles`,
`pagination`, `parsers`, `errors`) must not import `rest_framework.views`/`generics`, or
drf-spectacular (which imports them), at module level; whether such a circle bit used to
depend on which system check first touched DRF's settings, which varied with the checkout
folder. Only `schema` imports drf-spectacular: DRF reads DEFAULT_SCHEMA_CLASS lazily, when
a schema is generated. tests/ragsite/test_startup.py imports every dotted path of
REST_FRAMEWORK first thing in a fresh interpreter.

This package's ``__init__`` imports nothing, for the same reason.
"""
