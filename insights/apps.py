from django.apps import AppConfig


class InsightsConfig(AppConfig):
    # The retention sweep's schedule is made with the others (documents/queue.py).
    name = "insights"
    verbose_name = "Search quality"
    default_auto_field = "django.db.models.BigAutoField"
