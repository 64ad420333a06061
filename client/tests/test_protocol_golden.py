"""The protocol's content, per version: exact key strings, ACL rules, Lua SHAs, envelope, event
and answer bytes. The current version's must equal ``golden/protocol-v<N>.json``; a released
version's file never changes (its hash is pinned below).

When the protocol changes: bump ``PROTOCOL_VERSION``, run
``python client/tests/test_protocol_golden.py`` (it writes the new version's file and refuses to
overwrite one), pin the new file's hash in ``RELEASED``, and serve the new version beside the old
ones on the site (``agents_app.wire.SERVED_PROTOCOL_VERSIONS``).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).parent / "golden"

#: sha256 of each released version's golden file.
RELEASED = {
    2: "dbc011165cf23cba008d24b881ccb2f2259916bba906a0fc39b664b6f5856eb1",
    3: "4a67c818c47924b3806c2e340028fbdb1b8fd4b3f9ebca37ba0e293baaa2c71d",
}


def snapshot() -> dict[str, Any]:
    """Everything both sides must agree on, made from fixed inputs."""
    from foundation_client import protocol as p

    def get(name: str) -> Any:
        return getattr(p, name, None)

    head_envelope = p.Envelope(
        sender="a",
        receiver="b",
        type="job.run",
        payload={"n": 1, "text": "é", "list": [1.5, None, True]},
        id="0123456789abcdef0123456789abcdef",
        attempt=2,
        correlation_id="c-1",
        created_at=1764161234.5,
        reply_to="a",
        traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01",
    )
    event = p.status_event("failed", [head_envelope.head()], error="boom")
    event.pop("at")  # the time of the call
    letter = p.DeadLetter.fields("too many attempts", "fdn:in:a:{b}", "1-0", head_envelope, None)
    letter.pop("dead_at")
    answer = p.SecretAnswer(agent="b", name="db/primary", version=3, nonce="n" * 22, value="v")
    scripts = {  # by SHA-1, as Redis names them (EVALSHA)
        name: hashlib.sha1(
            get(name).encode(), usedforsecurity=False
        ).hexdigest()  # as Redis names them
        for name in (
            "PROMOTE",
            "ACK",
            "FAIL",
            "DEAD",
            "DELETE_IDLE_CONSUMER",
            "REPLAY_DEAD_LETTER",
            "REQUEUE",
            "TRIM_STREAM",
        )
    }
    constants = {
        name: get(name)
        for name in (
            "GROUP",
            "AGENTS",
            "NOTICES",
            "PROTOCOL_KEY",
            "REPLY_TYPE",
            "SECRETS_API_PATH",
            "PROTOCOL_API_PATH",
            "SECRETS_ROTATION_CHANNEL",
            "AGENT_NAME_PATTERN",
            "ANSWER_NONCE_PATTERN",
            "ANSWER_SIGNATURE_ALGORITHM",
            "SEALING_ALGORITHM",
            "LATEST_TIME",
        )
        if get(name) is not None
    }
    patterns = {name: get(name).pattern for name in ("MESSAGE_ID", "MESSAGE_TYPE", "TRACEPARENT")}
    keys = {
        "agent_key": p.agent_key("b", "x"),
        "inbox": p.inbox("b", "a"),
        "requeue": p.requeue("b"),
        "delayed": p.delayed("b"),
        "done_key": p.done_key("b", "a", "m1"),
        "events": p.events("b"),
        "dead_letters": p.dead_letters("b"),
        "site_events": p.site_events("b"),
        "acl_user": p.acl_user("b"),
    }
    out: dict[str, Any] = {
        "version": p.PROTOCOL_VERSION,
        "constants": constants,
        "patterns": patterns,
        "keys": keys,
        "acl_rules": p.acl_rules("b"),
        "scripts": scripts,
        "agent_scripts": [
            hashlib.sha1(s.encode(), usedforsecurity=False).hexdigest() for s in p.AGENT_SCRIPTS
        ],
        "envelope_fields": list(p.ENVELOPE_FIELDS),
        "statuses": list(p.STATUSES),
        "envelope": head_envelope.to_json().decode(),
        "entry": sorted(head_envelope.to_entry()),
        "status_event": {k: v.decode() if isinstance(v, bytes) else v for k, v in event.items()},
        "dead_letter": {k: v.decode() if isinstance(v, bytes) else v for k, v in letter.items()},
        "answer_signed_bytes": answer.signed_bytes().hex(),
        "sealing_context": p.sealing_context("db/primary", 3).hex(),
        "rotation_notice": p.RotationNotice("db/primary", 3).encode(),
        "trim_arguments": p.trim_arguments(1000, None, "5-0"),
    }
    if get("encode_served") is not None:
        out["served"] = p.encode_served((2, 3))
    return out


def _path(version: int) -> Path:
    return GOLDEN / f"protocol-v{version}.json"


def _text(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_the_current_version_says_exactly_what_its_golden_file_says():
    from foundation_client.protocol import PROTOCOL_VERSION

    path = _path(PROTOCOL_VERSION)
    assert path.exists(), f"no golden file for version {PROTOCOL_VERSION}: see this module's doc"
    golden = json.loads(path.read_text())
    now = snapshot()
    changed = sorted(key for key in golden.keys() | now.keys() if golden.get(key) != now.get(key))
    assert not changed, (
        f"the protocol's {', '.join(changed)} changed under version {PROTOCOL_VERSION}: bump "
        "PROTOCOL_VERSION and write its golden file (see this module's doc)"
    )


def test_a_released_versions_golden_file_never_changes():
    from foundation_client.protocol import PROTOCOL_VERSION

    files = sorted(GOLDEN.glob("protocol-v*.json"))
    assert {int(f.stem.removeprefix("protocol-v")) for f in files} == set(RELEASED)
    assert max(RELEASED) == PROTOCOL_VERSION
    for version, digest in RELEASED.items():
        assert hashlib.sha256(_path(version).read_bytes()).hexdigest() == digest, version


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    data = snapshot()
    target = _path(data["version"])
    if target.exists():
        sys.exit(f"{target} exists: a released version's golden file never changes")
    GOLDEN.mkdir(exist_ok=True)
    target.write_text(_text(data))
    print(f"wrote {target}; pin its sha256 in RELEASED:")
    print(hashlib.sha256(target.read_bytes()).hexdigest())
