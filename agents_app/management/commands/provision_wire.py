"""Make every agent's Redis user match the database: after a Redis restart without its ACL
file, on a new cluster node, or after upgrading from the shared-password layout."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from agents_app.models import Agent
from agents_app.services import agent_environment, issue_credentials
from agents_app.wire import provision
from audit_app import services as audit


class Command(BaseCommand):
    help = "Provision every agent's Redis ACL user on every node of the agents' Redis."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--issue-missing",
            action="store_true",
            help="give agents created before per-agent Redis users new credentials, and print "
            "their environment (their old token stops working)",
        )

    def handle(self, *args: Any, issue_missing: bool, **options: Any) -> None:
        done = missing = 0
        for agent in Agent.objects.order_by("name"):
            if not agent.redis_password_hash:
                if not issue_missing:
                    missing += 1
                    provision(agent)  # off: no password yet
                    continue
                credentials = issue_credentials(agent, actor="manage.py provision_wire")
                self.stdout.write(f"# {agent.name}: new credentials, shown only now")
                for key, value in agent_environment(agent, credentials):
                    self.stdout.write(f"{key}={value}")
            provision(agent)
            done += 1
        audit.record(
            "agents.provision",
            "manage.py provision_wire",
            "redis:acl",
            "provision",
            provisioned=done,
            without_credentials=missing,
        )
        self.stderr.write(f"provisioned {done} agent(s)")
        if missing:
            self.stderr.write(
                f"{missing} agent(s) have no Redis credentials yet and stay disabled on Redis: "
                "run with --issue-missing"
            )
