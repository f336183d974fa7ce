from django.conf import settings
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.http import HttpResponse, JsonResponse

from notes.models import Note


def _me():
    return {"version": settings.APP_VERSION, "pod": settings.POD_NAME}


def index(request):
    """Which version and pod answered; touches nothing else."""
    return JsonResponse(_me())


def healthz(request):
    """The web probes' path (docs/app-image.md): quick, without the database or the broker."""
    return HttpResponse("ok\n", content_type="text/plain")


def table_columns():
    """The notes table's columns, as a query of this moment sees them.

    Not Django's introspection: it reads the catalog first, which a migration's uncommitted ALTER
    TABLE doesn't hold up, then the table, which it does. A column added meanwhile is then in
    the second answer and not in the first, and get_table_description fails on it (KeyError).
    One query that waits on the table's lock sees the table as it is once the migration is
    done, or as it was."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM %s LIMIT 0" % connection.ops.quote_name(Note._meta.db_table))
        return [c.name for c in cursor.description]


def probe(request):
    """Writes a note and reads the one before it, through this version's model, and says which
    schema this version's code saw: its model's columns, the table's columns in the database,
    and the notes migrations applied. A prober tells from it that each version runs on a schema
    it can use, and never before its migration."""
    note = Note.write(request.GET.get("text", "probe"), **_me())
    before = Note.objects.exclude(pk=note.pk).order_by("-pk").first()
    columns = table_columns()
    applied = sorted(name for app, name in MigrationRecorder(connection).applied_migrations() if app == "notes")
    return JsonResponse(
        {
            **_me(),
            "wrote": {"id": note.pk, "text": note.read()},
            "read": before and {"id": before.pk, "text": before.read(), "version": before.version},
            "fields": [f.column for f in Note._meta.concrete_fields],
            "columns": sorted(columns),
            "migrations": applied,
        }
    )
