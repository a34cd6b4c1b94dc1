from django.urls import path

from search import apis

urlpatterns = [
    path("search/", apis.SearchView.as_view(), name="search"),
    path("chunks/<int:pk>/", apis.ChunkDetailView.as_view(), name="chunk-detail"),
    path("chunks/<int:pk>/similar/", apis.ChunkSimilarView.as_view(), name="chunk-similar"),
]
