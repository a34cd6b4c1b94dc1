from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts.forms import AdminLoginForm
from insights.metrics import metrics_view
from ragsite import health

# The admin's sign-in counts failures and locks out like the site's (accounts.lockout).
admin.site.login_form = AdminLoginForm

api_v1: list[URLPattern | URLResolver] = [
    path("", include("accounts.urls_api")),
    path("", include("documents.urls_api")),
    path("", include("search.urls_api")),
    path("", include("insights.urls_api")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's set-up script from a URL, not inline (CSP).
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
    # ReDoc fetched fonts and a logo from the internet; old links land on Swagger UI.
    path("redoc/", RedirectView.as_view(pattern_name="swagger-ui"), name="redoc"),
]

handler404 = "ragsite.api.errors.not_found"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("api/v1/", include(api_v1)),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("documents/", include("documents.urls")),
    path("", include("insights.urls")),
    path("", include("search.urls")),
]
