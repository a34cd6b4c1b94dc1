from rest_framework.routers import SimpleRouter

from documents.apis import CollectionViewSet, DocumentViewSet

router = SimpleRouter()
router.register("collections", CollectionViewSet, basename="api-collection")
router.register("documents", DocumentViewSet, basename="api-document")
urlpatterns = router.urls
