from rest_framework.routers import SimpleRouter

from agentdeck.files.api.views import FileViewSet, VectorIndexViewSet

router = SimpleRouter()
router.register("files", FileViewSet, basename="file")
router.register("vector-indices", VectorIndexViewSet, basename="vector-index")

urlpatterns = router.urls
