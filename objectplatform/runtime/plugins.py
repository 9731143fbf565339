"""The engine's built-in plugins, loaded in this one place before a platform is used: each registers its
actions, record hooks, hidings, behavior declaration or report engine when imported.

The records service, the actions and the behavior registry sit below them and know none of them.
"""

from . import approvals as approvals
from . import transitions as transitions
from .behaviors import convertible as convertible
from .behaviors import duplicates as duplicates
from .behaviors import follow_ups as follow_ups
from .behaviors import pool as pool
from .behaviors import staged as staged
from .records import teams as teams
from .reports import funnel as funnel
