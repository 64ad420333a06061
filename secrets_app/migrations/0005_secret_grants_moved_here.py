"""The grants move from agents_app to secrets_app: a secrets policy, so that agents_app sits below
secrets_app and never imports it (docs/architecture.md, "Layers").

The table is adopted as it is (state only), then renamed to this app's name. The content type
moves with the model, so that admin history, the grants' own permissions and whoever was given
them follow; ``manage_grants`` moves from the agent's content type to the grant's, with its
holders.
"""

import django.db.models.deletion
import django.db.models.functions.datetime
from django.db import migrations, models

import secrets_app.models

PERMISSION = "manage_grants"


def _move(apps, schema_editor, source, target):
    content_types = apps.get_model("contenttypes", "ContentType").objects.using(
        schema_editor.connection.alias
    )
    permissions = apps.get_model("auth", "Permission").objects.using(schema_editor.connection.alias)
    old = content_types.filter(app_label=source, model="secretgrant").first()
    if old is None:
        return  # a new database: the content types are made after migrating, for the models
    content_types.filter(app_label=target, model="secretgrant").delete()
    old.app_label = target
    old.save(update_fields=["app_label"])
    agent = content_types.filter(app_label="agents_app", model="agent").first()
    if source == "agents_app":
        permissions.filter(content_type=agent, codename=PERMISSION).update(content_type=old)
    elif agent is not None:
        permissions.filter(content_type=old, codename=PERMISSION).update(content_type=agent)


def forwards(apps, schema_editor):
    _move(apps, schema_editor, "agents_app", "secrets_app")


def backwards(apps, schema_editor):
    _move(apps, schema_editor, "secrets_app", "agents_app")


class Migration(migrations.Migration):
    dependencies = [
        ("secrets_app", "0004_rotation_reminders"),
        ("agents_app", "0004_agent_credential_permissions"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="SecretGrant",
                    fields=[
                        (
                            "id",
                            models.AutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "pattern",
                            models.CharField(
                                max_length=101,
                                validators=[secrets_app.models.validate_grant_pattern],
                            ),
                        ),
                        (
                            "created_at",
                            models.DateTimeField(
                                db_default=django.db.models.functions.datetime.Now()
                            ),
                        ),
                        (
                            "agent",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="grants",
                                to="agents_app.agent",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "agents_app_secretgrant",
                        "permissions": [
                            ("manage_grants", "Can give and take an agent's secret grants")
                        ],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("agent", "pattern"), name="uniq_agent_grant"
                            )
                        ],
                    },
                ),
            ],
        ),
        migrations.AlterModelTable(name="secretgrant", table=None),
        migrations.RunPython(forwards, backwards, elidable=False),
    ]
