"""v2-broken: v2's migration with a bug at its end, the release that v2 fixes.

It changes the schema as v2's does, then fails. The migration is one transaction, so the failure
leaves nothing of it behind: the table is v1's, no trigger, 0002 not recorded. v1 keeps serving,
and v2, with this migration's name, applies cleanly after it.

v2's description:

v1's pods still serve while this runs and until v2 has rolled out: they write `text` only, and
v2's write `body` only. A trigger fills whichever the INSERT left out, so each version reads its
own column on every row. `text` leaves Django's state here (v2's code never names it) but stays
in the table until v3 drops it. One transaction, as every migration on PostgreSQL: it all
applies or none of it does.
"""

from django.db import migrations, models
from django.db.models import F

SYNC = """
CREATE FUNCTION notes_note_sync_text_body() RETURNS trigger AS $$
BEGIN
    IF NEW.body IS NULL THEN NEW.body := NEW.text; END IF;
    IF NEW.text IS NULL THEN NEW.text := NEW.body; END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER notes_note_sync_text_body BEFORE INSERT ON notes_note
    FOR EACH ROW EXECUTE PROCEDURE notes_note_sync_text_body();
"""
UNSYNC = """
DROP TRIGGER notes_note_sync_text_body ON notes_note;
DROP FUNCTION notes_note_sync_text_body();
"""


def copy_text_to_body(apps, schema_editor):
    Note = apps.get_model("notes", "Note")
    Note.objects.filter(body__isnull=True).update(body=F("text"))


def fail(apps, schema_editor):
    raise RuntimeError("v2-broken fails on purpose, after changing the schema (docs/example-app.md)")


class Migration(migrations.Migration):
    dependencies = [("notes", "0001_initial")]

    operations = [
        migrations.AddField("note", "body", models.CharField(max_length=200, null=True)),
        migrations.RunSQL(SYNC, UNSYNC),
        migrations.RunPython(copy_text_to_body, migrations.RunPython.noop),
        migrations.SeparateDatabaseAndState(state_operations=[migrations.RemoveField("note", "text")]),
        migrations.RunPython(fail, migrations.RunPython.noop),
    ]
