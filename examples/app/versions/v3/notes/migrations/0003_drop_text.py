"""v3, contract: drop `text` and the trigger, and make `body` required.

v2's pods still serve while this runs: they never name `text`, and they always write `body`.
Dropping the trigger takes the table's exclusive lock until the migration commits, so no INSERT
lands between the trigger going and the column going. Not reversible: v2 and v3 both run on
the contracted table, and v1 can't (its `text` is gone).
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("notes", "0002_body")]

    operations = [
        migrations.RunSQL(
            """
            DROP TRIGGER notes_note_sync_text_body ON notes_note;
            DROP FUNCTION notes_note_sync_text_body();
            UPDATE notes_note SET body = text WHERE body IS NULL;
            ALTER TABLE notes_note DROP COLUMN text;
            """
        ),
        migrations.AlterField("note", "body", models.CharField(max_length=200)),
    ]
