from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("documents", "0004_collection_grants"),
    ]

    operations = [
        migrations.AddField(
            model_name="document",
            name="heartbeat_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
