from rest_framework.routers import SimpleRouter

from accounts.apis import TokenViewSet

router = SimpleRouter()
router.register("tokens", TokenViewSet, basename="api-token")
urlpatterns = router.urls
