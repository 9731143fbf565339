"""Behaviors: the reusable mechanics an object opts into under `behaviors:` in its YAML.

Each module makes one `register_behavior` declaration (registry.py) when imported; importing this package
imports them all. Duplicate rules (duplicates.py) are configured under `duplicate_rules:` instead.
"""

from . import convertible as convertible
from . import duplicates as duplicates
from . import follow_ups as follow_ups
from . import pool as pool
from . import staged as staged
