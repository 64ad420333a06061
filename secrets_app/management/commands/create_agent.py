"""Register an agent and print its whole environment (the only time its credentials are shown)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from agents_app.services import agent_environment
from agents_app.wire import provision
from secrets_app.grants import create_agent


class Command(BaseCommand):
    help = (
        "Create an agent identity with its own Redis user, and print its environment once, as "
        "KEY=VALUE lines for the agent's env file."
    )

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
            agent, credentials = create_agent(
                options["name"],
                actor="manage.py create_agent",
                public_key=options["public_key"],
                grants=options["grant"],
                description=options["description"],
            )
        except ValidationError as exc:
            problems = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            raise CommandError(problems) from None
        # Here, unlike in a request, Redis must answer: an agent without its user cannot talk.
        provision(agent)
        self.stdout.write(
            f"# Agent {agent.name!r} created. Its environment, shown only now: put these lines "
            "in the agent's env file (mode 0600)."
        )
        for key, value in agent_environment(agent, credentials):
            self.stdout.write(f"{key}={value}")
        if agent.public_key:
            self.stdout.write(
                "# Secret values are sealed to the public key you gave: the agent needs the "
                "matching private key as FOUNDATION_AGENT_PRIVATE_KEY (or _FILE)."
            )
