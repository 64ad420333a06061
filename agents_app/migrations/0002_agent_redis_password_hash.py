"""Protocol 2: each agent has its own Redis ACL user; the site keeps the SHA-256 of its password.

Agents created before have none: ``manage.py provision_wire --issue-missing`` gives them one and
prints their new FOUNDATION_REDIS_URL."""

import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("agents_app", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="agent",
            name="redis_password_hash",
            field=models.CharField(blank=True, editable=False, max_length=64),
        ),
        # Names end at the end of the text (\Z): "$" also accepted a trailing newline.
        migrations.AlterField(
            model_name="agent",
            name="name",
            field=models.CharField(
                max_length=63,
                unique=True,
                validators=[
                    django.core.validators.RegexValidator(
                        "^[a-z][a-z0-9_-]{0,62}\\Z",
                        "1-63 characters of a-z, 0-9, '_' or '-', starting with a letter",
                    )
                ],
            ),
        ),
    ]
