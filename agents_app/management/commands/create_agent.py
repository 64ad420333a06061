"""Register an agent and print its API token (the only time it is shown)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from agents_app.services import create_agent


class Command(BaseCommand):
    help = "Create an agent identity and print its API token once."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name")
        parser.add_argument(
            "--grant",
            action="append",
            default=[],
            help="a secret name, or a prefix ending in '*'; repeat for more",
        )
        parser.add_argument(
            "--public-key",
            default="",
            help="X25519 public key (URL-safe base64); write --public-key=KEY, as a key may "
            "start with '-'",
        )
        parser.add_argument("--description", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            agent, token = create_agent(
                options["name"],
                actor="manage.py create_agent",
                public_key=options["public_key"],
                grants=options["grant"],
                description=options["description"],
            )
        except ValidationError as exc:
            problems = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            raise CommandError(problems) from None
        self.stdout.write(f"Agent {agent.name!r} created. Its token (shown only now):")
        self.stdout.write(token)
