from django.urls import path

from documents import views

urlpatterns = [
    path("<int:pk>/", views.document_detail, name="document-detail"),
    path("<int:pk>/original/", views.document_original, name="document-original"),
]
