from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Note",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("text", models.CharField(max_length=200)),
                ("pod", models.CharField(max_length=253)),
                ("version", models.CharField(max_length=63)),
                ("created", models.DateTimeField(auto_now_add=True)),
            ],
        ),
    ]
