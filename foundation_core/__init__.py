"""The infrastructure every app may use, which imports no app: Redis connections, the notices
listener (apps register what they forget), rate limits, admin page helpers.

Imports point one way: ``foundation_site`` (the composition root) → the apps → this package →
``foundation_client``; import-linter holds it (``make test``).
"""
