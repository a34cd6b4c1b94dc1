from django.urls import path
from rest_framework.routers import SimpleRouter

from documents.apis import CollectionViewSet, DocumentViewSet
from documents.formats_api import FormatsView
from documents.reembed_api import CollectionReembedView

router = SimpleRouter()
router.register("collections", CollectionViewSet, basename="api-collection")
router.register("documents", DocumentViewSet, basename="api-document")
urlpatterns = [
    path("formats/", FormatsView.as_view(), name="api-formats"),
    path(
        # Any slug text reaches the view (a 404 there, a 405 for a method it lacks), like
        # the router's collection routes.
        "collections/<str:slug>/reembed/",
        CollectionReembedView.as_view(),
        name="api-collection-reembed",
    ),
    *router.urls,
]
