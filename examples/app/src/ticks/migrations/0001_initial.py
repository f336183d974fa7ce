from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="BeatFire",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("slot", models.DateTimeField(db_index=True)),
                ("fired_at", models.DateTimeField(auto_now_add=True)),
                ("pod", models.CharField(max_length=253)),
                ("version", models.CharField(max_length=63)),
            ],
        ),
        migrations.CreateModel(
            name="Tick",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("slot", models.DateTimeField(unique=True)),
                ("task_id", models.CharField(max_length=64)),
                ("finished_at", models.DateTimeField(auto_now_add=True)),
                ("pod", models.CharField(max_length=253)),
                ("version", models.CharField(max_length=63)),
            ],
        ),
        migrations.CreateModel(
            name="TickAttempt",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("slot", models.DateTimeField(db_index=True)),
                ("task_id", models.CharField(max_length=64)),
                ("started_at", models.DateTimeField(auto_now_add=True)),
                ("finished_at", models.DateTimeField(null=True)),
                ("duplicate", models.BooleanField(default=False)),
                ("pod", models.CharField(max_length=253)),
                ("version", models.CharField(max_length=63)),
            ],
        ),
    ]
