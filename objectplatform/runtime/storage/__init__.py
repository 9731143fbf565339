"""Tables from definitions, engines, row conversion and migrations."""

from .engine import create_engine as create_engine
from .tables import ObjectTable as ObjectTable
from .tables import Schema as Schema
from .tables import sort_keys as sort_keys
