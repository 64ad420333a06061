"""The grants now belong to secrets_app (its 0005 adopts the table): only this app's state
forgets them; ``manage_grants`` moves with them."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("agents_app", "0004_agent_credential_permissions"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="SecretGrant")],
        ),
        migrations.AlterModelOptions(
            name="agent",
            options={
                "ordering": ["name"],
                "permissions": [
                    (
                        "issue_credentials",
                        "Can add agents and issue or regenerate their credentials",
                    ),
                    ("change_public_key", "Can change an agent's public key"),
                ],
            },
        ),
    ]
