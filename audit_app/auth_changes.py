"""Changes to users, groups and permissions, audited wherever they are made: the admin, the ORM,
a management command, many-to-many changes included (finding 6 of the review: making someone a
superuser or resetting a password left no audit row).

One ``auth.change`` row per change, naming the fields that changed (with the new value of the
flags that grant power: ``is_active``, ``is_staff``, ``is_superuser``), never a password or its
hash. The actor is the signed-in user of the request being served, else ``(system)``.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission, User
from django.db.models import Model
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save

from audit_app import services

#: Fields whose change is audited; the flags' new values are recorded, the others by name only.
FIELDS = ("username", "email", "first_name", "last_name", "password")
FLAGS = ("is_active", "is_staff", "is_superuser")


def _record(resource: str, action: str, **metadata: Any) -> None:
    services.record_for_request("auth.change", resource, action, **metadata)


def _name(obj: Model) -> str:
    if isinstance(obj, User):
        return f"auth.user:{obj.get_username()}"
    if isinstance(obj, Group):
        return f"auth.group:{obj.name}"
    if isinstance(obj, Permission):
        return f"auth.permission:{obj.content_type.app_label}.{obj.codename}"
    return f"{obj._meta.label_lower}:{obj.pk}"


def _only_last_login(kwargs: dict[str, Any]) -> bool:
    """Django saves ``last_login`` at every log-in: that is audited as the log-in itself."""
    fields = kwargs.get("update_fields")
    return fields is not None and len(fields) > 0 and set(fields) <= {"last_login"}


def before_user_save(sender: type[User], instance: User, **kwargs: Any) -> None:
    if instance.pk is None or _only_last_login(kwargs) or kwargs.get("raw"):
        instance._audit_before = None  # type: ignore[attr-defined]
        return
    instance._audit_before = (  # type: ignore[attr-defined]
        sender.objects.filter(pk=instance.pk).values(*FIELDS, *FLAGS).first()
    )


def after_user_save(sender: type[User], instance: User, created: bool, **kwargs: Any) -> None:
    if _only_last_login(kwargs) or kwargs.get("raw"):
        return
    flags = {flag: getattr(instance, flag) for flag in FLAGS}
    if created:
        _record(_name(instance), "add", **flags)
        return
    before = getattr(instance, "_audit_before", None) or {}
    changed = [f for f in (*FIELDS, *FLAGS) if f in before and before[f] != getattr(instance, f)]
    if changed:
        _record(
            _name(instance),
            "change",
            fields=changed,
            **{flag: flags[flag] for flag in FLAGS if flag in changed},
        )


def after_save(sender: type[Model], instance: Model, created: bool, **kwargs: Any) -> None:
    if not kwargs.get("raw"):
        _record(_name(instance), "add" if created else "change")


def after_delete(sender: type[Model], instance: Model, **kwargs: Any) -> None:
    _record(_name(instance), "delete")


def members_changed(
    sender: type[Model],
    instance: Model,
    action: str,
    reverse: bool,
    model: type[Model],
    pk_set: set[Any] | None,
    **kwargs: Any,
) -> None:
    """A user's groups or permissions, or a group's permissions (or its users, from the group's
    side), added, removed or cleared. Cleared: the members are read before they go."""
    if action == "pre_clear":
        instance._audit_cleared = list(  # type: ignore[attr-defined]
            getattr(instance, _relation(sender, instance)).all()
        )
        return
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if action == "post_clear":
        members = getattr(instance, "_audit_cleared", [])
    else:
        members = list(model._default_manager.filter(pk__in=pk_set or ()))
    if not members:
        return
    verb = {"post_add": "add", "post_remove": "remove", "post_clear": "remove"}[action]
    _record(
        _name(instance),
        f"{verb}_{model._meta.verbose_name_plural}".replace(" ", "_"),
        members=sorted(_name(member).partition(":")[2] for member in members),
    )


def _relation(through: type[Model], instance: Model) -> str:
    if through is User.groups.through:
        return "groups" if isinstance(instance, User) else "user_set"
    if through is User.user_permissions.through:
        return "user_permissions" if isinstance(instance, User) else "user_set"
    return "permissions" if isinstance(instance, Group) else "group_set"


def connect() -> None:
    pre_save.connect(before_user_save, sender=User, dispatch_uid="audit_user_before")
    post_save.connect(after_user_save, sender=User, dispatch_uid="audit_user_save")
    post_delete.connect(after_delete, sender=User, dispatch_uid="audit_user_delete")
    for model in (Group, Permission):
        post_save.connect(after_save, sender=model, dispatch_uid=f"audit_{model.__name__}_save")
        post_delete.connect(
            after_delete, sender=model, dispatch_uid=f"audit_{model.__name__}_delete"
        )
    for through in (User.groups.through, User.user_permissions.through, Group.permissions.through):
        m2m_changed.connect(
            members_changed, sender=through, dispatch_uid=f"audit_m2m_{through.__name__}"
        )
