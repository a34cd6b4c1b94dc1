from django.urls import path
from rest_framework.routers import SimpleRouter

from documents.apis import CollectionViewSet, DocumentViewSet
from documents.formats_api import FormatsView

router = SimpleRouter()
router.register("collections", CollectionViewSet, basename="api-collection")
router.register("documents", DocumentViewSet, basename="api-document")
urlpatterns = [path("formats/", FormatsView.as_view(), name="api-formats"), *router.urls]
