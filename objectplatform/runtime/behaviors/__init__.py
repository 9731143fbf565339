"""Behaviors: the reusable CRM mechanics an object opts into under `behaviors:` in its YAML.

Each module registers its actions (and hooks) when imported; importing this package imports them all.
"""

from . import convertible as convertible
from . import duplicates as duplicates
from . import follow_ups as follow_ups
from . import pool as pool
from . import staged as staged
