from django.urls import path

from search import apis
from search.rag import apis as rag_apis

urlpatterns = [
    path("search/", apis.SearchView.as_view(), name="search"),
    path("chunks/<int:pk>/", apis.ChunkDetailView.as_view(), name="chunk-detail"),
    path("chunks/<int:pk>/similar/", apis.ChunkSimilarView.as_view(), name="chunk-similar"),
    path("context/", rag_apis.ContextView.as_view(), name="context"),
    path("ask/", rag_apis.AskView.as_view(), name="ask"),
]
