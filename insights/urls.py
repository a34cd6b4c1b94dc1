from django.urls import path

from insights import views

urlpatterns = [
    path("feedback/", views.feedback_page, name="feedback-page"),
]
