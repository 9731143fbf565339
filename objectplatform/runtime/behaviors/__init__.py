"""Behaviors: the reusable mechanics an object opts into under `behaviors:` in its YAML.

Each module makes one `register_behavior` declaration (registry.py); `runtime/plugins.py` loads them all
when a platform is built. Duplicate rules (duplicates.py) are configured under `duplicate_rules:` instead.
"""
