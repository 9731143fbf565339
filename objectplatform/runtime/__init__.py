"""Definitions -> storage, validation, records, jobs. Never imports Flask.

Faces (CLI, web) open a `Platform` and call its services; errors they render are `RuntimeFailure`s.
"""

from .config import Settings as Settings
from .errors import BadRequest as BadRequest
from .errors import Conflict as Conflict
from .errors import Forbidden as Forbidden
from .errors import Locked as Locked
from .errors import NotFound as NotFound
from .errors import RuntimeFailure as RuntimeFailure
from .errors import Unauthenticated as Unauthenticated
from .errors import ValidationFailed as ValidationFailed
from .platform import Platform as Platform
from .platform import open_platform as open_platform
