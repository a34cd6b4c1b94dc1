from django.urls import path

from insights import apis

urlpatterns = [
    path("feedback/", apis.FeedbackView.as_view(), name="feedback"),
    path("history/", apis.HistoryListView.as_view(), name="history"),
    path("history/<int:pk>/", apis.HistoryDetailView.as_view(), name="history-detail"),
]
